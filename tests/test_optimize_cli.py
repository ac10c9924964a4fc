"""``nnperf optimize`` and ``nnperf quantize`` in process, plus one real subprocess."""

from __future__ import annotations

import json
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
    # the trained EfficientNet-Lite0 section ran, or said in one line what to install
    assert "EfficientNet-Lite0" in proc.stdout


def test_quantize_no_quantize_input_uses_the_calibrated_scale(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--no-quantize-input on a model calibrated on float data: the uint8 input carries the
    calibrated scale (printed, in the JSON and in the model), and the comparison feeds inputs
    quantized with it, so the numbers agree with float."""
    import json

    from nnperf.optimize import get_quant_params

    out, report = tmp_path / "q.onnx", tmp_path / "r.json"
    argv = ["quantize", str(model_path), "-o", str(out), "--calibration", "random:4"]
    argv += ["--activation-type", "uint8", "--no-quantize-input", "--iters", "3"]
    assert main([*argv, "--json", str(report)]) == 0
    text = capsys.readouterr().out
    assert "input 'input' takes uint8: round(x / " in text
    q = onnx.load(str(out))
    assert q.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    params = get_quant_params(q, "input")
    result = json.loads(report.read_text())
    assert result["input_quantization"]["input"] == params.to_dict()
    assert params.scale < 0.1  # random:N is standard-normal floats, not 0..255 pixels
    assert result["comparison"]["agreement"]["cosine"] > 0.99


def test_optimize_uint8_before_pipeline_normalises_on_the_host(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--input-type uint8 compares pipelines from the same uint8 feed: before = host normalise
    (and transpose, with --permute-input) + original model, after = edited model. Equal outputs
    show the before side really got the host-normalised pixels."""
    import json

    report = tmp_path / "r.json"
    argv = ["optimize", str(model_path), "-o", str(tmp_path / "o.onnx"), "--input-type", "uint8"]
    argv += ["--mean", "0.5", "--std", "0.25", "--permute-input", "0,3,1,2", "--iters", "6"]
    assert main([*argv, "--json", str(report)]) == 0
    text = capsys.readouterr().out
    assert "before: raw uint8 feed -> transpose + normalise on the host" in text
    result = json.loads(report.read_text())["comparison"]
    assert result["agreement"]["cosine"] > 0.99999
    assert result["before"]["iters"] == result["after"]["iters"] == 6


def test_optimize_takes_the_shape_flags_its_error_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A model with a symbolic non-batch dim: the error said "set it with --dim seq=VALUE", a flag
    # optimize did not have.
    from models import seq_model

    path = tmp_path / "seq.onnx"
    onnx.save(seq_model(), str(path))
    out = tmp_path / "o.onnx"
    base = ["optimize", str(path), "-o", str(out), "--iters", "2"]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "--dim seq=VALUE" in err
    assert main([*base, "--dim", "seq=8", "--json", str(tmp_path / "r.json")]) == 0
    assert out.exists()
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["comparison"]["agreement"]["cosine"] > 0.999
    capsys.readouterr()
    assert main([*base, "--shape", "x:2x8x64", "--batch-size", "2"]) == 0
    assert main([*base, "--dim", "sq=8"]) == 2
    assert "no symbolic dimension 'sq'" in capsys.readouterr().err
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "0.npy", np.zeros((1, 8, 64), np.float32))
    assert main([*base, "--dim", "seq=8", "--eval-data", str(data)]) == 2
    assert "--eval-data with --dim/--shape" in capsys.readouterr().err


def test_quantize_random_calibration_rejects_an_unknown_dim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `quantize --calibration random:N --dim sq=3` ignored the misspelt dim silently.
    from models import seq_model

    path = tmp_path / "seq.onnx"
    onnx.save(seq_model(), str(path))
    argv = ["quantize", str(path), "-o", str(tmp_path / "q.onnx"), "--calibration", "random:4"]
    assert main([*argv, "--dim", "seq=8", "--dim", "sq=3"]) == 2
    assert "no symbolic dimension 'sq'" in capsys.readouterr().err
