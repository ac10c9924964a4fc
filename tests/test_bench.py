from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from models import identity_model, matmul_model, two_input_model

from nnperf import InvalidInputError, NotFoundError
from nnperf.bench import LatencyStats, run_benchmark
from nnperf.bench.inputs import make_feeds, parse_input_specs
from nnperf.cli import main


def test_latency_stats():
    s = LatencyStats.from_ns([1_000_000, 2_000_000, 3_000_000, 4_000_000])
    assert s.count == 4 and s.min_ms == 1.0 and s.max_ms == 4.0 and s.mean_ms == 2.5
    assert s.p50_ms == 2.5 and s.min_ms <= s.p90_ms <= s.p99_ms <= s.p99_9_ms <= s.max_ms
    assert abs(s.stddev_ms - np.std([1, 2, 3, 4], ddof=1)) < 1e-12
    d = s.to_dict()
    assert set(d) == {
        "n",
        "min",
        "mean",
        "p50",
        "p90",
        "p95",
        "p99",
        "p99_9",
        "max",
        "stddev",
    }
    assert s.cv == pytest.approx(s.stddev_ms / s.mean_ms)
    assert d["p50"] == 2.5 and d["p90"] is None and d["p99_9"] is None  # 4 samples: p50 only
    with pytest.raises(InvalidInputError):
        LatencyStats.from_ns([])


@pytest.mark.parametrize("scenario", ["single-stream", "offline", "server"])
def test_scenarios_produce_consistent_results(scenario):
    kwargs = {"target_qps": 2000.0} if scenario == "server" else {}
    r = run_benchmark(
        matmul_model(), scenario=scenario, device="cpu(1)*2", queries=200, warmup_iters=2,
        duration_s=0.0, **kwargs,
    )  # fmt: skip
    assert r.queries >= 200 and r.errors == 0
    lat = r.latency
    assert 0 < lat.min_ms <= lat.p50_ms <= lat.p90_ms <= lat.p99_ms <= lat.max_ms
    assert r.throughput_qps > 0 and 0 <= r.utilization <= 1
    assert len(r.stages_ms["warmup_ms"]) == 2 and r.stages_ms["prepare_ms"] > 0
    assert r.workers == (1 if scenario == "single-stream" else 2)


def test_minimum_duration_is_respected():
    r = run_benchmark(identity_model(), queries=1, duration_s=0.3)
    assert r.duration_s >= 0.3 and r.queries > 1


def test_batch_size_and_samples_per_second():
    r = run_benchmark(matmul_model(), batch_size=8, queries=50, fake_first=True, duration_s=0.0)
    assert r.batch_size == 8
    assert r.throughput_samples_per_s == pytest.approx(8 * r.throughput_qps)
    assert r.stages_ms["fake_first_ms"] is not None


def test_input_specs(tmp_path):
    from nnperf import create

    with create(two_input_model()) as sess:
        arr = np.full((2, 3), 7, np.float32)
        np.save(tmp_path / "a.npy", arr)
        feeds = make_feeds(
            sess.inputs,
            batch_size=2,
            specs=parse_input_specs([f"a:{tmp_path / 'a.npy'}", "b:zeros", "k:ones:2x1"]),
        )
        np.testing.assert_array_equal(feeds["a"], arr)
        assert feeds["b"].sum() == 0 and feeds["k"].dtype == np.int64 and feeds["k"].shape == (2, 1)
        with pytest.raises(InvalidInputError, match="no such input"):
            make_feeds(sess.inputs, specs={"c": "zeros"})
        with pytest.raises(InvalidInputError, match="does not fit"):
            make_feeds(sess.inputs, specs={"a": "zeros:2x4"})
        with pytest.raises(InvalidInputError, match="does not exist"):
            make_feeds(sess.inputs, specs={"a": str(tmp_path / "x.npy")})
    with pytest.raises(InvalidInputError, match=r"\[NAME:\]SPEC"):
        parse_input_specs([":zeros"])
    assert parse_input_specs(["random"]) == {"": "random"}  # unnamed: the only input


def test_bench_argument_errors():
    with pytest.raises(InvalidInputError, match="target_qps"):
        run_benchmark(identity_model(), scenario="server")
    with pytest.raises(InvalidInputError, match="scenario"):
        run_benchmark(identity_model(), scenario="burst")
    with pytest.raises(NotFoundError, match="did you mean 'mnist'"):
        run_benchmark("zoo:mnsit")


