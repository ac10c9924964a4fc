"""Per-call cost of ``Session.run`` vs raw ``onnxruntime.InferenceSession.run``.

Both run the same model bytes with the same options (1 intra-op thread, ORT_ENABLE_ALL) in one
process; rounds are interleaved and each reports the median per-call time of a timed loop.
Targets: ratio <= 1.0 on zoo:identity, <= 1.05 on zoo:mnist.

    python benchmarks/overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort
from _common import header, interleave, median

import nnperf
from nnperf import zoo


def per_call_us(fn, feed, calls: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        fn(feed)
    return (time.perf_counter_ns() - t0) / calls / 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    args = ap.parse_args()
    repeats = 3 if args.quick else 15
    print(header("overhead: nnperf Session.run vs raw onnxruntime run (1 thread)"))
    print(f"{'model':<10} {'raw ort us':>11} {'nnperf us':>10} {'ratio':>7}  target")
    for name, calls, target in (("identity", 20000, 1.0), ("mnist", 5000, 1.05)):
        if args.quick:
            calls //= 10
        data = zoo.model_bytes(name)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        raw = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        sess = nnperf.create(data, device="cpu(1)")
        desc = sess.inputs[0]
        shape = [1 if not isinstance(d, int) else d for d in desc.shape]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        feed = {desc.name: x}
        np.testing.assert_allclose(raw.run(None, feed)[0], sess.run(feed)[0], rtol=1e-5, atol=1e-6)

        def raw_run(f, raw=raw):
            return raw.run(None, f)

        results = interleave(
            {
                "raw": lambda: per_call_us(raw_run, feed, calls),
                "nnperf": lambda: per_call_us(sess.run, feed, calls),
            },
            repeats,
        )
        r, n = median(results["raw"]), median(results["nnperf"])
        ratios = [b / a for a, b in zip(results["raw"], results["nnperf"])]
        ok = "ok" if median(ratios) <= target else "MISS"
        print(f"{name:<10} {r:>11.2f} {n:>10.2f} {median(ratios):>7.3f}  <= {target} {ok}")
        sess.close()


if __name__ == "__main__":
    main()
