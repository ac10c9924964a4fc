"""Split and merge batching on the real engine."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from models import matmul_model, two_input_model

import nnperf
from nnperf import InvalidInputError
from nnperf.runtime import DynamicBatcher, SplitBatcher, run_split


@pytest.mark.parametrize("rows", [1, 4, 10, 13])
def test_split_equals_one_big_run(rows):
    model = matmul_model()
    x = np.random.default_rng(rows).standard_normal((rows, 16)).astype(np.float32)
    with nnperf.create(model) as sess:
        expected = sess.run(x)[0]
    with nnperf.create_runner(model, device="cpu(1)*2", batch_size=4) as runner:
        got = SplitBatcher(runner).run(x)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    with nnperf.create(model, batch_size=4) as sess:
        np.testing.assert_allclose(run_split(sess, x)[0], expected, rtol=1e-5, atol=1e-6)


def test_split_errors():
    with nnperf.create(matmul_model()) as sess:
        with pytest.raises(InvalidInputError, match="chunk_size"):
            SplitBatcher(sess)
        assert SplitBatcher(sess, chunk_size=3).run(np.ones((7, 16), np.float32))[0].shape == (7, 8)
    with nnperf.create(matmul_model(), batch_size=4) as sess:
        with pytest.raises(InvalidInputError, match="expected chunk_size=4"):
            SplitBatcher(sess, chunk_size=3)
        with pytest.raises(InvalidInputError):
            SplitBatcher(sess).run(np.ones((7, 15), np.float32))


def test_merge_many_threads_each_gets_its_rows():
    model = two_input_model()
    rng = np.random.default_rng(0)
    n = 2000
    with nnperf.create(model) as sess:
        full = {
            d.name: (
                rng.integers(0, 5, size=(n, *d.shape[1:])).astype(d.dtype)
                if d.dtype == "int64"
                else rng.standard_normal((n, *d.shape[1:])).astype(d.dtype)
            )
            for d in sess.inputs
        }
        expected = sess.run(full)
    before = threading.active_count()
    runner = nnperf.create_runner(model, device="cpu(1)*2")
    batcher = DynamicBatcher(
        runner, max_batch_size=32, max_delay_ms=2.0, preferred_batch_sizes=(8, 16)
    )
    results: list = [None] * n

    def client(k: int) -> None:
        for i in range(k, n, 16):
            results[i] = batcher.run({k: v[i : i + 1] for k, v in full.items()})

    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for j in range(len(expected)):
        got = np.concatenate([r[j] for r in results])
        np.testing.assert_allclose(got, expected[j], rtol=1e-5, atol=1e-6)
    stats = batcher.stats()
    assert stats.requests == n and stats.rows == n
    assert sum(stats.histogram.values()) == stats.batches
    assert max(stats.histogram) <= 32
    assert stats.to_dict()["mean_batch_size"] == stats.mean_batch_size
    batcher.close()
    assert threading.active_count() == before
    with pytest.raises(InvalidInputError, match="closed"):
        batcher.submit({k: v[:1] for k, v in full.items()})


def test_merge_rejects_bad_queries_alone_and_pads_fixed_batches():
    runner = nnperf.create_runner(matmul_model(), device="cpu(1)", batch_size=8)
    with DynamicBatcher(runner, max_batch_size=8, max_delay_ms=1.0) as batcher:
        with pytest.raises(InvalidInputError, match="max_batch_size"):
            batcher.submit(np.ones((9, 16), np.float32))
        with pytest.raises(InvalidInputError) as err:
            batcher.submit(np.ones((1, 16), np.float64))
        assert "float32 (batch, 16)" in str(err.value)  # the rows dim reads as the model's
        x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
        futures = [batcher.submit(x[i : i + 1]) for i in range(3)]
        got = np.concatenate([f.result(timeout=10)[0] for f in futures])
    with nnperf.create(matmul_model()) as sess:
        np.testing.assert_allclose(got, sess.run(x)[0], rtol=1e-5, atol=1e-6)
    runner = nnperf.create_runner(matmul_model(), batch_size=4)
    with pytest.raises(InvalidInputError, match="max_batch_size <= 4"):
        DynamicBatcher(runner, max_batch_size=8)
    with pytest.raises(InvalidInputError, match="preferred"):
        DynamicBatcher(runner, max_batch_size=4, preferred_batch_sizes=(5,))
    runner.close()


def test_merge_close_cancels_pending():
    runner = nnperf.create_runner(matmul_model(k=256, n=256), device="cpu(1)")
    batcher = DynamicBatcher(runner, max_batch_size=4, max_delay_ms=50.0)
    x = np.ones((1, 256), np.float32)
    futures = [batcher.submit(x) for _ in range(200)]
    batcher.close(cancel_pending=True)
    done = [f for f in futures if not f.cancelled()]
    assert all(f.result()[0].shape == (1, 256) for f in done)
    assert batcher._room._value == batcher.max_inflight


# -- batching on the event loop (submit_async) --------------------------------------------------
def _async_rows(batcher: DynamicBatcher, xs: np.ndarray, **gather_kw):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        return await asyncio.gather(*(batcher.submit_async(x[None]) for x in xs), **gather_kw)

    return asyncio.run(main())


def test_async_merge_waits_for_the_delay_then_sends_what_is_there():
    model = matmul_model()
    runner = nnperf.create_runner(model, device="cpu(1)")
    batcher = DynamicBatcher(runner, max_batch_size=16, max_delay_ms=30.0)
    xs = np.random.default_rng(3).standard_normal((3, 16)).astype(np.float32)

    async def main():  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        outs = await asyncio.gather(*(batcher.submit_async(x[None]) for x in xs))
        return outs, time.perf_counter() - t0

    outs, waited_s = asyncio.run(main())
    with nnperf.create(model) as sess:
        expected = sess.run(xs)[0]
    np.testing.assert_allclose(np.concatenate([o[0] for o in outs]), expected, rtol=1e-5)
    assert waited_s >= 0.025  # 3 rows < 16: the batch waited for the delay
    assert batcher.stats().histogram == {3: 1}
    batcher.close()


def test_async_merge_batches_grow_while_the_runtime_is_full():
    # One slot, no delay: the first query goes alone; the rest pile up behind it and go as
    # one batch when it returns, instead of one by one.
    runner = nnperf.Runner(
        nnperf.create(matmul_model(k=256, n=256), device="cpu(1)"), max_inflight=1
    )
    batcher = DynamicBatcher(runner, max_batch_size=64, max_delay_ms=0.0)
    xs = np.ones((40, 256), np.float32)
    outs = _async_rows(batcher, xs)
    assert len(outs) == 40 and all(o[0].shape == (1, 256) for o in outs)
    stats = batcher.stats()
    assert stats.requests == 40
    assert stats.histogram.get(1, 0) >= 1 and max(stats.histogram) > 1
    assert stats.batches < 40
    batcher.close()


@pytest.mark.parametrize("cancel_pending", [False, True])
def test_async_merge_close_settles_queries_waiting_on_the_loop(cancel_pending):
    runner = nnperf.create_runner(matmul_model(), device="cpu(1)")
    batcher = DynamicBatcher(runner, max_batch_size=64, max_delay_ms=10_000.0)
    xs = np.ones((5, 16), np.float32)

    async def main():  # type: ignore[no-untyped-def]
        futs = [batcher.submit_async(x[None]) for x in xs]
        await asyncio.sleep(0.01)  # 5 rows < 64 and a 10 s delay: all still waiting
        assert batcher.stats().batches == 0
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: batcher.close(cancel_pending=cancel_pending))
        return await asyncio.gather(*futs, return_exceptions=True)

    results = asyncio.run(main())
    if cancel_pending:
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
    else:
        assert all(r[0].shape == (1, 8) for r in results)
    assert batcher._room._value == batcher.max_inflight


def test_async_merge_forgets_closed_loops():
    runner = nnperf.create_runner(matmul_model(), device="cpu(1)")
    batcher = DynamicBatcher(runner, max_batch_size=4, max_delay_ms=0.0)
    x = np.ones((1, 16), np.float32)

    async def one():  # type: ignore[no-untyped-def]
        return await batcher.submit_async(x)

    for _ in range(5):  # a new event loop each time
        assert asyncio.run(one())[0].shape == (1, 8)
    assert len(batcher._loops) <= 2
    batcher.close()
