"""Profiler: spans of every query, onnxruntime operator events, Chrome traces, pandas tables.

Usage::

    from nnperf.profiler import profile

    with profile(file="trace.json", operators=True) as prof:
        session = nnperf.create("zoo:mnist")
        with prof.record("warm up"):
            session.run(x)
        with prof.record("trace"):
            for _ in range(100):
                session.run(x)
    prof.print_summary()

``NNPERF_PROFILER_OUTPUT_PATH=trace.json`` traces any program that uses nnperf, no code change.
Imports no pandas until a table is asked for.
"""

from __future__ import annotations

from nnperf.profiler.engine_events import OpClass, OperatorEvent, classify
from nnperf.profiler.recorder import Profiler, Span, profile

__all__ = ["OpClass", "OperatorEvent", "Profiler", "Span", "classify", "profile"]
