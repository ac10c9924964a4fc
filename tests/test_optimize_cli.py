"""``nnperf optimize`` and ``nnperf quantize`` in process, plus one real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from models import small_convnet

from nnperf.cli import main


@pytest.fixture()
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "m.onnx"
    onnx.save(small_convnet(channels=3, width=16), str(path))
    return path


def test_optimize_uint8_permute_batch(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.onnx"
    code = main(
        [
            "optimize",
            str(model_path),
            "-o",
            str(out),
            "--input-type",
            "uint8",
            "--mean",
            "0.485,0.456,0.406",
            "--std",
            "0.229,0.224,0.225",
            "--permute-input",
            "0,3,1,2",
            "--batch-size",
            "2",
            "--iters",
            "3",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    for row in (
        "load (ms)",
        "warm-up (ms)",
        "inference p50 (ms)",
        "throughput (q/s)",
        "cosine similarity",
        "top-1 agreement",
    ):
        assert row in text
    m = onnx.load(str(out))
    vi = m.graph.input[0]
    assert vi.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in vi.type.tensor_type.shape.dim] == [2, 16, 16, 3]
    import json

    result = json.loads((tmp_path / "r.json").read_text())
    assert result["comparison"]["agreement"]["cosine"] > 0.9999


def test_optimize_fp16_and_dump(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "optimize",
                str(model_path),
                "-o",
                str(tmp_path / "f.onnx"),
                "--fp16",
                "--matmul-only",
                "--iters",
                "3",
            ]
        )
        == 0
    )
    assert (
        main(
            ["optimize", str(model_path), "-o", str(tmp_path / "d.onnx"), "--dump", "--iters", "3"]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "fusions" in text and "WARNING" in text and "dump" in text


def test_optimize_errors(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # UnsupportedError: valid flags this engine/device cannot do: exit 1, not the usage code.
    assert main(["optimize", str(model_path), "-o", str(tmp_path / "x.onnx"), "--bf16"]) == 1
    assert "bfloat16" in capsys.readouterr().err
    assert (
        main(
            ["optimize", str(model_path), "-o", str(tmp_path / "x.onnx"), "--output-type", "uint8"]
        )
        == 2
    )
    assert (
        main(["optimize", str(model_path), "-o", str(tmp_path / "x.onnx"), "--input", "nope"]) == 2
    )


def test_quantize_random_auto(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "q.onnx"
    assert (
        main(
            [
                "quantize",
                str(model_path),
                "-o",
                str(out),
                "--calibration",
                "random:4",
                "--method",
                "percentile_sym",
                "--iters",
                "3",
                "--sensitivity",
                "--keep-float",
                "1",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "chose" in text and "Per-layer sensitivity" in text and "int8" in text
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "QuantizeLinear" in ops


def test_quantize_calibration_dir(model_path: Path, tmp_path: Path) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(calib / f"{i}.npy", rng.random((3, 16, 16), dtype=np.float32))
    assert (
        main(
            [
                "quantize",
                str(model_path),
                "-o",
                str(tmp_path / "q.onnx"),
                "--calibration",
                str(calib),
                "--activation-type",
                "uint8",
                "--iters",
                "3",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "quantize",
                str(model_path),
                "-o",
                str(tmp_path / "q.onnx"),
                "--calibration",
                str(tmp_path / "missing"),
            ]
        )
        == 2
    )


def test_quantize_subprocess(model_path: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nnperf",
            "quantize",
            str(model_path),
            "-o",
            str(tmp_path / "q.onnx"),
            "--calibration",
            "random:2",
            "--activation-type",
            "int8",
            "--iters",
            "2",
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "cosine similarity" in proc.stdout


def test_walkthrough_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    root = Path(__file__).resolve().parent.parent
    mod = runpy.run_path(str(root / "examples" / "optimize_walkthrough.py"))
    assert mod["main"](["--model", "zoo:mnist", "--queries", "3"]) == 0
    text = capsys.readouterr().out
    step1, _, rest = text.partition("== 2.")
    assert "QuantizeLinear" in step1 and "QuantizeLinear'" not in rest


@pytest.mark.slow
def test_benchmark_quick_runs() -> None:
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "optimize.py"), "--quick"],
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "int8 vs fp32" in proc.stdout and "fp16" in proc.stdout
