"""Span recorder: Inference spans and children, blocks, pause/resume, ids, Runner queue wait."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

import nnperf
from nnperf.errors import InvalidInputError
from nnperf.profiler import profile
from nnperf.profiler.recorder import ROOT_SPAN_ID
from nnperf.profiler.tables import COLUMNS, device_executions, inferences, summary_text
from nnperf.runtime import observers as runtime_observers

X = np.zeros((1, 1, 28, 28), np.float32)


@pytest.fixture(scope="module")
def session() -> nnperf.Session:
    return nnperf.create("zoo:mnist")


def test_session_runs_become_inference_spans(session: nnperf.Session) -> None:
    with profile() as prof:
        with prof.record("warm up"):
            session.run(X)
        with prof.record("trace"):
            with prof.record("inner"):
                for _ in range(5):
                    session.run(X)
    spans = prof.spans()
    by_id = {s.span_id: s for s in spans}
    assert all(re.fullmatch(r"[0-9a-f]{32}", s.trace_id) for s in spans)
    assert len({s.span_id for s in spans}) == len(spans)
    assert all(re.fullmatch(r"[0-9a-f]{16}", s.span_id) for s in spans)
    infs = [s for s in spans if s.name == "Inference"]
    assert len(infs) == 6
    inner = next(s for s in spans if s.name == "inner")
    trace = next(s for s in spans if s.name == "trace")
    assert inner.parent_span_id == trace.span_id and trace.parent_span_id == ROOT_SPAN_ID
    assert sum(1 for s in infs if s.parent_span_id == inner.span_id) == 5
    for inf in infs:
        kids = sorted(
            (s for s in spans if s.parent_span_id == inf.span_id), key=lambda s: s.start_ns
        )
        assert [k.name for k in kids][:2] == ["Validation", "EngineRun"]
        assert all(inf.start_ns <= k.start_ns <= k.end_ns <= inf.end_ns for k in kids)
        parent = by_id[inf.parent_span_id]
        assert parent.start_ns <= inf.start_ns and inf.end_ns <= parent.end_ns
    assert not session.observers


def test_pause_resume_idempotent(session: nnperf.Session) -> None:
    with profile() as prof:
        prof.pause()
        prof.pause()
        with prof.record("warm up"):
            session.run(X)
        prof.resume()
        prof.resume()
        with prof.record("trace"):
            session.run(X)
    df = prof.dataframe()
    assert len(df[df["name"] == "warm up"]) == 0
    assert len(df[df["name"] == "Inference"]) == 1


def test_runner_queries_have_queue_wait() -> None:
    with profile() as prof, nnperf.create_runner("zoo:mnist", workers=2) as runner:
        futures = [runner.submit(X) for _ in range(12)]
        for f in futures:
            f.result()
    spans = prof.spans()
    infs = [s for s in spans if s.name == "Inference"]
    assert len(infs) == 12
    names = {s.name for s in spans}
    assert {"Validation", "QueueWait", "EngineRun"} <= names
    worker_tids = {s.thread_id for s in spans if s.name == "EngineRun"}
    assert all(prof.thread_names()[t].startswith("nnperf-worker") for t in worker_tids)


def test_tables_and_dataframe(session: nnperf.Session) -> None:
    with profile(format="pandas") as prof:
        for _ in range(20):
            session.run(X)
    df = prof.dataframe()
    assert tuple(df.columns) == COLUMNS
    assert (df["dur"] == df["end"] - df["start"]).all()
    text = summary_text(df)
    assert "Inference counts                : 20" in text
    values = [int(line.split(":")[1]) for line in text.splitlines() if "latency" in line]
    assert values[0] <= values[3] <= values[1]  # min <= median <= max
    assert values[4:] == sorted(values[4:])  # percentiles increase
    assert len(inferences(df)) == 20
    ex = device_executions(df)
    assert len(ex) == 20 and ex["compute_ns"].isna().all()
    buf = io.StringIO()
    prof.export(buf)
    assert buf.getvalue().splitlines()[0].startswith("trace_id,parent_span_id")


def test_failed_query_recorded(session: nnperf.Session) -> None:
    with profile() as prof:
        with pytest.raises(InvalidInputError):
            session.run(np.zeros((1, 2), np.float32))
    infs = [s for s in prof.spans() if s.name == "Inference"]
    assert len(infs) == 1 and infs[0].error == "InvalidInputError"


def test_bad_format() -> None:
    with pytest.raises(InvalidInputError, match="expected 'chrome'"):
        profile(format="csv")  # type: ignore[arg-type]


def test_no_profiler_no_observer(session: nnperf.Session) -> None:
    session.run(X)
    assert not session.observers and runtime_observers._WATCHERS == ()
