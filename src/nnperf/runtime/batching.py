"""Batching in the runtime: split big user batches, merge small concurrent queries.

* **Split** (AWS Neuron dynamic batching): :class:`SplitBatcher` cuts a user batch larger than
  the instances' batch size into chunks of that size along dim 0, pads the tail chunk (repeating
  its last row), runs the chunks concurrently on a Runner's instances (or one after another on a
  Session) and concatenates the outputs: the result equals one big run.
* **Merge** (server-side dynamic batching, Triton style): :class:`DynamicBatcher` gathers
  concurrent queries until ``max_batch_size`` rows are waiting or the oldest has waited
  ``max_delay_ms``, runs them as one batch and hands each caller exactly its own rows. The sizes
  of the batches it formed are kept in :class:`BatchStats`.

Both need every input and output to carry the batch on dim 0.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np

from nnperf.errors import InvalidInputError, OverloadedError
from nnperf.runtime.feeds import FeedValidator, Inputs
from nnperf.runtime.runner import Runner
from nnperf.runtime.session import Session
from nnperf.types import TensorDesc

__all__ = ["BatchStats", "DynamicBatcher", "SplitBatcher", "run_split"]


def _fixed_batch(inputs: Sequence[TensorDesc]) -> int | None:
    """The instances' fixed batch size (leading dim of the inputs), or ``None`` if free."""
    dims = {d.shape[0] for d in inputs if d.shape}
    fixed = [d for d in dims if isinstance(d, int)]
    return fixed[0] if len(fixed) == 1 and len(dims) == 1 else None


def _row_validator(inputs: Sequence[TensorDesc]) -> FeedValidator:
    """A validator that accepts any number of rows on dim 0 of every input (shared by all)."""
    for d in inputs:
        if not d.shape:
            raise InvalidInputError(
                f"input {d.name!r} is a scalar; batching needs a batch dimension (dim 0) on "
                "every input"
            )
    return FeedValidator(
        [TensorDesc(d.name, ("__rows__", *d.shape[1:]), d.dtype, d.layout) for d in inputs]
    )


def _check_outputs(outputs: Sequence[TensorDesc]) -> None:
    for d in outputs:
        if not d.shape:
            raise InvalidInputError(
                f"output {d.name!r} is a scalar; batching needs a batch dimension (dim 0) on "
                "every output"
            )


def _pad_rows(arr: np.ndarray, rows: int) -> np.ndarray:
    """``arr`` grown to ``rows`` rows by repeating its last row."""
    missing = rows - arr.shape[0]
    if missing <= 0:
        return arr
    return np.concatenate([arr, np.repeat(arr[-1:], missing, axis=0)])


def _rows(feeds: dict[str, np.ndarray]) -> int:
    return int(next(iter(feeds.values())).shape[0])


# --------------------------------------------------------------------------------------------
# split
# --------------------------------------------------------------------------------------------


