"""Merge batching (server-side dynamic batching, Triton style): :class:`DynamicBatcher`.

It gathers concurrent queries until ``max_batch_size`` rows are waiting or the oldest has waited
``max_delay_ms`` (the rule is :func:`nnperf.runtime.merge.plan_batch`, shared by both paths),
runs them as one batch and hands each caller exactly its own rows. The sizes of the batches it
formed are kept in :class:`BatchStats`. When the engine fails a merged batch, the batch is split
in halves and each half runs again, down to single queries: only the query whose input makes the
engine fail gets the error.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np

from nnperf.errors import EngineError, InvalidInputError, OverloadedError
from nnperf.runtime.feeds import Inputs
from nnperf.runtime.merge import plan_batch, take_batch
from nnperf.runtime.observers import Observers
from nnperf.runtime.runner import Runner, Slots
from nnperf.runtime.split import check_outputs, fixed_batch, pad_rows, row_validator, rows_of
from nnperf.types import TensorDesc

__all__ = ["DEFAULT_MAX_DELAY_MS", "BatchStats", "DynamicBatcher"]

#: How long a query waits for others by default (ms).
DEFAULT_MAX_DELAY_MS = 1.0


@dataclass(frozen=True)
class BatchStats:
    """Sizes of the batches a :class:`DynamicBatcher` formed.

    Attributes:
        batches: batches sent to the engine.
        requests: queries merged into them.
        rows: rows in them (before padding).
        histogram: ``{batch rows: number of batches}``.
        max_batch_size: the batcher's limit, for reference.
        split_batches: merged batches the engine failed, split in halves that ran again to
            find the failing queries (the halves count in ``batches``, not in ``requests``).
    """

    batches: int
    requests: int
    rows: int
    histogram: dict[int, int] = field(default_factory=dict)
    max_batch_size: int = 0
    split_batches: int = 0

    @property
    def mean_batch_size(self) -> float:
        """Mean rows per batch (0.0 before the first batch)."""
        return self.rows / self.batches if self.batches else 0.0

    @property
    def full_fraction(self) -> float:
        """Fraction of batches that reached ``max_batch_size`` rows."""
        return self.histogram.get(self.max_batch_size, 0) / self.batches if self.batches else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "batches": self.batches,
            "requests": self.requests,
            "rows": self.rows,
            "mean_batch_size": self.mean_batch_size,
            "full_fraction": self.full_fraction,
            "max_batch_size": self.max_batch_size,
            "split_batches": self.split_batches,
            "histogram": {str(k): v for k, v in sorted(self.histogram.items())},
        }


class _Request:
    """One query: completed through a concurrent future, or an asyncio future (its loop's
    :class:`_LoopQueue` holds it)."""

    __slots__ = ("afuture", "arrival_ns", "feeds", "future", "on_exit", "rows")

    def __init__(
        self,
        feeds: dict[str, np.ndarray],
        future: Future[list[np.ndarray]] | None,
        arrival_ns: int,
        *,
        afuture: asyncio.Future[list[np.ndarray]] | None = None,
        on_exit: Callable[[], None] | None = None,
        rows: int | None = None,
    ) -> None:
        self.feeds = feeds
        self.future = future
        self.afuture = afuture
        self.on_exit = on_exit
        self.rows = rows_of(feeds) if rows is None else rows
        self.arrival_ns = arrival_ns


def _deliver_async(
    requests: list[_Request], outputs: list[np.ndarray] | None, exc: BaseException | None
) -> None:
    """On the event loop: complete the asyncio futures of one batch, each with its own rows."""
    start = 0
    for req in requests:
        afut = req.afuture
        assert afut is not None
        end = start + req.rows
        if not afut.done():  # else the caller cancelled while the batch ran
            if outputs is not None:
                afut.set_result([o[start:end] for o in outputs])
            elif isinstance(exc, CancelledError):  # dropped by close(cancel_pending=True)
                afut.cancel()
            else:
                afut.set_exception(exc)  # type: ignore[arg-type]
        start = end
        if req.on_exit is not None:
            req.on_exit()


def _cancel_async(requests: list[_Request]) -> None:
    """On the event loop: the queries leave without running (close with cancel_pending)."""
    for req in requests:
        if req.afuture is not None:
            req.afuture.cancel()
        if req.on_exit is not None:
            req.on_exit()


def _halves(live: list[_Request], exc: BaseException | None) -> list[list[_Request]] | None:
    """The two halves to run again when the engine failed a batch of several queries (one
    query's input may be at fault: the others must not get its error), else ``None``."""
    if len(live) < 2 or not isinstance(exc, EngineError):
        return None
    mid = len(live) // 2
    return [live[:mid], live[mid:]]


def _to_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: nobody waits any more
        pass


class _LoopQueue:
    """Queries from one event loop waiting to be merged; batches form on that loop.

    Batching where the queries arrive saves a thread hop per batch: a batcher thread woken by
    the 16th query of a batch first waits for the GIL, which the busy loop holds (measured:
    ~150 µs per batch on zoo:mnist, longer than the batch's engine time per row saved).
    ``pending``/``rows``/``inflight`` change under the batcher's ``_loop_lock`` (close may
    take the pending queries from another thread); the rest is touched on the loop only.
    """

    __slots__ = ("completed", "inflight", "loop", "pending", "rows", "timer", "wake_pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: deque[_Request] = deque()
        self.rows = 0
        self.inflight = 0  # batches sent from this loop and not yet delivered
        self.timer: asyncio.TimerHandle | None = None
        self.completed: deque[
            tuple[list[_Request], list[np.ndarray] | None, BaseException | None]
        ] = deque()
        self.wake_pending = False


class DynamicBatcher:
    """Merges concurrent queries into batches (server-side dynamic batching).

    A batch is sent as soon as ``max_batch_size`` rows (or the largest preferred size) are
    waiting, otherwise when the oldest query has waited ``max_delay_ms``; a batch whose delay has
    passed while every in-flight slot of the runner is taken keeps growing until one frees
    (Triton's behaviour: batches grow under load). Each caller gets exactly its own rows.

    * ``submit`` (any thread) returns a ``concurrent.futures.Future``; one batcher thread forms
      those batches.
    * ``submit_async`` (asyncio; :class:`~nnperf.runtime.aio.AsyncRunner` uses it with
      ``backend=``) forms batches on the event loop itself, where the queries arrive, and
      delivers a group of finished batches with one wake-up of the loop.
    """

    def __init__(
        self,
        runner: Runner,
        *,
        max_batch_size: int,
        max_delay_ms: float = DEFAULT_MAX_DELAY_MS,
        preferred_batch_sizes: Sequence[int] = (),
        max_queue_size: int | None = None,
    ) -> None:
        """Batch in front of ``runner`` (owned: :meth:`close` closes it).

        Args:
            runner: runs the merged batches; its model needs a batch dim 0 on every input and
                output (free, or fixed to ``max_batch_size``: then batches are padded).
            max_batch_size: most rows per batch.
            max_delay_ms: longest wait of the oldest query for others, in ms (default 1.0).
            preferred_batch_sizes: sizes to send as soon as they can be formed, and to cut to
                when the delay expires (default: none, send everything waiting).
            max_queue_size: queries waiting or running at once before ``submit`` blocks;
                default ``max_batch_size * (runner.max_inflight + 1)``.

        Raises:
            InvalidInputError: bad sizes or a model without batch dims.
        """
        if (
            isinstance(max_batch_size, bool)
            or not isinstance(max_batch_size, int)
            or (max_batch_size < 1)
        ):
            raise InvalidInputError(
                f"max_batch_size: got {max_batch_size!r}, expected a positive integer"
            )
        if not max_delay_ms >= 0:
            raise InvalidInputError(f"max_delay_ms: got {max_delay_ms!r}, expected >= 0 (ms)")
        preferred = sorted(set(preferred_batch_sizes))
        if any(p < 1 or p > max_batch_size for p in preferred):
            raise InvalidInputError(
                f"preferred_batch_sizes: got {list(preferred_batch_sizes)}, expected sizes in "
                f"[1, max_batch_size={max_batch_size}]"
            )
        fixed = fixed_batch(runner.inputs)
        if fixed is not None and fixed < max_batch_size:
            raise InvalidInputError(
                f"max_batch_size={max_batch_size}: the model runs batches of exactly {fixed} "
                f"rows; expected max_batch_size <= {fixed}"
            )
        self._validator = row_validator(runner.inputs)
        check_outputs(runner.outputs)
        self.runner = runner
        self.max_batch_size = max_batch_size
        self.max_delay_ms = float(max_delay_ms)
        self.preferred_batch_sizes = tuple(preferred)
        self._delay_ns = int(self.max_delay_ms * 1e6)
        self._send_rows = preferred[-1] if preferred else max_batch_size
        self._pad_to = fixed
        self._max_queue = max_queue_size or max_batch_size * (runner.max_inflight + 1)
        self._room = Slots(self._max_queue)
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[_Request] = deque()
        self._pending_rows = 0
        self._closed = False
        self._loops: dict[asyncio.AbstractEventLoop, _LoopQueue] = {}
        self._loop_lock = threading.Lock()
        self._histogram: dict[int, int] = {}
        self._requests = 0
        self._split = 0
        self._thread_inflight = 0  # the batcher thread's batches sent and not yet back
        self._thread = threading.Thread(target=self._loop, name="nnperf-batcher", daemon=True)
        self._thread.start()

    # -- Backend protocol -----------------------------------------------------------------------
    @property
    def max_inflight(self) -> int:
        """Queries accepted at once (waiting or running)."""
        return self._max_queue

    @property
    def inputs(self) -> tuple[TensorDesc, ...]:
        """Model inputs."""
        return self.runner.inputs

    @property
    def outputs(self) -> tuple[TensorDesc, ...]:
        """Model outputs."""
        return self.runner.outputs

    @property
    def observers(self) -> Observers:
        """Who watches the merged batches' runs (the runner's observers)."""
        return self.runner.observers

    @property
    def instances(self) -> int:
        """Engine instances the batches run on."""
        return self.runner.instances

    def _check_rows(self, rows: int) -> None:
        if not 0 < rows <= self.max_batch_size:
            raise InvalidInputError(
                f"query has {rows} rows on dim 0; expected 1 to max_batch_size="
                f"{self.max_batch_size} (split larger batches, or raise max_batch_size)"
            )

    def submit(self, inputs: Inputs, *, timeout_s: float | None = None) -> Future[list[np.ndarray]]:
        """Queue one query (one or more rows); the future holds exactly its rows of the outputs.

        Args:
            inputs: one array, a list in input order, or a dict by name (validated here).
            timeout_s: longest wait in seconds for room when ``max_queue_size`` queries are
                already inside; ``None`` (default) waits as needed.

        Raises:
            InvalidInputError: a bad feed, more rows than ``max_batch_size``, or closed.
            OverloadedError: no room within ``timeout_s``.
        """
        arrival = time.perf_counter_ns()
        if self._closed:
            raise InvalidInputError("the batcher is closed; create a new DynamicBatcher")
        feeds = self._validator.normalise(inputs)
        future: Future[list[np.ndarray]] = Future()
        request = _Request(feeds, future, arrival)
        self._check_rows(request.rows)
        if not self._room.acquire(timeout=timeout_s):
            raise OverloadedError(
                f"{self._max_queue} queries already waiting or running and none finished within "
                f"{timeout_s} s; retry later or raise max_queue_size"
            )
        with self._cond:
            if self._closed:
                self._room.release()
                raise InvalidInputError("the batcher is closed; create a new DynamicBatcher")
            was_empty = not self._pending
            self._pending.append(request)
            self._pending_rows += request.rows
            if was_empty or self._pending_rows >= self._send_rows:
                self._cond.notify()
        return future

    def submit_async(
        self, inputs: Inputs, *, on_exit: Callable[[], None] | None = None
    ) -> asyncio.Future[list[np.ndarray]]:
        """Queue one query from the running event loop; never blocks the loop.

        The batch forms on this loop, and finished batches come back to it in one
        ``call_soon_threadsafe`` per group (cheaper per query than a concurrent future bridged
        with ``asyncio.wrap_future``).

        Args:
            inputs: one array, a list in input order, or a dict by name (validated here).
            on_exit: called on the loop once the query has left the batcher (result delivered or
                cancelled), exactly once.

        Raises:
            InvalidInputError: a bad feed, too many rows, or closed.
            OverloadedError: ``max_queue_size`` queries are already inside (bound the callers,
                as :class:`~nnperf.runtime.aio.AsyncRunner` does, to avoid it).
        """
        arrival = time.perf_counter_ns()
        if self._closed:
            raise InvalidInputError("the batcher is closed; create a new DynamicBatcher")
        loop = asyncio.get_running_loop()
        feeds = self._validator.normalise(inputs)
        rows = rows_of(feeds)
        self._check_rows(rows)
        if not self._room.try_acquire():
            raise OverloadedError(
                f"{self._max_queue} queries already waiting or running; retry later or raise "
                "max_queue_size"
            )
        afuture: asyncio.Future[list[np.ndarray]] = loop.create_future()
        request = _Request(feeds, None, arrival, afuture=afuture, on_exit=on_exit, rows=rows)
        lq = self._loops.get(loop)
        if lq is None:
            lq = self._new_loop_queue(loop)
        with self._loop_lock:
            if self._closed:
                self._room.release()
                raise InvalidInputError("the batcher is closed; create a new DynamicBatcher")
            lq.pending.append(request)
            lq.rows += rows
            # Not full and the oldest query's timer armed: nothing can go before it fires.
            idle = lq.rows < self._send_rows and lq.timer is not None
        if not idle:
            self._pump(lq)
        return afuture

    def _new_loop_queue(self, loop: asyncio.AbstractEventLoop) -> _LoopQueue:
        """The state for a loop seen for the first time; forgets closed loops with nothing left
        (``asyncio.run`` makes a new loop each time: their entries must not pile up)."""
        with self._loop_lock:
            for old in [k for k, v in self._loops.items() if k.is_closed() and not v.inflight]:
                del self._loops[old]
            return self._loops.setdefault(loop, _LoopQueue(loop))

    def run(self, inputs: Inputs, *, timeout_s: float | None = None) -> list[np.ndarray]:
        """Submit one query and wait for its rows of the outputs."""
        return self.submit(inputs).result(timeout=timeout_s)

    # -- statistics -----------------------------------------------------------------------------
    def stats(self) -> BatchStats:
        """Sizes of the batches formed so far."""
        with self._cond:
            hist = dict(self._histogram)
            requests = self._requests
            split = self._split
        return BatchStats(
            batches=sum(hist.values()),
            requests=requests,
            rows=sum(k * v for k, v in hist.items()),
            histogram=hist,
            max_batch_size=self.max_batch_size,
            split_batches=split,
        )

    def reset_stats(self) -> None:
        """Forget the batches formed so far (e.g. after warm-up)."""
        with self._cond:
            self._histogram = {}
            self._requests = 0
            self._split = 0

    # -- forming and sending batches (both paths) -------------------------------------------------
    def _merge(self, live: list[_Request], *, retry: bool = False) -> dict[str, np.ndarray]:
        """Record the batch in the statistics and build its feeds (concatenated, padded);
        ``retry``: a half of a failed batch (its queries were counted already)."""
        rows = sum(r.rows for r in live)
        with self._cond:
            self._histogram[rows] = self._histogram.get(rows, 0) + 1
            if not retry:
                self._requests += len(live)
        if len(live) == 1:
            feeds = live[0].feeds
        else:
            names = live[0].feeds.keys()
            feeds = {n: np.concatenate([r.feeds[n] for r in live]) for n in names}
        if self._pad_to is not None and rows < self._pad_to:
            feeds = {n: pad_rows(v, self._pad_to) for n, v in feeds.items()}
        return feeds

    # -- the batcher thread (``submit``) ----------------------------------------------------------
    def _loop(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while True:
                    if not self._pending:
                        if self._closed:
                            return  # closed and drained
                        cond.wait()
                        continue
                    plan = plan_batch(
                        self._pending_rows,
                        self._pending[0].arrival_ns,
                        time.perf_counter_ns(),
                        send_rows=self._send_rows,
                        delay_ns=self._delay_ns,
                        runtime_full=not self.runner.free_slots,
                        inflight=self._thread_inflight,
                        closing=self._closed,
                    )
                    if plan.send:
                        break
                    # Woken by a new query, a batch coming back, close, or the delay's end.
                    cond.wait(None if plan.wait_ns is None else plan.wait_ns / 1e9)
                batch, rows = take_batch(
                    self._pending,
                    self._pending_rows,
                    self.max_batch_size,
                    self.preferred_batch_sizes,
                )
                self._pending_rows -= rows
                self._thread_inflight += 1
            self._dispatch(batch)

    def _dispatch(self, batch: list[_Request]) -> None:
        live = []
        for req in batch:
            assert req.future is not None
            if req.future.set_running_or_notify_cancel():
                live.append(req)
            else:  # the caller cancelled while it waited
                self._room.release()
        if not live:
            self._thread_settle(1)
            return
        feeds = self._merge(live)
        try:
            # Waits for an in-flight slot (back-pressure); the worker calls _finish.
            self.runner.submit_call(feeds, functools.partial(self._finish, live))
        except BaseException as exc:
            self._finish(live, None, exc)

    def _finish(
        self,
        live: list[_Request],
        outputs: list[np.ndarray] | None,
        exc: BaseException | None,
    ) -> None:
        halves = _halves(live, exc) if outputs is None else None
        if halves is not None:
            # On the worker: run each half again (offer never blocks), keeping the queries'
            # room until their own outcome is known; the failed batch's place in flight passes
            # to its halves.
            with self._cond:
                self._split += 1
                self._thread_inflight += len(halves) - 1
            for half in halves:
                feeds = self._merge(half, retry=True)
                try:
                    self.runner.offer(feeds, functools.partial(self._finish, half))
                except BaseException as err:
                    self._finish(half, None, err)
            return
        release = self._room.release
        start = 0
        self._thread_settle(1)
        for req in live:
            release()
            end = start + req.rows
            assert req.future is not None
            if outputs is None:
                req.future.set_exception(exc)
            else:
                req.future.set_result([o[start:end] for o in outputs])
            start = end

    def _thread_settle(self, batches: int) -> None:
        """A batch of the thread path is back: the policy may send the next (it may have been
        growing while the runtime was full)."""
        with self._cond:
            self._thread_inflight -= batches
            self._cond.notify()

    # -- batching on the event loop (``submit_async``) --------------------------------------------
    def _pump(self, lq: _LoopQueue) -> None:
        """On the loop: send every batch the policy allows now; arm the delay timer for the rest."""
        while True:
            with self._loop_lock:
                if not lq.pending:
                    return
                plan = plan_batch(
                    lq.rows,
                    lq.pending[0].arrival_ns,
                    time.perf_counter_ns(),
                    send_rows=self._send_rows,
                    delay_ns=self._delay_ns,
                    runtime_full=not self.runner.free_slots,
                    inflight=lq.inflight,
                )
                if not plan.send:
                    # Asked again when the delay runs out (timer) or a batch comes back.
                    if plan.wait_ns is not None and lq.timer is None:
                        lq.timer = lq.loop.call_later(plan.wait_ns / 1e9, self._on_timer, lq)
                    return
                batch, rows = take_batch(
                    lq.pending, lq.rows, self.max_batch_size, self.preferred_batch_sizes
                )
                lq.rows -= rows
                lq.inflight += 1
            self._send_async(lq, batch)

    def _on_timer(self, lq: _LoopQueue) -> None:
        lq.timer = None
        self._pump(lq)

    def _send_async(self, lq: _LoopQueue, batch: list[_Request]) -> None:
        live = []
        for req in batch:
            assert req.afuture is not None
            if req.afuture.done():  # the caller cancelled while it waited
                self._room.release()
                if req.on_exit is not None:
                    req.on_exit()
            else:
                live.append(req)
        if not live:
            self._settle(lq)
            return
        self._offer_batch(lq, live)

    def _offer_batch(self, lq: _LoopQueue, live: list[_Request], *, retry: bool = False) -> None:
        """Send one batch of a loop's queries; its outcome reaches the loop via _done_async."""
        feeds = self._merge(live, retry=retry)
        try:
            # Never blocks: past the in-flight bound the batch waits at the runtime's door.
            self.runner.offer(feeds, functools.partial(self._done_async, lq, live))
        except BaseException as exc:
            self._done_async(lq, live, None, exc)

    def _settle(self, lq: _LoopQueue) -> None:
        with self._loop_lock:
            lq.inflight -= 1

    def _done_async(
        self,
        lq: _LoopQueue,
        live: list[_Request],
        outputs: list[np.ndarray] | None,
        error: BaseException | None,
    ) -> None:
        # On the worker (or the sending thread): queue the batch for the loop, wake it once.
        halves = _halves(live, error) if outputs is None else None
        if halves is not None:
            # Run each half again from here (offer never blocks); the failed batch's place in
            # ``inflight`` passes to its halves, and its queries keep their room.
            with self._cond:
                self._split += 1
            with self._loop_lock:
                lq.inflight += len(halves) - 1
            for half in halves:
                self._offer_batch(lq, half, retry=True)
            return
        release = self._room.release
        for _ in live:
            release()
        lq.completed.append((live, outputs, error))
        if not lq.wake_pending:
            lq.wake_pending = True
            try:
                lq.loop.call_soon_threadsafe(self._drain_async, lq)
            except RuntimeError:  # the loop is closed: nobody waits any more
                lq.wake_pending = False

    def _drain_async(self, lq: _LoopQueue) -> None:
        # On the loop: deliver every finished batch, then send what may go now.
        lq.wake_pending = False
        completed = lq.completed
        while completed:
            live, outputs, error = completed.popleft()
            self._settle(lq)
            _deliver_async(live, outputs, error)
        self._pump(lq)

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self, *, cancel_pending: bool = False) -> None:
        """Stop accepting queries, send (or cancel) those not yet in a batch, close the runner.

        Args:
            cancel_pending: cancel queries not yet in a batch instead of running them.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            if cancel_pending:
                while self._pending:
                    req = self._pending.popleft()
                    assert req.future is not None
                    req.future.cancel()
                    self._room.release()
                self._pending_rows = 0
            self._cond.notify_all()
        with self._loop_lock:
            waiting = []
            for lq in self._loops.values():
                if lq.pending:
                    waiting.append((lq, list(lq.pending)))
                lq.pending.clear()
                lq.rows = 0
        for lq, reqs in waiting:
            if cancel_pending:
                for _ in reqs:
                    self._room.release()
                _to_loop(lq.loop, _cancel_async, reqs)
            else:  # send them now, from this thread; results reach their loop as usual
                self._send_leftovers(lq, reqs)
        if self._thread is not threading.current_thread():
            self._thread.join()
        # Batches already formed run to the end: their callers were told they are running.
        self.runner.close()

    def _send_leftovers(self, lq: _LoopQueue, reqs: list[_Request]) -> None:
        """At close, from any thread: send a loop's waiting queries in batches."""
        pending = deque(reqs)
        rows = sum(r.rows for r in reqs)
        while pending:
            batch, taken = take_batch(pending, rows, self.max_batch_size, ())
            rows -= taken
            with self._loop_lock:
                lq.inflight += 1  # settled when the loop delivers the batch
            self._offer_batch(lq, batch)

    def __enter__(self) -> DynamicBatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"DynamicBatcher(runner={self.runner!r}, max_batch_size={self.max_batch_size}, "
            f"max_delay_ms={self.max_delay_ms})"
        )
