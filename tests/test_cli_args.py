"""Every CLI path and number is checked before work starts (issue 13, finding 9): a bad value is
one ``nnperf: error:`` line naming the flag and the valid range, exit status 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnperf.cli import main

ROOT = Path(__file__).resolve().parents[1]
MISSING = "/nonexistent-dir-for-nnperf/out"


def _bad_invocations(tmp: Path) -> list[tuple[list[str], str]]:
    a_dir = str(tmp)
    under_a_file = str(tmp / "plain.txt" / "out.json")
    return [
        # unwritable outputs
        (["quantize", "zoo:identity", "-o", MISSING], "--output"),
        (["quantize", "zoo:identity", "-o", a_dir], "is a directory"),
        (["quantize", "zoo:identity", "-o", f"{tmp}/q.onnx", "--json", MISSING], "--json"),
        (["optimize", "zoo:identity", "-o", under_a_file], "does not exist"),
        (["optimize", "zoo:identity", "-o", f"{tmp}/o.onnx", "--json", MISSING], "--json"),
        (["bench", "zoo:identity", "--json", MISSING], "--json"),
        (["bench", "zoo:identity", "--trace-output", MISSING], "--trace-output"),
        (["profile", "zoo:identity", "--trace-output", MISSING], "--trace-output"),
        (["tune", "zoo:identity", "--cache", MISSING], "--cache"),
        (["tune", "zoo:identity", "--json", MISSING], "--json"),
        (["inspect", "zoo:identity", "--json", MISSING], "--json"),
        (["zoo", "identity", "-o", MISSING], "--output"),
        (["serve", "zoo:identity", "--trace-output", MISSING], "--trace-output"),
        (["quantize", "zoo:identity", "-o", "-"], "standard output"),
        # numbers out of range
        (["serve", "zoo:identity", "--max-body-mb", "nan"], "finite"),
        (["serve", "zoo:identity", "--max-body-mb", "0"], "> 0"),
        (["serve", "zoo:identity", "--port", "99999"], "65535"),
        (["serve", "zoo:identity", "--port", "-1"], "65535"),
        (["serve", "zoo:identity", "--max-delay-ms", "inf"], "finite"),
        (["serve", "zoo:identity", "--max-inflight", "0"], "positive"),
        (["serve", "zoo:identity", "--replicas", "0"], "positive"),
        (["serve", "zoo:identity", "--header-timeout-s", "0"], "> 0"),
        (["serve", "zoo:identity", "--max-connections", "0"], "positive"),
        (["quantize", "zoo:identity", "-o", f"{tmp}/q.onnx", "--iters", "0"], "positive"),
        (["quantize", "zoo:identity", "-o", f"{tmp}/q.onnx", "--iters", "-1"], "positive"),
        (["quantize", "zoo:identity", "-o", f"{tmp}/q.onnx", "--min-cosine", "5"], "(0, 1]"),
        (["quantize", "zoo:identity", "-o", f"{tmp}/q.onnx", "--min-cosine", "0"], "(0, 1]"),
        (["quantize", "zoo:identity", "-o", f"{tmp}/q.onnx", "--keep-float", "-1"], ">= 0"),
        (["quantize", "zoo:identity", "-o", f"{tmp}/q.onnx", "--percentage", "150"], "100"),
        (["optimize", "zoo:identity", "-o", f"{tmp}/o.onnx", "--iters", "-1"], "positive"),
        (["profile", "zoo:identity", "--queries", "0"], "positive"),
        (["bench", "zoo:identity", "--seed", "-1"], ">= 0"),
    ]


def test_bad_paths_and_numbers_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "plain.txt").write_text("x")
    for argv, match in _bad_invocations(tmp_path):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nnperf: error:"), (argv, err)
        assert match in lines[0], (argv, lines[0])
        assert "Traceback" not in err
    # Nothing was written: every check ran before the work.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt"]


def test_env_profiler_path_in_a_missing_directory_is_one_error_line() -> None:
    env = {**os.environ, "NNPERF_PROFILER_OUTPUT_PATH": MISSING + "/trace.json"}
    env["PYTHONPATH"] = str(ROOT / "src")
    proc = subprocess.run(
        [sys.executable, "-m", "nnperf", "bench", "zoo:identity", "--queries", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("nnperf: error:")]
    assert len(errors) == 1 and "NNPERF_PROFILER_OUTPUT_PATH" in errors[0], proc.stderr


def test_good_output_paths_still_work(tmp_path: Path) -> None:
    out = tmp_path / "identity.onnx"
    assert main(["zoo", "identity", "-o", str(out)]) == 0
    assert out.stat().st_size > 0
