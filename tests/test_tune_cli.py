"""``nnperf tune``: in-process through main(), one real subprocess, and bad flags (exit 2)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from models import matmul_model

from nnperf.cli import main
from nnperf.engines.config import RunConfig


@pytest.fixture
def model_path(tmp_path: Path) -> str:
    path = tmp_path / "mm.onnx"
    onnx.save(matmul_model(), str(path))
    return str(path)


def test_tune_writes_cache_report_json_then_hits(
    model_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "tuned.json"
    out_json = tmp_path / "result.json"
    argv = [
        "tune",
        model_path,
        "--objective",
        "throughput",
        "--time-budget-s",
        "1.5",
        "--device-candidates",
        "cpu(1)",
        "--device-candidates",
        "cpu(1)*2",
        "--batch-sizes",
        "1",
        "2",
        "--cache",
        str(cache),
        "--json",
        str(out_json),
        "--no-progress",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    for needle in ("prepare (ms)", "warm-up (ms)", "QPS (samples/s)", "winner:", "why:"):
        assert needle in text
    assert any(line.startswith("* ") for line in text.splitlines())
    # The instances trade-off is judged on memory and CPU too, not on speed alone.
    assert "cpu (%)" in text and "peak (MiB)" in text
    data = json.loads(out_json.read_text())
    assert data["schema"] == "nnperf.tune/1" and data["candidates"]
    run = data["candidates"][0]["measurements"][0]
    assert run["peak_rss_mib"] > 0 and run["cpu_percent"] > 0
    assert data["provenance"]["argv"][:2] == ["nnperf", "tune"]
    assert RunConfig.load(out_json) == RunConfig.load(cache)
    assert main(argv) == 0
    assert "cache hit" in capsys.readouterr().out
    # the candidates table exports (from the cache: nothing measured again)
    assert main([*argv, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["mark"] == "*" and rows[0]["status"] == "winner"
    assert {"candidate", "prepare_ms", "warmup_ms", "p50_ms", "value", "noise_pct"} <= rows[
        0
    ].keys()
    assert main([*argv, "--format", "markdown"]) == 0
    assert "| candidate | status | runs |" in capsys.readouterr().out
    # the result runs in bench
    assert main(["bench", model_path, "--config", str(cache), "--queries", "5"]) == 0


def test_latency_objective_report(model_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["tune", model_path, "--objective", "latency", "--latency-percentile", "99"]
    assert main([*argv, "--time-budget-s", "1", "--no-progress"]) == 0
    assert "p99 (ms)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["tune"], "missing MODEL"),
        (["tune", "MODEL", "--objective", "latency", "--latency-budget-ms", "5"], "applies to"),
        (["tune", "MODEL", "--variant", "int8"], "NAME=MODEL"),
        (["tune", "MODEL", "--device-candidates", "gpu"], "device"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    argv: list[str], needle: str, model_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [model_path if a == "MODEL" else a for a in argv]
    assert main([*argv, "--time-budget-s", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnperf: error:") and needle in err


def test_missing_model_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # ModelLoadError is a runtime/environment failure (exit 1), not a usage error
    assert main(["tune", "/no/such/model.onnx", "--time-budget-s", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nnperf: error:") and "does not exist" in err


@pytest.mark.parametrize(
    "flags",
    [
        ["--objective", "speed"],
        ["--time-budget-s", "0"],
        ["--latency-budget-ms", "-3"],
        ["--latency-percentile", "90"],
        ["--batch-sizes", "0"],
    ],
)
def test_bad_flags_exit_2(
    flags: list[str], model_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["tune", model_path, *flags])
    assert info.value.code == 2
    assert "nnperf: error:" in capsys.readouterr().err


def test_corrupt_cache_is_a_clear_error(
    model_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "tuned.json"
    cache.write_text("{not json")
    assert main(["tune", model_path, "--cache", str(cache), "--time-budget-s", "1"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert cache.read_text() == "{not json"


def test_real_subprocess(model_path: str, tmp_path: Path) -> None:
    cache = tmp_path / "tuned.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nnperf",
            "tune",
            model_path,
            "--time-budget-s",
            "1",
            "--device-candidates",
            "cpu(1)",
            "--batch-sizes",
            "1",
            "--cache",
            str(cache),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "winner:" in proc.stdout and cache.exists()


def test_measurements_from_older_caches_load_without_memory() -> None:
    import math

    from nnperf.tune.search import Measurement

    old = {"value": 1.0, "prepare_ms": 1.0, "warmup_ms": 1.0, "p50_ms": 1.0, "p99_ms": 1.0,
           "samples_per_s": 1.0, "duration_s": 1.0, "wall_s": 1.0, "phase": "prune"}  # fmt: skip
    m = Measurement.from_dict(old)
    assert math.isnan(m.peak_rss_mib) and math.isnan(m.cpu_percent)
    assert m.to_dict()["peak_rss_mib"] is None
    assert (
        Measurement.from_dict({**old, "peak_rss_mib": 80.5, "cpu_percent": 190.0}).cpu_percent
        == 190.0
    )


def test_tune_with_dim_runs_every_candidate_at_that_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `tune --dim seq=8` failed before measuring anything: the accuracy guard built its inputs
    # without the dims, and asked for the very flag that had been given.
    from models import seq_model

    path = tmp_path / "seq.onnx"
    onnx.save(seq_model(), str(path))
    cache = tmp_path / "tuned.json"
    argv = ["tune", str(path), "--time-budget-s", "2", "--no-progress", "--cache", str(cache)]
    assert main([*argv, "--dim", "seq=8"]) == 0
    assert RunConfig.load(cache).dims == {"seq": 8}
    assert "seq=8" in capsys.readouterr().out
    assert main([*argv, "--shape", "x:1x16x64"]) == 0
    assert RunConfig.load(cache).shapes == {"x": (1, 16, 64)}


def test_every_candidate_failing_quotes_why(
    model_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # It said "see the failed candidates' errors", which it never showed, and exited 2 (usage)
    # for an environment failure.
    from conftest import has_gpu

    if has_gpu():
        pytest.skip("needs a machine without CUDA")
    argv = ["tune", model_path, "--device-candidates", "cuda:0", "--time-budget-s", "2"]
    assert main([*argv, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "every one failed" in err and "CUDAExecutionProvider" in err
    assert err.count("\n") == 1
