"""F4: models saved with external data (every model over 2 GB, many exporters' output) load by
path on every command: bench, pipeline stages, inspect, profile, quantize, optimize, serve."""

from __future__ import annotations

import os

import numpy as np
import pytest
from models import conv_model, matmul_model, save_with_external_data

from nnperf.cli import main


@pytest.fixture
def ext_model(tmp_path) -> str:
    path = save_with_external_data(matmul_model(k=32, n=16), str(tmp_path / "ext"))
    assert os.path.exists(os.path.join(os.path.dirname(path), "model.data"))
    return path


def test_bench_loads_external_data(ext_model):
    from nnperf.bench import run_benchmark

    r = run_benchmark(ext_model, queries=5, duration_s=0.0, warmup_iters=1)
    assert r.queries >= 5 and r.errors == 0


def test_pipeline_stages_load_external_data(tmp_path):
    from nnperf.bench import run_benchmark

    path = save_with_external_data(conv_model(), str(tmp_path / "conv"))
    r = run_benchmark(path, scenario="offline", pipeline_stages=2, queries=10, duration_s=0.0)
    assert r.errors == 0 and r.instances == 2


def test_inspect_loads_external_data(ext_model, capsys):
    from nnperf.analyze import analyze_model

    report = analyze_model(ext_model)
    assert report.parameters == 32 * 16 + 16
    assert main(["inspect", ext_model]) == 0
    assert "Parameters: 528" in capsys.readouterr().out


def test_profile_loads_external_data(ext_model, capsys):
    assert main(["profile", ext_model, "--queries", "5", "--warmup-iters", "1"]) == 0
    assert "Advice" in capsys.readouterr().out


def test_quantize_loads_external_data(ext_model, tmp_path):
    out = tmp_path / "q.onnx"
    argv = ["quantize", ext_model, "-o", str(out), "--calibration", "random:4",
            "--activation-type", "uint8", "--iters", "3"]  # fmt: skip
    assert main(argv) == 0
    assert out.exists()


def test_optimize_loads_external_data(ext_model, tmp_path):
    out = tmp_path / "o.onnx"
    assert main(["optimize", ext_model, "-o", str(out), "--iters", "3"]) == 0
    assert out.exists()


def test_serve_loads_external_data(ext_model):
    from starlette.testclient import TestClient

    from nnperf.protocol import HEADER_LENGTH, encode_request
    from nnperf.serve.dataplane import DataPlane, ModelSettings
    from nnperf.serve.http import create_app

    plane = DataPlane([ModelSettings(name="ext", model=ext_model)])
    with TestClient(create_app(plane)) as client:
        body, hl = encode_request({"x": np.ones((1, 32), np.float32)})
        headers = {HEADER_LENGTH: str(hl)} if hl is not None else {}
        r = client.post("/v2/models/ext/infer", content=body, headers=headers)
        assert r.status_code == 200, r.text
