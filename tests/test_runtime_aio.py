"""AsyncRunner on the real engine."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from models import failing_model, matmul_model

import nnperf
from nnperf import EngineError, InvalidInputError

ROOT = Path(__file__).resolve().parents[1]


def _expected(model, xs):
    with nnperf.create(model) as sess:
        return sess.run(xs.reshape(len(xs), -1))[0]


@pytest.mark.parametrize("max_batch_size", [None, 16])
def test_1000_coroutines_outputs_equal_sync(max_batch_size):
    model = matmul_model()
    xs = np.random.default_rng(1).standard_normal((1000, 1, 16)).astype(np.float32)
    expected = _expected(model, xs)
    before = threading.active_count()

    async def main():
        async with nnperf.AsyncRunner(
            model, device="cpu(1)*2", workers=4, max_batch_size=max_batch_size
        ) as runner:
            blocked = 0

            async def ticker():
                nonlocal blocked
                while True:  # the loop keeps turning while queries run
                    t = time.perf_counter()
                    await asyncio.sleep(0)
                    blocked = max(blocked, time.perf_counter() - t)

            tick = asyncio.ensure_future(ticker())
            outs = await asyncio.gather(*(runner.run(x) for x in xs))
            tick.cancel()
            assert runner.inflight == 0
            stats = getattr(runner.backend, "stats", None)
            return outs, (stats() if stats else None), blocked

    outs, stats, blocked = asyncio.run(main())
    got = np.concatenate([o[0] for o in outs])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert blocked < 1.0
    if stats is not None:
        assert stats.requests == 1000 and stats.rows == 1000
        assert max(stats.histogram) <= 16
        assert stats.mean_batch_size > 1
    assert threading.active_count() == before


def test_bad_inputs_fail_alone():
    async def main():
        async with nnperf.AsyncRunner(failing_model(), device="cpu(1)*2") as runner:
            x = np.ones((2, 4), np.float32)

            async def one(i):
                if i % 7 == 3:
                    return await runner.run({"x": x.astype(np.float64), "shape": np.array([4, 2])})
                if i % 7 == 5:
                    return await runner.run({"x": x, "shape": np.array([3, 3], np.int64)})
                return await runner.run({"x": x, "shape": np.array([4, 2], np.int64)})

            results = await asyncio.gather(*(one(i) for i in range(70)), return_exceptions=True)
            assert runner.inflight == 0
            return results

    results = asyncio.run(main())
    for i, r in enumerate(results):
        if i % 7 == 3:
            assert isinstance(r, InvalidInputError)
        elif i % 7 == 5:
            assert isinstance(r, EngineError)
        else:
            assert r[0].shape == (4, 2)


@pytest.mark.parametrize("max_batch_size", [None, 8])
def test_cancellation_and_timeouts_leak_no_slot(max_batch_size):
    before = threading.active_count()

    async def main():
        runner = nnperf.AsyncRunner(
            matmul_model(k=256, n=256), device="cpu(1)", max_batch_size=max_batch_size
        )
        x = np.ones((1 if max_batch_size else 64, 256), np.float32)
        tasks = [asyncio.ensure_future(runner.run(x)) for _ in range(200)]
        await asyncio.sleep(0.01)
        for t in tasks[::2]:
            t.cancel()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks[1::2], runner.run(x)), timeout=0)
        await asyncio.gather(*tasks, return_exceptions=True)
        for _ in range(500):  # started queries finish in the background
            if runner.inflight == 0:
                break
            await asyncio.sleep(0.01)
        assert runner.inflight == 0
        backend = runner.backend
        if max_batch_size:  # bounded on the loop, and by the batcher's own room
            assert runner._limiter.free == runner.max_inflight
            assert backend._room._value == backend.max_inflight
        else:  # bounded by the runner's slots
            assert backend._slots._value == backend.max_inflight
        out = await runner.run(x)  # still usable
        assert out[0].shape[1] == 256
        await runner.close()
        with pytest.raises(InvalidInputError):
            await runner.run(x)

    asyncio.run(main())
    assert threading.active_count() == before


def test_async_example_runs():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "async_example.py")],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "64 results" in proc.stdout
