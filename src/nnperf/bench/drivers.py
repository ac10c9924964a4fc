"""Traffic through the runtime's asynchronous APIs, for ``nnperf bench --api``.

``run_benchmark`` measures the plain synchronous path itself (``--api sync`` with no batching or
pipeline). These drivers measure the other ways of issuing queries, each through the public API
a user would call, on a *backend* — a :class:`~nnperf.runtime.Runner`, a ``DynamicBatcher``
(``--max-batch-size``) or a ``Pipeline`` (``--pipeline-stages``):

* ``sync``: client threads each calling ``backend.submit(feed).result()`` in a loop;
* ``queue``: one producer thread calling ``Submitter.submit(feed, context=t0)`` as fast as the
  queue accepts, the measuring thread calling ``Receiver.recv()``;
* ``async``: client coroutines each awaiting ``AsyncRunner.run(feed)`` on one event loop.

Latency runs from the call that issued a query to the moment its result was available to the
caller. Every driver closes its backend.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from nnperf.errors import InvalidInputError, NnperfError

__all__ = ["APIS", "StopCondition", "drive", "watch_progress"]

APIS = ("sync", "queue", "async")
ProgressFn = Callable[[int, int, float, float], None]


class StopCondition:
    """Shared stop condition: at least ``queries`` done and at least ``duration_ns`` elapsed."""

    def __init__(self, queries: int, duration_ns: int) -> None:
        self.queries = queries
        self.duration_ns = duration_ns
        self.count = 0
        self.errors = 0
        self.start_ns = 0
        self.event = threading.Event()
        self.lock = threading.Lock()

    def done(self, now_ns: int, failed: bool = False) -> None:
        with self.lock:
            self.count += 1
            if failed:
                self.errors += 1
            if self.count >= self.queries and now_ns - self.start_ns >= self.duration_ns:
                self.event.set()


def drive(
    backend: Any,
    feed: dict[str, np.ndarray],
    *,
    api: str,
    concurrency: int,
    queries: int,
    duration_s: float,
    progress: ProgressFn | None = None,
) -> tuple[np.ndarray, int, int]:
    """Keep ``concurrency`` queries outstanding through ``api``; return (latencies_ns, wall_ns, errors).

    Raises:
        InvalidInputError: an unknown api or a concurrency below 1.
    """
    if api not in APIS:
        raise InvalidInputError(f"api: got {api!r}, expected one of {list(APIS)}")
    if concurrency < 1:
        raise InvalidInputError(f"concurrency: got {concurrency}, expected >= 1")
    stop = StopCondition(queries, int(duration_s * 1e9))
    if api == "sync":
        lat, wall = _sync(backend, feed, concurrency, stop, progress)
    elif api == "queue":
        lat, wall = _queue(backend, feed, stop, progress)
    else:
        lat, wall = _async(backend, feed, concurrency, stop)
    return lat, wall, stop.errors


def watch_progress(stop: StopCondition, progress: ProgressFn | None) -> None:
    """Wait until ``stop`` is set, reporting progress every 0.2 s."""
    while not stop.event.wait(0.2):
        if progress is not None:
            progress(
                stop.count,
                stop.queries,
                (time.perf_counter_ns() - stop.start_ns) / 1e9,
                stop.duration_ns / 1e9,
            )


def _sync(
    backend: Any,
    feed: dict[str, np.ndarray],
    clients: int,
    stop: StopCondition,
    progress: ProgressFn | None,
) -> tuple[np.ndarray, int]:
    lats: list[list[int]] = [[] for _ in range(clients)]
    failures: list[BaseException] = []

    def client(i: int) -> None:
        lat = lats[i]
        clock = time.perf_counter_ns
        submit = backend.submit
        while not stop.event.is_set():
            t0 = clock()
            try:
                submit(feed).result()
            except NnperfError:
                stop.done(clock(), failed=True)
                continue
            except BaseException as exc:
                failures.append(exc)
                stop.event.set()
                return
            t1 = clock()
            lat.append(t1 - t0)
            stop.done(t1)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    stop.start_ns = time.perf_counter_ns()
    try:
        for t in threads:
            t.start()
        watch_progress(stop, progress)
        for t in threads:
            t.join()
        wall = time.perf_counter_ns() - stop.start_ns
    finally:
        backend.close()
    if failures:
        raise failures[0]
    return np.concatenate([np.asarray(x, dtype=np.int64) for x in lats]), wall


def _queue(
    backend: Any, feed: dict[str, np.ndarray], stop: StopCondition, progress: ProgressFn | None
) -> tuple[np.ndarray, int]:
    from nnperf.runtime.queue import QueryFailedError, queue_over

    submitter, receiver = queue_over(backend)
    failures: list[BaseException] = []

    def produce() -> None:
        clock = time.perf_counter_ns
        submit = submitter.submit
        try:
            while not stop.event.is_set():
                submit(feed, context=clock())
        except BaseException as exc:
            failures.append(exc)
            stop.event.set()
        finally:
            submitter.close()

    lat: list[int] = []
    producer = threading.Thread(target=produce, daemon=True)
    stop.start_ns = time.perf_counter_ns()
    next_report = stop.start_ns + 200_000_000
    try:
        producer.start()
        clock = time.perf_counter_ns
        while True:
            try:
                t0, _ = receiver.recv()
            except QueryFailedError:
                stop.done(clock(), failed=True)
                continue
            except NnperfError:  # QueueClosedError: the submitter closed and all were received
                break
            t1 = clock()
            lat.append(t1 - t0)
            stop.done(t1)
            if progress is not None and t1 >= next_report:
                progress(
                    stop.count, stop.queries, (t1 - stop.start_ns) / 1e9, stop.duration_ns / 1e9
                )
                next_report = t1 + 200_000_000
        wall = time.perf_counter_ns() - stop.start_ns
        producer.join()
    finally:
        receiver.close()
    if failures:
        raise failures[0]
    return np.asarray(lat, dtype=np.int64), wall


def _async(
    backend: Any, feed: dict[str, np.ndarray], clients: int, stop: StopCondition
) -> tuple[np.ndarray, int]:
    from nnperf.runtime.aio import AsyncRunner

    lat: list[int] = []

    async def main() -> int:
        async with AsyncRunner(backend=backend) as runner:

            async def client() -> None:
                clock = time.perf_counter_ns
                run = runner.run
                while not stop.event.is_set():
                    t0 = clock()
                    try:
                        await run(feed)
                    except NnperfError:
                        stop.done(clock(), failed=True)
                        continue
                    t1 = clock()
                    lat.append(t1 - t0)
                    stop.done(t1)

            stop.start_ns = time.perf_counter_ns()
            await asyncio.gather(*(client() for _ in range(clients)))
            return time.perf_counter_ns() - stop.start_ns

    wall = asyncio.run(main())
    return np.asarray(lat, dtype=np.int64), wall
