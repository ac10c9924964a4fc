"""Quick start: load a zoo model, run it, measure it.

python examples/quickstart.py
"""

from __future__ import annotations

import numpy as np

import nnperf
from nnperf.bench import run_benchmark


def main() -> None:
    with nnperf.create("zoo:mnist", device="cpu(1)") as sess:
        print(sess.summary())
        x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)
        (logits,) = sess.run(x)
        print("logits:", np.round(logits, 3))
        try:
            sess.run(x.astype(np.float64))
        except nnperf.InvalidInputError as exc:
            print("bad input ->", exc)

    for device in ("cpu(2)", "cpu(1)*2"):
        r = run_benchmark("zoo:mnist", scenario="offline", device=device, queries=500)
        print(f"{device:<9} p50 {r.latency.p50_ms:.3f} ms  {r.throughput_qps:,.0f} queries/s")


if __name__ == "__main__":
    main()