def test_cli_bench_json_has_every_field(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    model.write_bytes(matmul_model().SerializeToString())
    out = tmp_path / "out.json"
    code = main(
        [
            "bench",
            str(model),
            "--scenario",
            "offline",
            "--device",
            "cpu(1)*2",
            "--queries",
            "50",
            "--json",
            str(out),
            "--warmup-iters",
            "1",
            "--fake-first",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    for label in (
        "load model",
        "prepare (engine)",
        "fake first",
        "warm up 0",
        "p99.9",
        "Throughput",
        "Utilisation",
        "Versions",
    ):
        assert label in text
    data = json.loads(out.read_text())
    assert data["schema"] == "nnperf.bench/2"
    assert data["model"]["path"] == str(model) and len(data["model"]["sha256"]) == 64
    assert data["engine"]["name"] == "onnxruntime" and data["engine"]["version"]
    assert data["config"]["device"] == "cpu(1)*2"
    assert {"load_ms", "prepare_ms", "warmup_ms", "fake_first_ms"} <= set(data["stages"])
    assert set(data["latency_ms"]) >= {
        "n",
        "min",
        "mean",
        "p50",
        "p90",
        "p95",
        "p99",
        "p99_9",
        "max",
        "stddev",
    }
    for key in (
        "throughput_qps",
        "throughput_samples_per_s",
        "queries",
        "duration_s",
        "utilization",
        "machine",
    ):
        assert key in data


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["bench", "zoo:nope"], "unknown zoo model 'nope'"),
        (["bench", "zoo:identity", "--device", "tpu"], "cannot parse 'tpu'"),
        (["bench", "zoo:identity", "--queries", "-3"], "--queries: expected a positive integer"),
        (
            ["bench", "zoo:identity", "--warmup-iters", "-1"],
            "--warmup-iters: expected an integer >= 0",
        ),
        (
            ["tune", "zoo:identity", "--warmup-iters", "-1"],
            "--warmup-iters: expected an integer >= 0",
        ),
        (
            ["profile", "zoo:identity", "--warmup-iters", "x"],
            "--warmup-iters: expected an integer >= 0",
        ),
        (["bench", "zoo:identity", "--scenario", "burst"], "invalid choice: 'burst'"),
        (["bench", "zoo:identity", "--input", "y:zeros"], "no such input"),
        (["bench", "zoo:identity", "--scenario", "server"], "target_qps"),
        (["bench", "zoo:identity", "--config", "/nonexistent.json"], "does not exist"),
        (["bench"], "missing MODEL"),
        (["zoo", "mnist"], "missing -o/--output"),
    ],
)
def test_cli_errors_are_one_line_exit_2(argv, fragment, capsys):
    code = None
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors exit from the parser
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert err.strip().count("\n") == 0 and err.startswith("nnperf: error:")


def test_cli_model_load_failures_are_one_line_exit_1(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage-not-a-model" * 10)
    assert main(["bench", str(bad)]) == 1  # ModelLoadError: a runtime failure, not usage
    err = capsys.readouterr().err
    assert "not a valid ONNX file" in err or "no graph" in err
    assert main(["bench", "/nonexistent/model.onnx"]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and err.count("\n") == 1


def test_cli_zoo_and_inspect(tmp_path, capsys):
    assert main(["zoo"]) == 0
    listing = capsys.readouterr().out
    for name in ("identity", "mnist", "mobilenetv2", "resnet50", "bert-tiny"):
        assert f"zoo:{name}" in listing
    path = tmp_path / "mnist.onnx"
    assert main(["zoo", "mnist", "-o", str(path)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(path), "--json", str(tmp_path / "i.json")]) == 0
    text = capsys.readouterr().out
    assert "Conv" in text and "FLOPs" in text and "100.00% of operations" in text
    report = json.loads((tmp_path / "i.json").read_text())
    assert report["percent_supported"] == 100.0 and report["operators"]["Conv"] == 2
    assert report["flops"] > 0 and report["parameters"] > 0


def test_cli_real_subprocess(tmp_path):
    out = tmp_path / "o.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nnperf",
            "bench",
            "zoo:mnist",
            "--queries",
            "20",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "nnperf bench: mnist" in proc.stdout
    assert json.loads(out.read_text())["queries"] >= 20
    bad = subprocess.run(
        [sys.executable, "-m", "nnperf", "bench", "zoo:mnist", "--workers", "zero"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "nnperf: error:" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("api", ["sync", "queue", "async"])
def test_bench_apis_batching_and_pipeline(api):
    quick = {"queries": 300, "duration_s": 0.0}
    r = run_benchmark(matmul_model(), scenario="offline", device="cpu(1)*2", api=api, **quick)
    assert r.queries >= 300 and r.errors == 0 and r.extra["api"] == api
    b = run_benchmark(
        matmul_model(), scenario="offline", api=api, max_batch_size=8, concurrency=16, **quick
    )
    stats = b.extra["batching"]
    assert stats["requests"] >= 300 and stats["mean_batch_size"] > 1
    assert sum(int(k) * v for k, v in stats["histogram"].items()) == stats["rows"]
    s = run_benchmark(
        matmul_model(), scenario="server", api=api, target_qps=500.0, queries=100, duration_s=0.0
    )
    assert s.queries == 100


def test_bench_pipeline_and_cli_flags(tmp_path, capsys):
    from models import conv_model

    r = run_benchmark(
        conv_model(), scenario="offline", pipeline_stages=2, queries=100, duration_s=0
    )
    assert len(r.extra["pipeline"]) == 2 and r.errors == 0
    with pytest.raises(InvalidInputError, match="cannot be combined"):
        run_benchmark(conv_model(), pipeline_stages=2, max_batch_size=4)
    model = tmp_path / "m.onnx"
    model.write_bytes(matmul_model().SerializeToString())
    assert (
        main(
            [
                "bench",
                str(model),
                "--scenario",
                "offline",
                "--api",
                "async",
                "--max-batch-size",
                "4",
                "--concurrency",
                "8",
                "--queries",
                "100",
            ]
        )
        == 0
    )
    assert "merged batches" in capsys.readouterr().out
    assert main(["bench", "m", "--url", "http://127.0.0.1:9", "--device", "cpu"]) == 2
    assert "only apply in process" in capsys.readouterr().err


def test_image_input_is_resized_and_scaled(tmp_path):
    from models import conv_model
    from PIL import Image

    from nnperf import create

    img = np.zeros((40, 30, 3), np.uint8)
    img[..., 0] = 255
    Image.fromarray(img).save(tmp_path / "red.png")
    with create(conv_model(channels=3, size=16)) as sess:
        feeds = make_feeds(sess.inputs, batch_size=2, specs={"input": str(tmp_path / "red.png")})
        x = feeds["input"]
        assert x.shape == (2, 3, 16, 16) and x.dtype == np.float32
        assert x[:, 0].min() == 1.0 and x[:, 1:].max() == 0.0
        assert sess.run(x)[0].shape == (2, 8)
