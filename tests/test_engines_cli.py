"""Engines above the seam: --engine on the commands, side by side, per-object observers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import has_gpu
from models import matmul_model

import nnperf
from nnperf.bench import run_benchmark
from nnperf.bench.sidebyside import run_side_by_side
from nnperf.cli import main
from nnperf.errors import InvalidInputError, UnsupportedError


def test_pipeline_bench_reports_utilisation_and_the_device_that_ran():
    # Found: `bench --pipeline-stages 2` printed "Utilisation: 0.0 %" and "device=cpu workers=1"
    # while two stage instances ran (run events went to a process-global list the stage threads
    # never reported to).
    r = run_benchmark(
        "zoo:mobilenetv2", scenario="offline", pipeline_stages=2, queries=20, warmup_iters=1
    )
    assert r.utilization > 0.3
    assert r.instances == 2 and r.device == "cpu(1)*2"
    assert r.errors == 0


def test_two_benchmarks_do_not_see_each_others_runs():
    # Observers belong to the runtime object: a second session's runs never reach the first's.
    seen: list[int] = []

    class Count:
        def on_run(self, event):
            seen.append(event.session_id)

    x = np.ones((1, 16), np.float32)
    with nnperf.create(matmul_model()) as a, nnperf.create(matmul_model()) as b:
        a.observers.add(Count())
        for _ in range(3):
            a.run(x)
            b.run(x)
    assert seen == [id(a)] * 3


def test_profiler_sees_sessions_created_before_and_inside_it():
    x = np.ones((1, 16), np.float32)
    with nnperf.create(matmul_model()) as before:
        with nnperf.profile() as prof:
            before.run(x)
            with nnperf.create(matmul_model()) as inside:
                inside.run(x)
        assert not before.observers  # detached at stop
    infs = [s for s in prof.spans() if s.name == "Inference"]
    assert len(infs) == 2


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_python_api_takes_engine_and_runs_every_executor(engine):
    x = np.random.default_rng(0).standard_normal((1, 16)).astype(np.float32)
    with nnperf.create(matmul_model(), engine="onnxruntime") as ref:
        expected = ref.run(x)[0]
    with nnperf.create(matmul_model(), engine=engine, device="cpu(1)*2") as sess:
        assert sess.engine.name == engine
        np.testing.assert_allclose(sess.run(x)[0], expected, rtol=1e-5, atol=1e-5)
    with nnperf.create_runner(matmul_model(), engine=engine, device="cpu(1)*2") as runner:
        outs = [f.result()[0] for f in [runner.submit(x) for _ in range(20)]]
    assert all(np.allclose(o, expected, rtol=1e-5, atol=1e-5) for o in outs)
    sub, rec = nnperf.create_queue(matmul_model(), engine=engine)
    with sub, rec:
        for i in range(5):
            sub.submit(x, context=i)
        got = sorted(rec.recv(timeout_s=10)[0] for _ in range(5))
    assert got == list(range(5))

    import asyncio

    async def main_async() -> list[np.ndarray]:
        cfg = nnperf.RunConfig(engine=engine, device="cpu(1)*2")
        async with nnperf.AsyncRunner(matmul_model(), config=cfg, max_batch_size=4) as ar:
            return await asyncio.gather(*(ar.run(x) for _ in range(12)))

    for out in asyncio.run(main_async()):
        np.testing.assert_allclose(out[0], expected, rtol=1e-5, atol=1e-5)
    cfg = nnperf.RunConfig(engine=engine)
    with nnperf.create_pipeline("zoo:mnist", stages=2, config=cfg) as pipe:
        xm = np.zeros((1, 1, 28, 28), np.float32)
        assert pipe.run(xm)[0].shape == (1, 10)


def test_validation_errors_are_the_same_on_every_engine():
    messages = []
    for engine in ("onnxruntime", "openvino"):
        with nnperf.create(matmul_model(), engine=engine) as sess:
            with pytest.raises(InvalidInputError) as exc:
                sess.run(np.ones((1, 16)))
            messages.append(str(exc.value))
    assert messages[0] == messages[1] and "float64" in messages[0]


def test_bench_side_by_side_measures_each_engine_on_the_same_inputs(tmp_path, capsys):
    out = tmp_path / "sbs.json"
    code = main(
        [
            "bench", "zoo:mnist", "--engine", "onnxruntime,openvino", "--queries", "30",
            "--rounds", "2", "--json", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "onnxruntime" in text and "openvino" in text and "cosine" in text
    doc = json.loads(out.read_text())
    assert doc["schema"] == "nnperf.sidebyside/1"
    rows = doc["rows"]
    assert [r["label"] for r in rows] == ["onnxruntime", "openvino"]
    assert rows[0]["ratio_throughput"] == 1.0 and rows[1]["cosine"] > 0.999
    assert all(len(r["rounds"]) == 2 for r in rows)


def test_side_by_side_agreement_catches_a_different_precision():
    result = run_side_by_side(
        "zoo:mobilenetv2",
        [
            nnperf.RunConfig(engine="openvino"),
            nnperf.RunConfig(engine="openvino", precision="bf16"),
        ],
        rounds=1,
        queries=5,
        duration_s=0.0,
        warmup_iters=1,
    )
    f32, bf16 = result.rows
    assert f32.label != bf16.label and f32.cosine == 1.0
    assert 0.9 < bf16.cosine < 1.0 and bf16.max_abs_err > 0  # bf16 is close, never identical


def test_engine_flags_are_checked(capsys):
    assert main(["bench", "zoo:mnist", "--engine", "tensorflow"]) == 2
    assert "expected one or more of" in capsys.readouterr().err
    assert main(["bench", "zoo:mnist", "--engine-option", "graph_level"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["bench", "zoo:mnist", "--engine-option", "colour=red"]) == 2
    assert "no field(s) ['colour']" in capsys.readouterr().err
    assert main(["bench", "zoo:mnist", "--precision", "bf16", "--queries", "1"]) != 0
    assert "onnxruntime runs the precision the model file has" in capsys.readouterr().err
    # TensorRT: an execution provider on a CUDA device, named by the engine option.
    assert main(["bench", "zoo:mnist", "--device", "tensorrt:0", "--queries", "1"]) == 2
    assert "--engine-option providers=tensorrt,cuda,cpu" in capsys.readouterr().err
    if not has_gpu():
        argv = ["bench", "zoo:mnist", "--device", "cuda:0", "--queries", "1"]
        assert main([*argv, "--engine-option", "providers=tensorrt,cuda,cpu"]) == 1
        assert "'TensorrtExecutionProvider'" in capsys.readouterr().err


def test_precision_bf16_on_onnxruntime_is_unsupported_with_the_fix():
    with pytest.raises(UnsupportedError, match="--engine openvino"):
        nnperf.create(matmul_model(), precision="bf16")


@pytest.mark.parametrize("command", ["inspect", "profile"])
def test_inspect_and_profile_take_an_engine(command, capsys):
    args = [command, "zoo:mnist", "--engine", "openvino"]
    if command == "profile":
        args += ["--queries", "20", "--ops"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "openvino" in text.lower()
    if command == "inspect":
        assert "kernel" in text.lower() and "Convolution" in text


def test_tuned_config_names_its_engine_and_serves(tmp_path):
    cfg = nnperf.RunConfig(engine="openvino", device="cpu(1)*2", precision="f32")
    path = tmp_path / "tuned.json"
    cfg.save(path)
    with nnperf.create("zoo:mnist", config=str(path)) as sess:
        assert sess.engine.name == "openvino" and len(sess.instances) == 2
    r = run_benchmark("zoo:mnist", config=str(path), scenario="offline", queries=50)
    assert r.engine["name"] == "openvino" and r.config.engine == "openvino"


def test_serve_on_openvino_reports_its_platform_and_counts_runs():
    from starlette.testclient import TestClient

    from nnperf.protocol import encode_request
    from nnperf.serve.dataplane import DataPlane, ModelSettings
    from nnperf.serve.http import create_app

    cfg = nnperf.RunConfig(engine="openvino", device="cpu(1)*2")
    plane = DataPlane(
        [ModelSettings(name="mm", model=matmul_model(), config=cfg, max_batch_size=4)]
    )
    with TestClient(create_app(plane)) as client:
        meta = client.get("/v2/models/mm").json()
        assert meta["platform"] == "openvino_onnx"
        assert client.get("/v2/models/mm/config").json()["backend"] == "openvino"
        x = np.ones((1, 16), np.float32)
        body, _ = encode_request({"x": x}, binary=False)
        for _ in range(3):
            assert client.post("/v2/models/mm/infer", content=body).status_code == 200
        metrics = client.get("/metrics").text
    # the data plane's observer is attached to the served model's runtime, not a global list
    assert 'nnperf_batch_size_count{model="mm"}' in metrics
    count = next(
        line
        for line in metrics.splitlines()
        if line.startswith('nnperf_batch_size_count{model="mm"}')
    )
    assert float(count.split()[-1]) >= 1


def test_serve_cli_takes_an_engine():
    import argparse

    from nnperf.cli import build_parser
    from nnperf.cli.serve import build_settings

    args = build_parser().parse_args(
        ["serve", "zoo:mnist", "--engine", "openvino", "--precision", "bf16",
         "--engine-option", "hint=throughput"]
    )  # fmt: skip
    assert isinstance(args, argparse.Namespace)
    models, _ = build_settings(args)
    cfg = models[0].config
    assert cfg.engine == "openvino" and cfg.precision == "bf16"
    assert cfg.engine_options.hint == "throughput"
