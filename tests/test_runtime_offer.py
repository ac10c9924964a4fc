"""Runner.offer: queries past the in-flight bound wait outside the runtime and workers admit them."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import CancelledError

import numpy as np
import pytest
from models import deep_matmul_model, matmul_model

import nnperf
from nnperf import InvalidInputError
from nnperf.runtime.observers import RunEvent
from nnperf.runtime.runner import Runner


class _Outcomes:
    """Collects each query's outcome: "ok" or its error's type (a Runner completion callback)."""

    def __init__(self) -> None:
        self.seen: list[object] = []
        self.lock = threading.Lock()

    def record(self, outputs: object, error: object) -> None:
        with self.lock:
            self.seen.append("ok" if error is None else type(error))


class _Recorder:
    """Counts engine runs (a RunEvent observer)."""

    def __init__(self) -> None:
        self.runs = 0
        self.lock = threading.Lock()

    def on_run(self, event: RunEvent) -> None:
        with self.lock:
            self.runs += 1


def test_offered_queries_wait_outside_and_run_in_order() -> None:
    # One slot: everything else waits at the door.
    runner = Runner(nnperf.create(matmul_model(), device="cpu(1)"), max_inflight=1)
    xs = np.random.default_rng(0).standard_normal((200, 1, 16)).astype(np.float32)
    with nnperf.create(matmul_model()) as sess:
        expected = sess.run(xs.reshape(200, 16))[0]
    done: list[tuple[int, object]] = []
    most_parked = 0
    lock = threading.Lock()

    def record(i: int, outputs: object, error: object) -> None:
        with lock:
            done.append((i, outputs if error is None else error))

    for i, x in enumerate(xs):
        runner.offer(x, lambda o, e, i=i: record(i, o, e))
        most_parked = max(most_parked, len(runner._parked))
        assert runner._slots._value >= 0
    runner.close()
    assert most_parked > 0  # the bound held: queries did wait outside
    assert [i for i, _ in done] == list(range(200))  # one worker: admission in arrival order
    got = np.concatenate([o[0] for _, o in done])  # type: ignore[index]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert runner._slots._value == 1


def test_dropped_queries_never_run_and_get_cancelled_error() -> None:
    runner = nnperf.create_runner(deep_matmul_model(layers=16), device="cpu(1)")
    rec = _Recorder()
    runner.observers.add(rec)
    try:
        x = np.ones((1, 256), np.float32)
        out = _Outcomes()
        n = 40
        for i in range(n):
            runner.offer(x, out.record, dropped=(lambda: True) if i % 2 else None)
        runner.close()
    finally:
        runner.observers.remove(rec)
    outcomes = out.seen
    assert len(outcomes) == n
    assert outcomes.count("ok") == n // 2
    assert outcomes.count(CancelledError) == n // 2
    assert rec.runs == n // 2  # dropped queries never reached the engine


@pytest.mark.parametrize("cancel_pending", [False, True])
def test_close_settles_every_parked_query(cancel_pending: bool) -> None:
    runner = nnperf.create_runner(deep_matmul_model(layers=32), device="cpu(1)")
    x = np.ones((1, 256), np.float32)
    out = _Outcomes()
    outcomes = out.seen
    for _ in range(100):
        runner.offer(x, out.record)
    assert runner._parked  # more than max_inflight were offered
    runner.close(cancel_pending=cancel_pending)
    assert len(outcomes) == 100  # exactly one outcome each
    if cancel_pending:
        assert CancelledError in outcomes
    else:
        assert outcomes == ["ok"] * 100
    assert runner._slots._value == runner.max_inflight
    with pytest.raises(InvalidInputError, match="closed"):
        runner.offer(x, out.record)


def test_bad_offer_raises_at_call_site() -> None:
    with nnperf.create_runner(matmul_model()) as runner:
        with pytest.raises(InvalidInputError, match="float64"):
            runner.offer(np.ones((1, 16)), lambda o, e: None)
        with pytest.raises(InvalidInputError, match="unknown output"):
            runner.offer(np.ones((1, 16), np.float32), lambda o, e: None, outputs=["nope"])
        assert runner._slots._value == runner.max_inflight


def test_async_cancelled_waiting_queries_never_run() -> None:
    async def main() -> tuple[int, int]:
        runner = nnperf.AsyncRunner(deep_matmul_model(layers=32), device="cpu(1)")
        rec = _Recorder()
        runner.observers.add(rec)
        try:
            x = np.ones((1, 256), np.float32)
            tasks = [asyncio.ensure_future(runner.run(x)) for _ in range(100)]
            await asyncio.sleep(0)  # every task offers its query; most wait at the door
            for t in tasks[10:]:
                t.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for _ in range(500):
                if runner.inflight == 0:
                    break
                await asyncio.sleep(0.01)
            assert runner.inflight == 0
            ok = sum(1 for r in results if isinstance(r, list))
            await runner.close()
            return ok, rec.runs
        finally:
            runner.observers.remove(rec)

    ok, runs = asyncio.run(main())
    assert ok >= 10
    # Only queries already inside the runtime (at most max_inflight = 4) ran past the cancel.
    assert runs <= ok + 4
    assert runs < 30


def test_offers_from_many_threads_each_settle_once() -> None:
    runner = Runner(nnperf.create(matmul_model(), device="cpu(1)*2"), max_inflight=2)
    out = _Outcomes()
    x = np.ones((1, 16), np.float32)

    def offer_many() -> None:
        for _ in range(500):
            runner.offer(x, out.record)

    threads = [threading.Thread(target=offer_many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runner.close()
    assert out.seen == ["ok"] * 4000
    assert runner._slots._value == 2 and not runner._parked