class SplitBatcher:
    """Runs a user batch of any size on instances built for a fixed batch (Neuron dynamic batching).

    Example::

        runner = nnperf.create_runner(model, device="cpu(1)*2", batch_size=4)
        outputs = SplitBatcher(runner).run(x)   # x: 10 rows -> chunks 4 + 4 + 2 (padded to 4)

    On a :class:`Runner` the chunks run concurrently over its instances; on a :class:`Session`
    they run one after another on the calling thread.
    """

    def __init__(self, target: Runner | Session, *, chunk_size: int | None = None) -> None:
        """Wrap ``target`` (not owned: closing it stays the caller's job).

        Args:
            target: the Runner (concurrent chunks) or Session (sequential chunks) to run on.
            chunk_size: rows per chunk; default the instances' fixed batch size (``batch_size=``
                or a static leading dim).

        Raises:
            InvalidInputError: no chunk size given or fixed, or a model without a batch dim.
        """
        self.target = target
        fixed = _fixed_batch(target.inputs)
        if chunk_size is None:
            chunk_size = fixed
        if chunk_size is None or isinstance(chunk_size, bool) or chunk_size < 1:
            raise InvalidInputError(
                f"chunk_size: got {chunk_size!r}, expected a positive integer; pass chunk_size= "
                "or fix the model's batch with batch_size="
            )
        if fixed is not None and chunk_size != fixed:
            raise InvalidInputError(
                f"chunk_size={chunk_size}: the instances run batches of exactly {fixed} rows; "
                f"expected chunk_size={fixed} (or omit it)"
            )
        self.chunk_size = chunk_size
        self._pad = fixed is not None
        self._validator = _row_validator(target.inputs)
        _check_outputs(target.outputs)

    def run(self, inputs: Inputs) -> list[np.ndarray]:
        """Run a batch of any number of rows; the outputs equal one run of the whole batch.

        Raises:
            InvalidInputError: a bad feed or an empty batch.
            EngineError: a chunk failed.
        """
        feeds = self._validator.normalise(inputs)
        rows = _rows(feeds)
        if rows == 0:
            raise InvalidInputError("inputs have 0 rows on dim 0; expected at least one row")
        size = self.chunk_size
        chunks: list[dict[str, np.ndarray]] = []
        for start in range(0, rows, size):
            chunk = {k: v[start : start + size] for k, v in feeds.items()}
            if self._pad and rows - start < size:
                chunk = {k: _pad_rows(v, size) for k, v in chunk.items()}
            chunks.append(chunk)
        target = self.target
        if isinstance(target, Runner):
            futures = [target.submit(c) for c in chunks]
            try:
                parts = [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        else:
            parts = [target.run(c) for c in chunks]
        if len(parts) == 1:
            return [o[:rows] for o in parts[0]]
        return [np.concatenate([p[i] for p in parts])[:rows] for i in range(len(parts[0]))]


def run_split(
    target: Runner | Session, inputs: Inputs, *, chunk_size: int | None = None
) -> list[np.ndarray]:
    """One-shot :meth:`SplitBatcher.run` (see :class:`SplitBatcher`)."""
    return SplitBatcher(target, chunk_size=chunk_size).run(inputs)


# --------------------------------------------------------------------------------------------
# merge
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchStats:
    """Sizes of the batches a :class:`DynamicBatcher` formed.

    Attributes:
        batches: batches sent to the engine.
        requests: queries merged into them.
        rows: rows in them (before padding).
        histogram: ``{batch rows: number of batches}``.
        max_batch_size: the batcher's limit, for reference.
    """

    batches: int
    requests: int
    rows: int
    histogram: dict[int, int] = field(default_factory=dict)
    max_batch_size: int = 0

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
            "histogram": {str(k): v for k, v in sorted(self.histogram.items())},
        }


