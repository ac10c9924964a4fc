"""The queue API: submit from one side, receive ``(context, outputs)`` on the other.

FuriosaAI's ``create_queue`` / ``create_async`` (Submitter, Receiver) on top of a :class:`Runner`:
``submit(inputs, context=...)`` hands a query to the runner's workers and returns at once;
``recv()`` returns whichever query finished next, with the caller's context to match it up.
Completion order may differ from submission order.

Bounds (back-pressure instead of unbounded memory):

* At most the runner's ``max_inflight`` queries are inside the runtime (default instances + 3,
  or ``$NNPERF_MAX_INFLIGHT``); the next ones wait in the input queue, outside it, and the worker
  that frees a slot lets the oldest in (no round trip through the submitting thread).
* ``input_queue_size`` queries may wait in the input queue (default 100, as in FuriosaAI's
  queue example); when it is full, ``submit`` blocks (or raises
  :class:`~nnperf.errors.OverloadedError` after ``timeout_s``). Inputs are not copied, so a deep
  queue holds references, not memory. Small models need the depth: a submitting thread that
  wakes for every free slot costs more than their queries (see ``benchmarks/concurrency.py``).
* ``output_queue_size`` finished results may wait for ``recv``; ``None`` (the default) lets them
  pile up, so a caller may submit everything first and receive afterwards.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from types import TracebackType
from typing import Any

import numpy as np

from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError, NnperfError, OverloadedError
from nnperf.model import ModelSource
from nnperf.runtime.executor import Admitting, Executor
from nnperf.runtime.feeds import Inputs
from nnperf.runtime.runner import Runner, Slots
from nnperf.runtime.session import Session, resolve_config, warn_unapplied_technique
from nnperf.types import TensorDesc, concrete_shape

__all__ = ["QueryFailedError", "QueueClosedError", "Receiver", "Submitter", "create_queue"]

_MAX_QUEUE_SIZE = 2**31 - 1

DEFAULT_INPUT_QUEUE_SIZE = 100
"""Queries that may wait outside the runtime before ``submit`` blocks (FuriosaAI's example value)."""


class QueueClosedError(NnperfError, EOFError):
    """``recv`` on a stream that has ended: the submitter was closed and every result received."""

    http_status = 410


class QueryFailedError(NnperfError):
    """One queued query failed; raised by :meth:`Receiver.recv` in place of its outputs.

    The stream goes on: the next ``recv`` returns the next result.

    Attributes:
        context: the context given to :meth:`Submitter.submit` for the failed query.
        error: the query's own exception (also ``__cause__``), e.g. an
            :class:`~nnperf.errors.EngineError`.
    """

    def __init__(self, context: Any, error: BaseException) -> None:
        super().__init__(f"query with context {context!r} failed: {type(error).__name__}: {error}")
        self.context = context
        self.error = error
        self.http_status = getattr(error, "http_status", 500)  # type: ignore[misc]


_END = object()


class _Stream:
    """State shared by a Submitter and its Receiver."""

    def __init__(
        self, runner: Executor, input_queue_size: int, output_queue_size: int | None
    ) -> None:
        self.runner = runner
        self.input_queue_size = input_queue_size
        self.results: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Runners take queries past their in-flight bound (``offer``) and admit them as slots
        # free; ``room`` then bounds those inside plus those waiting. Other backends (batcher,
        # pipeline) bound their own submit.
        self.offer: Callable[..., None] | None = (
            runner.offer if isinstance(runner, Admitting) else None
        )
        capacity = runner.max_inflight + input_queue_size
        # a submitter blocked on a full queue wakes when half of it has drained, not per query
        self.room = (
            Slots(capacity, wake_batch=input_queue_size // 2) if self.offer is not None else None
        )
        # Results not yet received are bounded by the queries inside, those waiting, and the
        # output queue.
        self.outstanding = (
            Slots(capacity + output_queue_size) if output_queue_size is not None else None
        )
        self.lock = threading.Lock()
        self.pending = 0  # submitted, result not yet in ``results``
        self.submit_closed = False
        self.recv_closed = False
        self.ended = False
        self.runner_closed = False

    def on_done(
        self, context: Any, outputs: list[np.ndarray] | None, error: BaseException | None
    ) -> None:
        # Runs on the worker thread that finished the query (no Future: one tuple per result).
        if self.room is not None:
            self.room.release()
        if not self.recv_closed:
            self.results.put((context, outputs, error))
        elif self.outstanding is not None:
            self.outstanding.release()
        with self.lock:
            self.pending -= 1
            end = self.submit_closed and self.pending == 0
        if end:
            self.results.put(_END)

    def close_runner(self, *, cancel_pending: bool) -> None:
        with self.lock:
            if self.runner_closed:
                return
            self.runner_closed = True
        self.runner.close(cancel_pending=cancel_pending)


class Submitter:
    """The sending side of a queue (Furiosa's ``Submitter`` / ``AsyncSession``). Thread-safe."""

    def __init__(self, stream: _Stream) -> None:
        self._stream = stream

    @property
    def inputs(self) -> tuple[TensorDesc, ...]:
        """Model inputs."""
        return self._stream.runner.inputs

    @property
    def outputs(self) -> tuple[TensorDesc, ...]:
        """Model outputs."""
        return self._stream.runner.outputs

    @property
    def runner(self) -> Executor:
        """The runner whose workers run the queries."""
        return self._stream.runner

    def allocate(self) -> list[np.ndarray]:
        """Zero-filled input arrays of the model's shapes (symbolic dims as 1), in input order."""
        return [np.zeros(concrete_shape(t, default=1), dtype=t.dtype) for t in self.inputs]

    def submit(
        self, inputs: Inputs, *, context: Any = None, timeout_s: float | None = None
    ) -> None:
        """Queue one query; its result comes out of the :class:`Receiver` with ``context``.

        Returns at once unless the input (or output) queue is full; then it waits for room.
        Inputs are not copied: do not modify them until their result is received.

        Args:
            inputs: one array, a list in input order, or a dict by name (validated here).
            context: any object returned with the result (e.g. the query's index).
            timeout_s: longest wait for room in seconds; ``None`` (default) waits as needed.

        Raises:
            InvalidInputError: a bad feed (nothing was queued), or the queue is closed.
            OverloadedError: no room within ``timeout_s``.
        """
        s = self._stream
        if s.submit_closed or s.recv_closed:
            raise InvalidInputError(self._closed_message())
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        outstanding = s.outstanding
        if outstanding is not None and not outstanding.acquire(timeout=timeout_s):
            raise OverloadedError(
                f"output queue full: results waiting for recv() did not drain within {timeout_s} s; "
                "receive results, or raise output_queue_size"
            )
        room = s.room
        if room is not None:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not room.acquire(timeout=remaining):
                if outstanding is not None:
                    outstanding.release()
                raise OverloadedError(
                    f"input queue full: {s.input_queue_size} queries waiting and none entered the "
                    f"runtime within {timeout_s} s; retry later, or raise input_queue_size"
                )
        with s.lock:
            s.pending += 1
        try:
            on_done = s.on_done
            if s.offer is not None:
                # Never blocks: room is held, so the query enters or waits at the door.
                s.offer(inputs, lambda outputs, error: on_done(context, outputs, error))
            else:  # DynamicBatcher, Pipeline: backends that hand out futures
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                future = s.runner.submit(inputs, timeout_s=remaining)
                future.add_done_callback(lambda f: _future_done(on_done, context, f))
        except BaseException as exc:
            with s.lock:
                s.pending -= 1
                end = s.submit_closed and s.pending == 0
            if room is not None:
                room.release()
            if outstanding is not None:
                outstanding.release()
            if end:
                s.results.put(_END)
            if isinstance(exc, InvalidInputError) and s.recv_closed:
                raise InvalidInputError(self._closed_message()) from None
            raise

    def _closed_message(self) -> str:
        if self._stream.recv_closed:
            return "the receiver is closed, so results would be lost; create a new queue"
        return "the submitter is closed; create a new queue with create_queue()"

    def close(self) -> None:
        """Stop accepting queries. Queued ones still run; the receiver ends after the last one."""
        s = self._stream
        with s.lock:
            if s.submit_closed:
                return
            s.submit_closed = True
            end = s.pending == 0
        if end:
            s.results.put(_END)

    def __enter__(self) -> Submitter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Receiver:
    """The receiving side of a queue (Furiosa's ``Receiver`` / ``CompletionQueue``).

    ``recv`` returns ``(context, outputs)``; iterating yields the same until the submitter is
    closed and every result has been received. A failed query raises :class:`QueryFailedError`
    (with its ``context``) from ``recv`` / the iterator; receiving again continues the stream.
    """

    def __init__(self, stream: _Stream) -> None:
        self._stream = stream

    def recv(self, timeout_s: float | None = None) -> tuple[Any, list[np.ndarray]]:
        """The next finished query's ``(context, outputs)``.

        Args:
            timeout_s: longest wait in **seconds** (float), as ``furiosa.runtime.sync``'s
                ``Receiver.recv(timeout)``; ``None`` (default) waits as needed. Porting from
                Furiosa's legacy ``CompletionQueue.recv(timeout)``, which took *milliseconds*:
                divide by 1000 (``recv(100)`` there is ``recv(0.1)`` here). A value above
                3600 (an hour) is honoured but warns (``UserWarning``), naming the unit.

        Raises:
            TimeoutError: nothing finished within ``timeout_s``.
            QueryFailedError: the next finished query failed (its context and error attached).
            QueueClosedError: the stream has ended (submitter closed, all received) or the
                receiver was closed.
        """
        if timeout_s is not None and timeout_s > 3600:
            import warnings

            warnings.warn(
                f"Receiver.recv(timeout_s={timeout_s!r}): timeout_s is in seconds, so this waits "
                f"up to {timeout_s / 3600:.1f} h; if you meant {timeout_s!r} ms (Furiosa's "
                f"legacy CompletionQueue.recv), pass timeout_s={timeout_s / 1000:g}",
                UserWarning,
                stacklevel=2,
            )
        s = self._stream
        if s.ended or s.recv_closed:
            raise QueueClosedError(
                "the queue has ended: the submitter was closed and every result received"
                if s.ended
                else "the receiver is closed; create a new queue with create_queue()"
            )
        try:
            item = s.results.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(f"no result within {timeout_s} s") from None
        if item is _END:
            s.ended = True
            s.close_runner(cancel_pending=False)
            raise QueueClosedError(
                "the queue has ended: the submitter was closed and every result received"
            )
        if s.outstanding is not None:
            s.outstanding.release()
        context, outputs, error = item
        if error is not None:
            raise QueryFailedError(context, error) from error
        return context, outputs

    def __iter__(self) -> Iterator[tuple[Any, list[np.ndarray]]]:
        return self

    def __next__(self) -> tuple[Any, list[np.ndarray]]:
        try:
            return self.recv()
        except QueueClosedError:
            raise StopIteration from None

    def close(self) -> None:
        """Stop the stream: cancel queries not yet started, drop results, join the workers.

        Later ``submit`` calls raise :class:`~nnperf.errors.InvalidInputError`.
        """
        s = self._stream
        with s.lock:
            if s.recv_closed:
                return
            s.recv_closed = True
        s.close_runner(cancel_pending=True)
        while True:  # drop what was never received
            try:
                item = s.results.get_nowait()
            except queue.Empty:
                break
            if item is not _END and s.outstanding is not None:
                s.outstanding.release()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _check_size(name: str, value: int | None) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or not 0 < value < _MAX_QUEUE_SIZE
    ):
        raise InvalidInputError(
            f"{name}: got {value!r}, expected an integer in [1, {_MAX_QUEUE_SIZE - 1}] or None"
        )


def create_queue(
    model: ModelSource,
    *,
    device: str | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    config: RunConfig | str | None = None,
    input_queue_size: int | None = None,
    output_queue_size: int | None = None,
    engine: str | None = None,
) -> tuple[Submitter, Receiver]:
    """Load ``model`` and return the two ends of a query queue.

    Args:
        model: path, ``zoo:NAME``, bytes or ``onnx.ModelProto``.
        device: device string (default: the config's, then ``$NNPERF_DEVICES``, then ``cpu``).
        workers: worker threads (default: one per instance).
        batch_size: fix the model's free batch dimension.
        config: a :class:`RunConfig` or a JSON config path.
        input_queue_size: queries that may wait outside the runtime, once ``max_inflight`` are
            inside, before ``submit`` blocks (default 100).
        output_queue_size: finished results that may wait for ``recv`` before ``submit`` blocks;
            ``None`` (default): no bound.
        engine: ``onnxruntime`` (default) or ``openvino``; default: the config's.

    Returns:
        ``(submitter, receiver)``. Close the receiver (or use both as context managers) to stop
        the workers; closing only the submitter ends the stream once its results are received.

    Raises:
        InvalidInputError: a bad queue size, device or config; ModelLoadError.
    """
    _check_size("input_queue_size", input_queue_size)
    _check_size("output_queue_size", output_queue_size)
    cfg = resolve_config(
        config, device=device, batch_size=batch_size, workers=workers, engine=engine
    )
    warn_unapplied_technique(cfg, "create_queue")
    session = Session(model, config=cfg)
    try:
        runner = Runner(session, workers=cfg.workers)
    except BaseException:
        session.close()
        raise
    stream = _Stream(runner, input_queue_size or DEFAULT_INPUT_QUEUE_SIZE, output_queue_size)
    return Submitter(stream), Receiver(stream)


def _future_done(
    on_done: Callable[[Any, list[np.ndarray] | None, BaseException | None], None],
    context: Any,
    future: Future[list[np.ndarray]],
) -> None:
    if future.cancelled():
        on_done(context, None, CancelledError())
        return
    error = future.exception()
    on_done(context, None if error is not None else future.result(), error)


def queue_over(
    runner: Executor,
    *,
    input_queue_size: int | None = None,
    output_queue_size: int | None = None,
) -> tuple[Submitter, Receiver]:
    """The two ends of a query queue over an existing runner-like backend.

    ``runner`` is any :class:`~nnperf.runtime.executor.Executor` (a :class:`Runner`, a
    ``DynamicBatcher`` or a ``Pipeline``); the receiver closes it when the stream ends or is
    closed. ``nnperf bench --api queue`` uses this.
    ``input_queue_size`` (default 100) applies to a Runner; the others bound their own submit.
    """
    _check_size("input_queue_size", input_queue_size)
    _check_size("output_queue_size", output_queue_size)
    stream = _Stream(runner, input_queue_size or DEFAULT_INPUT_QUEUE_SIZE, output_queue_size)
    return Submitter(stream), Receiver(stream)
