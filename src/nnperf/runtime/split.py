"""Split batching (AWS Neuron dynamic batching): a user batch of any size on instances built for a
fixed batch.

:class:`SplitBatcher` cuts a user batch larger than the instances' batch size into chunks of that
size along dim 0, pads the tail chunk (repeating its last row), runs the chunks concurrently on a
Runner's instances (or one after another on a Session) and concatenates the outputs: the result
equals one big run. The dim-0 helpers here are shared with merge batching
(:mod:`nnperf.runtime.batcher`): both need every input and output to carry the batch on dim 0.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from types import TracebackType

import numpy as np

from nnperf.errors import InvalidInputError
from nnperf.runtime.feeds import FeedValidator, Inputs
from nnperf.runtime.observers import Observers
from nnperf.runtime.runner import Runner
from nnperf.runtime.session import Session
from nnperf.types import TensorDesc

__all__ = ["SplitBatcher", "run_split"]


def fixed_batch(inputs: Sequence[TensorDesc]) -> int | None:
    """The instances' fixed batch size (leading dim of the inputs), or ``None`` if free."""
    dims = {d.shape[0] for d in inputs if d.shape}
    fixed = [d for d in dims if isinstance(d, int)]
    return fixed[0] if len(fixed) == 1 and len(dims) == 1 else None


def row_validator(inputs: Sequence[TensorDesc]) -> FeedValidator:
    """A validator that accepts any number of rows on dim 0 of every input (shared by all)."""
    for d in inputs:
        if not d.shape:
            raise InvalidInputError(
                f"input {d.name!r} is a scalar; batching needs a batch dimension (dim 0) on "
                "every input"
            )
    # One symbol for dim 0 of every input, so their row counts must agree; named as the model
    # names it (error messages show it), else "batch".
    rows = next((d.shape[0] for d in inputs if isinstance(d.shape[0], str)), "batch")
    return FeedValidator(
        [TensorDesc(d.name, (rows, *d.shape[1:]), d.dtype, d.layout) for d in inputs]
    )


def check_outputs(outputs: Sequence[TensorDesc]) -> None:
    for d in outputs:
        if not d.shape:
            raise InvalidInputError(
                f"output {d.name!r} is a scalar; batching needs a batch dimension (dim 0) on "
                "every output"
            )


def pad_rows(arr: np.ndarray, rows: int) -> np.ndarray:
    """``arr`` grown to ``rows`` rows by repeating its last row."""
    missing = rows - arr.shape[0]
    if missing <= 0:
        return arr
    return np.concatenate([arr, np.repeat(arr[-1:], missing, axis=0)])


def rows_of(feeds: dict[str, np.ndarray]) -> int:
    return int(next(iter(feeds.values())).shape[0])