class _Request:
    """One query: completed through a concurrent future, or an asyncio future on ``loop``."""

    __slots__ = ("afuture", "arrival_ns", "feeds", "future", "loop", "on_exit", "rows")

    def __init__(
        self,
        feeds: dict[str, np.ndarray],
        future: Future[list[np.ndarray]] | None,
        arrival_ns: int,
        *,
        afuture: asyncio.Future[list[np.ndarray]] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.feeds = feeds
        self.future = future
        self.afuture = afuture
        self.loop = loop
        self.on_exit = on_exit
        self.rows = _rows(feeds)
        self.arrival_ns = arrival_ns

    def start(self) -> bool:
        """Whether the query is still wanted (False: its caller cancelled it)."""
        if self.future is not None:
            return self.future.set_running_or_notify_cancel()
        assert self.afuture is not None
        return not self.afuture.done()  # a read of a flag; races only with cancel()


def _deliver_async(
    requests: list[_Request], outputs: list[np.ndarray] | None, exc: BaseException | None
) -> None:
    """On the event loop: complete the asyncio futures of one batch."""
    start = 0
    for req in requests:
        afut = req.afuture
        assert afut is not None
        end = start + req.rows
        if not afut.done():
            if outputs is None:
                assert exc is not None
                afut.set_exception(exc)
            else:
                afut.set_result([o[start:end] for o in outputs])
        start = end
        if req.on_exit is not None:
            req.on_exit()


def _exit_async(requests: list[_Request]) -> None:
    """On the event loop: the queries left without a result (cancelled)."""
    for req in requests:
        if req.on_exit is not None:
            req.on_exit()


def _cancel(afuture: asyncio.Future[Any]) -> None:
    afuture.cancel()


def _to_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: nobody waits any more
        pass


class DynamicBatcher:
    """Merges concurrent queries into batches (server-side dynamic batching).

    ``submit`` (any thread) returns a ``concurrent.futures.Future`` holding exactly that query's
    rows of the batch's outputs. One batcher thread forms batches: it sends one as soon as
    ``max_batch_size`` rows (or the largest preferred size) are waiting, otherwise when the oldest
    query has waited ``max_delay_ms``. While the runner's in-flight slots are all taken the
    batcher waits, so batches grow under load. Wrap it in :class:`~nnperf.runtime.aio.AsyncRunner`
    (``backend=``) for asyncio callers.
    """

    def __init__(
        self,
        runner: Runner,
        *,
        max_batch_size: int,
        max_delay_ms: float = 1.0,
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
        fixed = _fixed_batch(runner.inputs)
        if fixed is not None and fixed < max_batch_size:
            raise InvalidInputError(
                f"max_batch_size={max_batch_size}: the model runs batches of exactly {fixed} "
                f"rows; expected max_batch_size <= {fixed}"
            )
        self._validator = _row_validator(runner.inputs)
        _check_outputs(runner.outputs)
        self.runner = runner
        self.max_batch_size = max_batch_size
        self.max_delay_ms = float(max_delay_ms)
        self.preferred_batch_sizes = tuple(preferred)
        self._pad_to = fixed
        self._max_queue = max_queue_size or max_batch_size * (runner.max_inflight + 1)
        self._room = threading.BoundedSemaphore(self._max_queue)
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[_Request] = deque()
        self._pending_rows = 0
        self._closed = False
        self._histogram: dict[int, int] = {}
        self._requests = 0
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
        if not 0 < request.rows <= self.max_batch_size:
            raise InvalidInputError(
                f"query has {request.rows} rows on dim 0; expected 1 to max_batch_size="
                f"{self.max_batch_size}"
            )
        if not self._room.acquire(timeout=timeout_s):
            raise OverloadedError(
                f"{self._max_queue} queries already waiting or running and none finished within "
                f"{timeout_s} s; retry later or raise max_queue_size"
            )
        self._enqueue(request)
        return future

    def submit_async(
        self, inputs: Inputs, *, on_exit: Callable[[], None] | None = None
    ) -> asyncio.Future[list[np.ndarray]]:
        """Queue one query from the running event loop; never blocks the loop.

        Results of one batch reach the loop in one ``call_soon_threadsafe`` (cheaper per query
        than a concurrent future bridged with ``asyncio.wrap_future``).

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
        afuture: asyncio.Future[list[np.ndarray]] = loop.create_future()
        request = _Request(feeds, None, arrival, afuture=afuture, loop=loop, on_exit=on_exit)
        if not 0 < request.rows <= self.max_batch_size:
            raise InvalidInputError(
                f"query has {request.rows} rows on dim 0; expected 1 to max_batch_size="
                f"{self.max_batch_size}"
            )
        if not self._room.acquire(blocking=False):
            raise OverloadedError(
                f"{self._max_queue} queries already waiting or running; retry later or raise "
                "max_queue_size"
            )
        self._enqueue(request)
        return afuture

    def _enqueue(self, request: _Request) -> None:
        with self._cond:
            if self._closed:
                self._room.release()
                raise InvalidInputError("the batcher is closed; create a new DynamicBatcher")
            was_empty = not self._pending
            self._pending.append(request)
            self._pending_rows += request.rows
            if was_empty or self._pending_rows >= self._send_rows():
                self._cond.notify()

    def run(self, inputs: Inputs, *, timeout_s: float | None = None) -> list[np.ndarray]:
        """Submit one query and wait for its rows of the outputs."""
        return self.submit(inputs).result(timeout=timeout_s)

    # -- statistics -----------------------------------------------------------------------------
    def stats(self) -> BatchStats:
        """Sizes of the batches formed so far."""
        with self._cond:
            hist = dict(self._histogram)
            requests = self._requests
        return BatchStats(
            batches=sum(hist.values()),
            requests=requests,
            rows=sum(k * v for k, v in hist.items()),
            histogram=hist,
            max_batch_size=self.max_batch_size,
        )

    def reset_stats(self) -> None:
        """Forget the batches formed so far (e.g. after warm-up)."""
        with self._cond:
            self._histogram = {}
            self._requests = 0

    # -- the batcher thread ---------------------------------------------------------------------
    def _send_rows(self) -> int:
        """Rows that make a batch worth sending without waiting."""
        return self.preferred_batch_sizes[-1] if self.preferred_batch_sizes else self.max_batch_size

    def _take(self) -> list[_Request]:
        """Pop the requests of the next batch (called with the lock held)."""
        limit = self.max_batch_size
        if self.preferred_batch_sizes and self._pending_rows < limit:
            fitting = [p for p in self.preferred_batch_sizes if p <= self._pending_rows]
            if fitting:
                limit = fitting[-1]
        batch: list[_Request] = []
        rows = 0
        pending = self._pending
        while pending and rows + pending[0].rows <= limit:
            req = pending.popleft()
            rows += req.rows
            batch.append(req)
        self._pending_rows -= rows
        return batch

    def _loop(self) -> None:
        delay_ns = int(self.max_delay_ms * 1e6)
        cond = self._cond
        while True:
            with cond:
                while not self._pending and not self._closed:
                    cond.wait()
                if not self._pending:
                    return  # closed and drained
                deadline_ns = self._pending[0].arrival_ns + delay_ns
                while self._pending_rows < self._send_rows() and not self._closed:
                    remaining_ns = deadline_ns - time.perf_counter_ns()
                    if remaining_ns <= 0:
                        break
                    cond.wait(remaining_ns / 1e9)
                batch = self._take()
            self._dispatch(batch)

    def _dispatch(self, batch: list[_Request]) -> None:
        live = []
        gone = []
        for req in batch:
            if req.start():
                live.append(req)
            else:  # the caller cancelled while it waited
                gone.append(req)
        if gone:
            self._exit(gone)
        if not live:
            return
        rows = sum(r.rows for r in live)
        with self._cond:
            self._histogram[rows] = self._histogram.get(rows, 0) + 1
            self._requests += len(live)
        if len(live) == 1:
            feeds = live[0].feeds
        else:
            names = live[0].feeds.keys()
            feeds = {n: np.concatenate([r.feeds[n] for r in live]) for n in names}
        if self._pad_to is not None and rows < self._pad_to:
            feeds = {n: _pad_rows(v, self._pad_to) for n, v in feeds.items()}
        try:
            future = self.runner.submit(feeds)  # waits for an in-flight slot: back-pressure
        except BaseException as exc:
            self._finish(live, None, exc)
            return
        future.add_done_callback(lambda f: self._scatter(live, f))

    def _scatter(self, live: list[_Request], future: Future[list[np.ndarray]]) -> None:
        if future.cancelled():  # the runner was closed under the batch (not done by close())
            self._finish(live, None, CancelledError())
            return
        exc = future.exception()
        self._finish(live, None if exc is not None else future.result(), exc)

    def _exit(self, requests: list[_Request]) -> None:
        """Queries that leave without a result (cancelled)."""
        release = self._room.release
        for _ in requests:
            release()
        loops: dict[asyncio.AbstractEventLoop, list[_Request]] = {}
        for req in requests:
            if req.loop is not None:
                loops.setdefault(req.loop, []).append(req)
        for loop, reqs in loops.items():
            _to_loop(loop, _exit_async, reqs)

    def _finish(
        self,
        live: list[_Request],
        outputs: list[np.ndarray] | None,
        exc: BaseException | None,
    ) -> None:
        release = self._room.release
        start = 0
        loops: dict[asyncio.AbstractEventLoop, list[_Request]] = {}
        for req in live:
            release()
            end = start + req.rows
            if req.loop is not None:
                loops.setdefault(req.loop, []).append(req)
            elif outputs is None:
                assert req.future is not None
                req.future.set_exception(exc)
            else:
                assert req.future is not None
                req.future.set_result([o[start:end] for o in outputs])
            start = end
        for loop, reqs in loops.items():
            if len(reqs) != len(live):  # mixed callers: give the loop its own rows only
                offsets = {}
                start = 0
                for req in live:
                    offsets[id(req)] = start
                    start += req.rows
                parts = [(req, offsets[id(req)]) for req in reqs]
                picked = None
                if outputs is not None:
                    idx = np.concatenate([np.arange(off, off + req.rows) for req, off in parts])
                    picked = [o[idx] for o in outputs]
                _to_loop(loop, _deliver_async, reqs, picked, exc)
            else:
                _to_loop(loop, _deliver_async, reqs, outputs, exc)

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
                cancelled = []
                while self._pending:
                    req = self._pending.popleft()
                    if req.future is not None:
                        req.future.cancel()
                    elif req.afuture is not None and req.loop is not None:
                        _to_loop(req.loop, _cancel, req.afuture)
                    cancelled.append(req)
                self._pending_rows = 0
                self._exit(cancelled)
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()
        # Batches already formed run to the end: their callers were told they are running.
        self.runner.close()

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
