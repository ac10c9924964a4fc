"""Profiler overhead on zoo:mobilenetv2, batch 1, one process, interleaved rounds.

Modes per round (order rotated): no profiler; span mode (``profile()``); operator mode
(``profile(operators=True)``); onnxruntime's own profiling (a session created with
``enable_profiling``, plain ORT loop); and a plain ORT loop without profiling as its baseline.
Reports the median per-query latency of each mode and the ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import numpy as np
import onnxruntime as ort

import nnperf
from nnperf.engines.config import RunConfig
from nnperf.profiler import profile
from nnperf.zoo import model_bytes


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _loop(fn: object, x: np.ndarray, n: int) -> float:
    run = fn  # type: ignore[assignment]
    t0 = time.perf_counter_ns()
    for _ in range(n):
        run(x)  # type: ignore[operator]
    return (time.perf_counter_ns() - t0) / n / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="mobilenetv2")
    ap.add_argument("--queries", type=int, default=100, help="queries per round (default 100)")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (identity, 2 rounds)")
    args = ap.parse_args()
    if args.quick:
        args.model, args.queries, args.rounds = "mnist", 20, 2
    print(f"machine: {_cpu()}, {os.cpu_count()} cores; onnxruntime {ort.__version__}, "
          f"nnperf {nnperf.__version__}, python {platform.python_version()}")  # fmt: skip
    cfg = RunConfig(device="cpu(1)*1")
    session = nnperf.Session(f"zoo:{args.model}", config=cfg)
    x = (
        np.random.default_rng(0)
        .standard_normal([d if isinstance(d, int) else 1 for d in session.inputs[0].shape])
        .astype(np.float32)
    )
    data = model_bytes(args.model)
    tmp = tempfile.mkdtemp(prefix="nnperf-bench-")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    plain_ort = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    so_p = ort.SessionOptions()
    so_p.intra_op_num_threads = 1
    so_p.enable_profiling = True
    so_p.profile_file_prefix = os.path.join(tmp, "ort")
    prof_ort = ort.InferenceSession(data, so_p, providers=["CPUExecutionProvider"])
    name = session.inputs[0].name

    def run_none() -> float:
        return _loop(session.run, x, args.queries)

    def run_spans() -> float:
        with profile():
            return _loop(session.run, x, args.queries)

    def run_ops() -> float:
        # Sessions get onnxruntime per-node profiling when created under operators=True; the
        # load and two warm-up runs stay outside the timed loop.
        with profile(operators=True, max_operator_runs=args.queries + 2):
            op_session = nnperf.Session(f"zoo:{args.model}", config=cfg)
            op_session.run(x)
            op_session.run(x)
            return _loop(op_session.run, x, args.queries)

    def run_ort() -> float:
        return _loop(lambda a: plain_ort.run(None, {name: a}), x, args.queries)

    def run_ort_prof() -> float:
        return _loop(lambda a: prof_ort.run(None, {name: a}), x, args.queries)

    modes = {"none": run_none, "spans": run_spans, "operators": run_ops, "ort": run_ort,
             "ort_profiling": run_ort_prof}  # fmt: skip
    for fn in modes.values():  # warm up
        fn()
    results: dict[str, list[float]] = {k: [] for k in modes}
    order = list(modes)
    for r in range(args.rounds):
        for k in order[r % len(order) :] + order[: r % len(order)]:
            results[k].append(modes[k]())
    # a second "none" series measures the noise floor of identical runs
    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"model zoo:{args.model}, batch 1, 1 thread, {args.queries} queries x {args.rounds} rounds"
    )
    for k, v in med.items():
        print(f"  {k:<14} median {v * 1000:9.1f} µs/query")
    print(f"span mode / none          : {med['spans'] / med['none']:.4f}")
    print(f"operator mode / none      : {med['operators'] / med['none']:.4f}")
    print(f"ORT profiling / plain ORT : {med['ort_profiling'] / med['ort']:.4f}")
    print(f"operator mode / ORT prof. : {med['operators'] / med['ort_profiling']:.4f}")
    prof_ort.end_profiling()


if __name__ == "__main__":
    main()
