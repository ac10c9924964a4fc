"""Chrome trace-event export (chrome://tracing, Perfetto, catapult trace viewer).

Format: a JSON object ``{"traceEvents": [...], "displayTimeUnit": "ns", "otherData": {...}}``.
Each span is a complete event ``{"ph": "X", "name", "cat", "ts", "dur", "pid", "tid", "args"}``
with ``ts``/``dur`` in microseconds (floats, ns precision) counted from the profiler's start.
Tracks: host spans (record blocks, Inference and its children, EngineRun) sit on the track of the
OS thread that ran them (named after the Python thread, e.g. ``nnperf-worker-0``); operators sit
on one track per engine instance (``tid`` = 10 000 000 + track number) named
``engine s<session> i<instance> (<model>)``. ``M`` metadata events name the process and tracks.

Operators whose engine reports durations only (OpenVINO's ``PERF_COUNT``) carry
``args.synthetic_start = true`` and their track says ``synthetic start``: the operators are laid
out one after another from the start of their run, so their order and lengths are measured but
their start instants are not. Every operator event carries ``args.resolution_ns``.
"""

from __future__ import annotations

import json
import os
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nnperf.profiler.recorder import Profiler, Span

__all__ = ["OPERATOR_TID_BASE", "chrome_trace", "write_chrome_trace"]

OPERATOR_TID_BASE = 10_000_000


def _args(span: Span) -> dict[str, Any]:
    args: dict[str, Any] = {"span_id": span.span_id, "parent_span_id": span.parent_span_id}
    for key in ("session", "instance", "batch", "op_type", "op_class", "op_alias", "provider",
                "operator_index", "input_shapes", "output_shapes", "error",
                "resolution_ns", "synthetic_start"):  # fmt: skip
        value = getattr(span, key)
        if value is not None:
            args[key] = value
    return args


def chrome_trace(profiler: Profiler) -> dict[str, Any]:
    """The trace-event JSON object of ``profiler``'s spans."""
    spans = profiler.spans()
    pid = os.getpid()
    origin = min([s.start_ns for s in spans], default=profiler.start_ns)
    track_of: dict[tuple[int, int], int] = {}
    names: dict[int, str] = {}
    for n, (sess, inst, model) in enumerate(profiler.operator_tracks()):
        tid = OPERATOR_TID_BASE + n
        track_of[(sess, inst)] = tid
        names[tid] = f"engine s{sess} i{inst} ({model})"
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": "nnperf"}}
    ]
    used: set[int] = set()
    synthetic: set[int] = set()
    for s in spans:
        if s.cat == "Operator":
            found = track_of.get((s.session if s.session is not None else -1, s.instance or 0))
            tid = OPERATOR_TID_BASE + 9_999 if found is None else found
            names.setdefault(tid, "engine")
            if s.synthetic_start:
                synthetic.add(tid)
        else:
            tid = s.thread_id
        used.add(tid)
        events.append(
            {
                "ph": "X",
                "name": s.op_alias if s.cat == "Operator" and s.op_class == "external" else s.name,
                "cat": s.cat,
                "ts": round((s.start_ns - origin) / 1000.0, 3),
                "dur": round(s.dur_ns / 1000.0, 3),
                "pid": pid,
                "tid": tid,
                "args": _args(s),
            }
        )
    thread_names = profiler.thread_names()
    for tid in sorted(used):
        label = names.get(tid) or f"{thread_names.get(tid, 'thread')} ({tid})"
        if tid in synthetic:
            label += " [synthetic start: durations only]"
        events.append(
            {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": label}}
        )
        sort = tid - OPERATOR_TID_BASE + 1000 if tid >= OPERATOR_TID_BASE else 0
        events.append(
            {"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
             "args": {"sort_index": sort}}
        )  # fmt: skip
    return {
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {
            "producer": "nnperf",
            "profile_id": profiler.profile_id,
            "origin_perf_counter_ns": origin,
            "unattached_operators": profiler.unattached_operators,
            "dropped_inferences": profiler.dropped_inferences,
        },
    }


def write_chrome_trace(profiler: Profiler, file: str | os.PathLike[str] | IO[str]) -> None:
    """Write ``profiler``'s trace to a path or an open text file."""
    data = chrome_trace(profiler)
    if isinstance(file, (str, os.PathLike)):
        with open(file, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
    else:
        json.dump(data, file)
