"""``await runner.run(...)`` from asyncio (FuriosaAI's async example), with and without merging.

Run:  python examples/async_example.py
"""

from __future__ import annotations

import asyncio

import numpy as np

import nnperf


async def main() -> None:
    rng = np.random.default_rng(0)
    images = rng.standard_normal((64, 1, 1, 28, 28)).astype(np.float32)
    async with nnperf.AsyncRunner("zoo:mnist", device="cpu(1)*2") as runner:
        results = await asyncio.gather(*(runner.run(image) for image in images))
    print(f"{len(results)} results, logits shape {results[0][0].shape}")
    # The same, merging concurrent queries into batches of up to 16 rows.
    async with nnperf.AsyncRunner(
        "zoo:mnist", device="cpu(1)*2", max_batch_size=16, max_delay_ms=2.0
    ) as batched:
        merged = await asyncio.gather(*(batched.run(image) for image in images))
        stats = batched.backend.stats()  # type: ignore[attr-defined]
    same = all(np.allclose(a[0], b[0], atol=1e-5) for a, b in zip(results, merged))
    print(f"merged: {len(merged)} results, same outputs: {same}, batches: {stats.to_dict()}")


if __name__ == "__main__":
    asyncio.run(main())
