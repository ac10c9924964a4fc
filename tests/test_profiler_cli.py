"""``nnperf profile`` in process, the env-var tracing in a real subprocess, and layering."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from nnperf.cli import profile as profile_cli
from nnperf.profiler.recorder import OPERATORS_ENV
from nnperf.runtime.observers import PROFILER_OUTPUT_ENV


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="nnperf")
    profile_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_profile_cli_text(tmp_path: Path, capsys: object) -> None:
    trace = tmp_path / "t.json"
    rc = _main(["profile", "zoo:mnist", "--ops", "--queries", "20", "--warmup-iters", "2",
                "--trace-output", str(trace)])  # fmt: skip
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert rc == 0
    assert "Inference counts                : 20" in out
    assert "Operators by type" in out and "ReorderOutput" in out
    assert "Advice" in out and "nnperf bench zoo:mnist --batch-size 32" in out
    assert json.loads(trace.read_text())["traceEvents"]


def test_profile_cli_json(capsys: object) -> None:
    rc = _main(["profile", "zoo:identity", "--queries", "5", "--format", "json"])
    data = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert rc == 0 and data["schema"] == "nnperf.profile/2"
    assert data["summary_ns"]["count"] == 5
    assert len(data["samples"]["latency_ns"]) == 5


def test_profile_tables_export_as_csv_and_markdown(capsys: object) -> None:
    import csv
    import io

    rc = _main(["profile", "zoo:mnist", "--ops", "--queries", "5", "--warmup-iters", "1",
                "--format", "csv"])  # fmt: skip
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert rc == 0
    blocks = {b.splitlines()[0]: b for b in out.split("\n# ") if b.strip()}
    ops = next(b for title, b in blocks.items() if "Operators by type" in title)
    rows = list(csv.DictReader(io.StringIO(ops.split("\n", 1)[1])))
    assert rows[0].keys() == {"op_type", "op_class", "mean_us", "count", "total_us", "share_pct"}
    assert {r["op_type"] for r in rows} >= {"Conv", "ReorderOutput"}
    rc = _main(["profile", "zoo:mnist", "--queries", "5", "--format", "markdown"])
    md = capsys.readouterr().out  # type: ignore[attr-defined]
    assert rc == 0
    assert "**Inference Results Summary (span mode: latency of record)**" in md
    assert "| stat | latency (µs) | note |" in md


SCRIPT = """
import numpy as np, nnperf
s = nnperf.create("zoo:mnist")
for _ in range(7):
    s.run(np.zeros((1, 1, 28, 28), np.float32))
"""


def test_env_var_traces_unchanged_program(tmp_path: Path) -> None:
    trace = tmp_path / "env.json"
    env = {**os.environ, PROFILER_OUTPUT_ENV: str(trace), OPERATORS_ENV: "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], check=False, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"writing profiler output into {trace}" in proc.stderr
    events = json.loads(trace.read_text())["traceEvents"]
    assert sum(e["name"] == "Inference" for e in events) == 7
    assert any(e.get("cat") == "Operator" for e in events)


def test_runtime_does_not_import_profiler() -> None:
    code = (
        "import sys, nnperf, nnperf.runtime; "
        "bad = [m for m in ('pandas', 'nnperf.profiler') if m in sys.modules]; print(bad)"
    )
    env = {k: v for k, v in os.environ.items() if k != PROFILER_OUTPUT_ENV}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.strip() == "[]"


def test_profiler_import_is_pandas_free() -> None:
    code = "import sys, nnperf.profiler; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.strip() == "False"


def test_walkthrough_example_runs(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "examples" / "profiler_walkthrough.py"
    trace = tmp_path / "w.json"
    proc = subprocess.run(
        [sys.executable, str(script), "--queries", "5", "--trace", str(trace)],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Inference Results Summary" in proc.stdout and "Conv nodes" in proc.stdout
    assert json.loads(trace.read_text())["traceEvents"]


def test_overhead_benchmark_quick() -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "profiler_overhead.py"
    proc = subprocess.run([sys.executable, str(script), "--quick"], check=False,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "span mode / none" in proc.stdout
