"""``nnperf serve`` flags, config files, and the remote load generator against a live server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nnperf.bench.remote import run_remote_benchmark
from nnperf.cli import build_parser, main
from nnperf.cli.serve import build_settings
from nnperf.errors import InvalidInputError, NotFoundError
from nnperf.serve import DataPlane, ModelSettings
from nnperf.serve.http import ServerHandle, create_app
from tests.models import matmul_model


def _args(*argv: str):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(["serve", *argv])


def test_no_models_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve"]) == 2
    assert "no models to serve" in capsys.readouterr().err


def test_bad_model_file_fails_before_binding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    assert main(["serve", str(bad), "--port", "0"]) == 1  # ModelLoadError: exit 1
    assert "not a valid ONNX file" in capsys.readouterr().err


def test_flags_map_onto_settings(tmp_path: Path) -> None:
    models, defaults = build_settings(
        _args("zoo:mnist", "mm=/x/m.onnx", "--device", "cpu(1)*2", "--workers", "3",
              "--max-batch-size", "8", "--max-delay-ms", "2.5", "--max-inflight", "7")
    )  # fmt: skip
    assert [m.name for m in models] == ["mnist", "mm"]
    assert models[1].model == "/x/m.onnx"
    m = models[0]
    assert (m.max_batch_size, m.max_delay_ms, m.max_inflight) == (8, 2.5, 7)
    assert m.config.device == "cpu(1)*2" and m.config.workers == 3
    assert defaults.max_batch_size == 8


def test_serve_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "serve.json"
    cfg.write_text(json.dumps({
        "schema": "nnperf.serve/1",
        "defaults": {"max_delay_ms": 3.0, "config": {"device": "cpu(1)"}},
        "models": [{"name": "a", "model": "zoo:identity", "max_batch_size": 4}],
    }))  # fmt: skip
    models, _ = build_settings(_args("--config", str(cfg), "--max-inflight", "9"))
    (a,) = models
    assert (a.name, a.max_batch_size, a.max_delay_ms, a.max_inflight) == ("a", 4, 3.0, 9)
    assert a.config.device == "cpu(1)"
    run_cfg = tmp_path / "run.json"
    run_cfg.write_text(json.dumps({"device": "cpu(1)*2"}))
    models, _ = build_settings(_args("zoo:identity", "--config", str(run_cfg)))
    assert models[0].config.device == "cpu(1)*2"
    cfg.write_text(json.dumps({"schema": "nnperf.serve/1", "models": [{"name": "a", "bogus": 1}]}))
    with pytest.raises(InvalidInputError, match="unknown key"):
        build_settings(_args("--config", str(cfg)))


def test_settings_validation() -> None:
    with pytest.raises(InvalidInputError):
        ModelSettings(name="../x", model="zoo:identity")
    with pytest.raises(InvalidInputError):
        ModelSettings(name="x", model="zoo:identity", max_inflight=0)
    with pytest.raises(InvalidInputError, match="more than once"):
        DataPlane([ModelSettings(name="x", model="a"), ModelSettings(name="x", model="b")])


@pytest.mark.parametrize("scenario", ["single-stream", "offline", "server"])
def test_remote_benchmark_scenarios(scenario: str, tmp_path: Path) -> None:
    plane = DataPlane([ModelSettings(name="mm", model=matmul_model(), max_batch_size=8)])
    with ServerHandle(create_app(plane, token="t")) as server:
        r = run_remote_benchmark(
            server.url, "mm", scenario=scenario, queries=120, duration_s=0.0,
            concurrency=None if scenario == "single-stream" else 4,
            target_qps=400.0 if scenario == "server" else None, token="t",
        )  # fmt: skip
        assert r.errors == 0 and r.queries >= 120 and r.latency is not None
        assert r.latency.p50_ms <= r.latency.p99_ms and r.throughput_qps > 0
        d = r.to_dict()
        assert d["schema"] == "nnperf.bench/2" and d["latency_ms"]["p50"] > 0
        assert d["sut"] == "http" and d["extra"]["binary"] is True
        if scenario == "single-stream":
            xs = [{"x": np.full((1, 16), i, np.float32)} for i in range(3)]
            r2 = run_remote_benchmark(
                server.url, "mm", queries=10, inputs=xs, binary=False, token="t"
            )
            assert r2.errors == 0 and not r2.extra["binary"]
            with pytest.raises(InvalidInputError, match="HTTP 401"):
                run_remote_benchmark(server.url, "mm", queries=5, inputs=xs)
            with pytest.raises(NotFoundError):
                run_remote_benchmark(server.url, "nope", queries=5, token="t")


def test_serve_trace_output_records_served_queries(tmp_path: Path) -> None:
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    trace = tmp_path / "serve-trace.json"
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nnperf", "serve", "zoo:identity", "--port", str(port),
         "--trace-output", str(trace)],
        stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        body = {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1000], "data": [0.5] * 1000}]
        }
        for _ in range(5):
            assert httpx.post(base + "/v2/models/identity/infer", json=body).status_code == 200
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    events = json.loads(trace.read_text())["traceEvents"]
    assert sum(e.get("name") == "Inference" for e in events) == 5
