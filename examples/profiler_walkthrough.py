"""The seed's profiler walkthrough, redone with nnperf (Furiosa's profile()/record()/print_*).

Run:  python examples/profiler_walkthrough.py [--model zoo:mnist] [--queries 50] [--trace FILE]
Writes a Chrome trace (open it in ui.perfetto.dev or chrome://tracing) and prints the five tables
and a dataframe query. For a trace with no code change at all, run any nnperf program with
``NNPERF_PROFILER_OUTPUT_PATH=trace.json``.
"""

from __future__ import annotations

import argparse

import numpy as np

import nnperf
from nnperf.profiler import profile


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="zoo:mnist", help="model (default zoo:mnist)")
    ap.add_argument("--queries", type=int, default=50, help="measured queries (default 50)")
    ap.add_argument("--trace", default="trace.json", help="Chrome trace path (default trace.json)")
    args = ap.parse_args(argv)

    with profile(file=args.trace, operators=True) as profiler:
        session = nnperf.create(args.model)
        shape = [d if isinstance(d, int) else 1 for d in session.inputs[0].shape]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        with profiler.record("warm up"):
            for _ in range(2):
                session.run(x)
        with profiler.record("trace"):
            for _ in range(args.queries):
                session.run(x)
        session.close()

    profiler.print_summary()
    profiler.print_inferences()
    profiler.print_device_executions()
    profiler.print_operators()
    profiler.print_external_operators()

    df = profiler.dataframe()
    conv = df[(df["cat"] == "Operator") & (df["op_type"] == "Conv")]
    print(f"\nConv nodes: {conv['name'].nunique()}, mean {conv['dur'].mean():.0f} ns per execution")
    print(f"trace written to {args.trace}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
