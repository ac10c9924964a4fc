"""Issue 16's profiler defects, each reproduced by a test first (seed fidelity).

1. ``NNPERF_PROFILER_OUTPUT_PATH=x.csv`` wrote nothing (pandas imported after shutdown began).
2. One ``trace_id`` per profiler, so the seed's group-by-trace_id gave one group.
3. ``profile --ops`` quoted latencies measured with operator recording on, unflagged.
4. Operator times printed as ns with false precision (the engine reports µs).
5. ``bench --trace-output`` had host spans only, and no test; OpenVINO's operator starts are
   synthetic and must say so in the trace.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnperf
from nnperf.cli import main
from nnperf.profiler import profile
from nnperf.profiler.recorder import OPERATORS_ENV
from nnperf.runtime.observers import PROFILER_OUTPUT_ENV

SCRIPT = """
import numpy as np, nnperf
s = nnperf.create("zoo:mnist")
for _ in range(7):
    s.run(np.zeros((1, 1, 28, 28), np.float32))
"""


def test_env_var_csv_output_is_written_at_exit(tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    env = {**os.environ, PROFILER_OUTPUT_ENV: str(out), OPERATORS_ENV: "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert sum(r["name"] == "Inference" for r in rows) == 7
    assert any(r["cat"] == "Operator" for r in rows)
    assert rows[0].keys() >= {"trace_id", "parent_span_id", "span_id", "dur", "operator_index"}
    # Null index columns are empty cells, as pandas writes them.
    assert next(r for r in rows if r["cat"] == "Runtime")["operator_index"] == ""


def test_one_trace_id_per_inference() -> None:
    x = np.zeros((1, 1, 28, 28), np.float32)
    with profile(operators=True) as prof:
        s = nnperf.create("zoo:mnist")
        with prof.record("trace"):
            for _ in range(5):
                s.run(x)
        s.close()
    df = prof.dataframe()
    inferences = df.loc[df["name"] == "Inference"]
    assert inferences["trace_id"].nunique() == 5
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in df["trace_id"])
    # The seed's grouping: each trace is one inference with its children and operators.
    for trace, group in df.loc[df["cat"] != "Record"].groupby("trace_id"):
        assert (group["name"] == "Inference").sum() == 1, trace
        assert (group["name"] == "EngineRun").sum() == 1
        assert (group["cat"] == "Operator").sum() >= 3
    # Blocks are traces of their own; inferences still name the block as their parent.
    block = df.loc[df["cat"] == "Record"].iloc[0]
    assert block["trace_id"] not in set(inferences["trace_id"])
    assert set(inferences["parent_span_id"]) == {block["span_id"]}
    # device_executions carries each inference's own trace id.
    from nnperf.profiler import tables

    ex = tables.device_executions(df)
    assert ex["trace_id"].nunique() == 5


def test_profile_ops_latency_of_record_comes_from_span_mode(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc = main(["profile", "zoo:mnist", "--ops", "--queries", "30", "--warmup-iters", "3",
               "--format", "json"])  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    # The latency tables come from queries that recorded no operators...
    assert data["summary_ns"]["count"] == 30
    assert data["latency_mode"] == "span"
    # ...the breakdown from a separate operator pass, labelled, with the engine's cost.
    op = data["operator_mode"]
    assert op["summary_ns"]["count"] == 30
    assert "onnxruntime" in op["cost"] and "µs" in op["cost"]
    assert op["inflation_p50"] == pytest.approx(
        op["summary_ns"]["median"] / data["summary_ns"]["median"], rel=1e-3
    )
    assert data["operators"] and data["operators"][0]["resolution_ns"] == 1000


def test_profile_ops_text_labels_both_passes(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["profile", "zoo:mnist", "--ops", "--queries", "20", "--warmup-iters", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "latency of record: span mode (no operator recording)" in out
    assert re.search(r"operator mode \(breakdown only\): p50 [\d.]+ µs = [\d.]+x span mode", out)
    assert "onnxruntime's profiler adds about" in out


def test_span_mode_queries_record_no_operator_events() -> None:
    x = np.zeros((1, 1, 28, 28), np.float32)
    with profile(operators=True) as prof:
        s = nnperf.create("zoo:mnist")
        with prof.record("spans", operators=False):
            for _ in range(5):
                s.run(x)
        with prof.record("ops"):
            for _ in range(5):
                s.run(x)
        s.close()
    from nnperf.profiler import tables

    df = prof.dataframe()
    assert (tables.descendants(df, "spans")["cat"] == "Operator").sum() == 0
    assert (tables.descendants(df, "ops")["cat"] == "Operator").sum() >= 15


def test_operator_times_print_at_the_engines_resolution() -> None:
    x = np.zeros((1, 1, 28, 28), np.float32)
    with profile(operators=True) as prof:
        s = nnperf.create("zoo:mnist")
        for _ in range(3):
            s.run(x)
        s.close()
    from nnperf.profiler import tables

    df = prof.dataframe()
    assert set(df.loc[df["cat"] == "Operator", "resolution_ns"]) == {1000}
    table = tables.operators_table(df)
    text = table.render("text")
    assert "mean (µs)" in text and "resolution 1 µs" in text
    # µs figures: no ns-scale numbers with a fractional part, at most 1 decimal on means.
    records = table.records()  # what CSV and JSON carry
    assert all(r["mean_us"] == round(r["mean_us"], 1) for r in records)
    assert all(isinstance(r["total_us"], int) for r in records)
    assert not re.search(r"\d{4,}\.\d", text)


def test_bench_trace_output_has_host_spans_and_operators_when_asked(tmp_path: Path) -> None:
    plain, ops = tmp_path / "plain.json", tmp_path / "ops.json"
    base = ["bench", "zoo:mnist", "--queries", "10", "--warmup-iters", "1", "--no-progress"]
    assert main([*base, "--trace-output", str(plain)]) == 0
    assert main([*base, "--trace-output", str(ops), "--trace-operators"]) == 0
    host = json.loads(plain.read_text())["traceEvents"]
    assert sum(e["name"] == "Inference" for e in host) >= 10
    assert not any(e.get("cat") == "Operator" for e in host)
    dev = json.loads(ops.read_text())["traceEvents"]
    operators = [e for e in dev if e.get("cat") == "Operator"]
    assert operators and all(e["ph"] == "X" and e["dur"] >= 0 for e in operators)
    names = {e["args"]["name"] for e in dev if e.get("name") == "thread_name"}
    assert any(n.startswith("engine s0 i0") for n in names)


def test_bench_trace_operators_needs_trace_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "zoo:mnist", "--trace-operators", "--queries", "1"]) == 2
    assert "--trace-operators needs --trace-output" in capsys.readouterr().err


def test_openvino_operator_starts_are_labelled_synthetic(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    from nnperf.engines.config import RunConfig

    x = np.zeros((1, 1, 28, 28), np.float32)
    trace = tmp_path / "ov.json"
    with profile(file=trace, operators=True) as prof:
        s = nnperf.create("zoo:mnist", config=RunConfig(engine="openvino"))
        for _ in range(3):
            s.run(x)
        s.close()
    events = [e for e in json.loads(trace.read_text())["traceEvents"] if e.get("cat") == "Operator"]
    assert events
    assert all(e["args"]["synthetic_start"] is True for e in events)
    names = {
        e["args"]["name"]
        for e in json.loads(trace.read_text())["traceEvents"]
        if e.get("name") == "thread_name"
    }
    assert any("synthetic start" in n for n in names)
    df = prof.dataframe()
    assert df.loc[df["cat"] == "Operator", "synthetic_start"].all()