class SplitBatcher:
    """Runs a user batch of any size on instances built for a fixed batch (Neuron dynamic batching).

    Example::

        runner = nnperf.create_runner(model, device="cpu(1)*2", batch_size=4)
        outputs = SplitBatcher(runner).run(x)   # x: 10 rows -> chunks 4 + 4 + 2 (padded to 4)

    On a :class:`Runner` the chunks run concurrently over its instances; on a :class:`Session`
    they run one after another on the calling thread. It is an
    :class:`~nnperf.runtime.executor.Executor`: :meth:`submit` answers each query (all its chunks)
    with one future, so the queue and asyncio APIs and ``nnperf bench`` run on it.
    """

    def __init__(
        self,
        target: Runner | Session,
        *,
        chunk_size: int | None = None,
        close_target: bool = False,
    ) -> None:
        """Wrap ``target``.

        Args:
            target: the Runner (concurrent chunks) or Session (sequential chunks) to run on.
            chunk_size: rows per chunk; default the instances' fixed batch size (``batch_size=``
                or a static leading dim).
            close_target: :meth:`close` closes ``target`` too (default: closing it stays the
                caller's job).

        Raises:
            InvalidInputError: no chunk size given or fixed, or a model without a batch dim.
        """
        self.target = target
        fixed = fixed_batch(target.inputs)
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
        self._validator = row_validator(target.inputs)
        check_outputs(target.outputs)
        self._close_target = close_target
        self._closed = False

    # -- the Executor contract --------------------------------------------------------------------
    @property
    def inputs(self) -> tuple[TensorDesc, ...]:
        """The instances' inputs (a query may carry any number of rows on dim 0)."""
        return self.target.inputs

    @property
    def outputs(self) -> tuple[TensorDesc, ...]:
        """Model outputs."""
        return self.target.outputs

    @property
    def max_inflight(self) -> int:
        """The target's in-flight bound (a chunk takes one slot; a Session runs one query)."""
        return self.target.max_inflight if isinstance(self.target, Runner) else 1

    @property
    def observers(self) -> Observers:
        """Who watches the chunks' runs."""
        return self.target.observers

    @property
    def instances(self) -> int:
        """Engine instances the chunks run on."""
        target = self.target
        return target.instances if isinstance(target, Runner) else len(target.instances)

    def _chunks(self, inputs: Inputs) -> tuple[int, list[dict[str, np.ndarray]]]:
        if self._closed:
            raise InvalidInputError("the split batcher is closed; create a new one")
        feeds = self._validator.normalise(inputs)
        rows = rows_of(feeds)
        if rows == 0:
            raise InvalidInputError("inputs have 0 rows on dim 0; expected at least one row")
        size = self.chunk_size
        chunks: list[dict[str, np.ndarray]] = []
        for start in range(0, rows, size):
            chunk = {k: v[start : start + size] for k, v in feeds.items()}
            if self._pad and rows - start < size:
                chunk = {k: pad_rows(v, size) for k, v in chunk.items()}
            chunks.append(chunk)
        return rows, chunks

    @staticmethod
    def _merge(rows: int, parts: list[list[np.ndarray]]) -> list[np.ndarray]:
        if len(parts) == 1:
            return [o[:rows] for o in parts[0]]
        return [np.concatenate([p[i] for p in parts])[:rows] for i in range(len(parts[0]))]

    def submit(self, inputs: Inputs, *, timeout_s: float | None = None) -> Future[list[np.ndarray]]:
        """Queue one batch of any number of rows; the future holds the merged outputs, or the
        first chunk's error (the other chunks are cancelled where they have not started).

        Raises:
            InvalidInputError: a bad feed, an empty batch, or closed (nothing is queued).
            OverloadedError: no slot for a chunk within ``timeout_s`` (chunks already queued are
                cancelled).
        """
        rows, chunks = self._chunks(inputs)
        result: Future[list[np.ndarray]] = Future()
        target = self.target
        if not isinstance(target, Runner):
            try:
                result.set_result(self._merge(rows, [target.run(c) for c in chunks]))
            except Exception as exc:
                result.set_exception(exc)
            return result
        futures: list[Future[list[np.ndarray]]] = []
        try:
            for c in chunks:
                futures.append(target.submit(c, timeout_s=timeout_s))
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        left = [len(futures)]
        settled = [False]
        lock = threading.Lock()

        def one_done(f: Future[list[np.ndarray]]) -> None:
            failed = f.cancelled() or f.exception() is not None
            with lock:
                left[0] -= 1
                if settled[0] or not (failed or left[0] == 0):
                    return
                settled[0] = True  # this call answers the query, exactly once
            # Outside the lock: cancelling runs the other chunks' callbacks on this thread.
            if failed:
                for other in futures:
                    other.cancel()
                error = None if f.cancelled() else f.exception()
                if error is not None:
                    result.set_exception(error)
                else:
                    result.cancel()
                return
            try:
                result.set_result(self._merge(rows, [p.result() for p in futures]))
            except BaseException as exc:  # a merge that fails still answers the query
                result.set_exception(exc)

        for f in futures:
            f.add_done_callback(one_done)
        return result

    def run(self, inputs: Inputs, *, timeout_s: float | None = None) -> list[np.ndarray]:
        """Run a batch of any number of rows; the outputs equal one run of the whole batch.

        Raises:
            InvalidInputError: a bad feed or an empty batch.
            EngineError: a chunk failed.
        """
        target = self.target
        if not isinstance(target, Runner):
            rows, chunks = self._chunks(inputs)
            return self._merge(rows, [target.run(c) for c in chunks])
        future = self.submit(inputs, timeout_s=timeout_s)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def close(self, *, cancel_pending: bool = False) -> None:
        """Refuse new batches; with ``close_target``, close the target too (finishing or, with
        ``cancel_pending``, cancelling the chunks it holds)."""
        self._closed = True
        if self._close_target:
            if isinstance(self.target, Runner):
                self.target.close(cancel_pending=cancel_pending)
            else:
                self.target.close()

    def __enter__(self) -> SplitBatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def run_split(
    target: Runner | Session, inputs: Inputs, *, chunk_size: int | None = None
) -> list[np.ndarray]:
    """One-shot :meth:`SplitBatcher.run` (see :class:`SplitBatcher`)."""
    return SplitBatcher(target, chunk_size=chunk_size).run(inputs)
