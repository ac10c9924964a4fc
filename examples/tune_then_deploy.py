"""Tune, then run what was measured: ``nnperf tune`` writes a RunConfig (engine, device, batch and
runtime technique); ``nnperf.create_executor`` builds exactly that executor.

Run:  python examples/tune_then_deploy.py
"""

from __future__ import annotations

import numpy as np

import nnperf
from nnperf.tune import tune


def main() -> None:
    # A short search for the example; give it a minute or more for a real model.
    result = tune("zoo:mnist", objective="throughput", time_budget_s=6.0, cache="tuned.json")
    print(f"winner: {result.winner.label}  ({result.config.technique or 'no runtime technique'})")

    rng = np.random.default_rng(0)
    rows = result.config.batch_size or 1
    images = rng.standard_normal((16, rows, 1, 28, 28)).astype(np.float32)
    with nnperf.create_executor("zoo:mnist", config="tuned.json") as executor:
        print(f"executor: {type(executor).__name__} on {executor.instances} instance(s)")
        futures = [executor.submit(x) for x in images]  # from any thread; one result each
        logits = [f.result()[0] for f in futures]

    # The same numbers as a plain session.
    with nnperf.create("zoo:mnist") as session:
        for x, out in zip(images, logits):
            np.testing.assert_allclose(out, session.run(x)[0], rtol=1e-4, atol=1e-5)
    print(f"{len(logits)} queries of {rows} row(s) answered; outputs match a plain session")


if __name__ == "__main__":
    main()
