"""``AsyncRunner``: ``await runner.run(inputs)`` from asyncio, on the Runner's worker threads.

The event loop never blocks. On a :class:`~nnperf.runtime.runner.Runner` a coroutine validates
its feed and offers the query (``Runner.offer``): it enters the runtime at once when one of the
``max_inflight`` slots is free, else it waits at the door in arrival order and the worker that
frees the next slot lets it in, so no slot waits for the loop to wake up. A worker appends each
finished query to a completion list and wakes the loop with one ``call_soon_threadsafe`` per
*group* of completions (only when no wake-up is already pending); the loop completes the asyncio
futures of the whole group at once. A cancelled ``await`` returns at once: a query that has not
started is dropped when a worker reaches it, one already running finishes in the background.

Other backends (a :class:`~nnperf.runtime.batching.DynamicBatcher`, anything with ``submit(inputs,
*, timeout_s) -> Future``) are bounded on the loop: a coroutine takes one of ``max_inflight``
slots first, and the slot returns when the query leaves the backend, not when the awaiting
coroutine gives up, so cancellation can neither leak a slot nor let more queries inside.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from types import TracebackType
from typing import Any

import numpy as np

from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError
from nnperf.model import ModelSource
from nnperf.runtime.executor import Admitting, Executor, LoopBatching
from nnperf.runtime.feeds import Inputs
from nnperf.runtime.observers import Observers
from nnperf.runtime.runner import create_runner
from nnperf.runtime.session import resolve_config, warn_unapplied_technique
from nnperf.types import TensorDesc

__all__ = ["AsyncRunner", "Backend"]


Backend = Executor
"""What :class:`AsyncRunner` runs on: any :class:`~nnperf.runtime.executor.Executor` (kept
under its old name)."""


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: nobody is left to wait for the slot
        pass


class _Limiter:
    """``asyncio.Semaphore`` for one loop without a coroutine per acquire.

    ``take`` returns ``None`` when a slot was free (the common case: no allocation, no
    suspension) or a future to await, resolved in arrival order as slots come back.
    """

    __slots__ = ("free", "waiters")

    def __init__(self, limit: int) -> None:
        self.free = limit
        self.waiters: deque[asyncio.Future[None]] = deque()

    def take(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None] | None:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return None
        waiter: asyncio.Future[None] = loop.create_future()
        self.waiters.append(waiter)
        return waiter

    def give(self, n: int = 1) -> None:
        self.free += n
        waiters = self.waiters
        while self.free > 0 and waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # a cancelled waiter gave up its place
                self.free -= 1
                waiter.set_result(None)


class AsyncRunner:
    """Runs queries from asyncio coroutines; usable from many coroutines at once.

    Example::

        async with nnperf.AsyncRunner("zoo:mnist", device="cpu(1)*2") as runner:
            outputs = await runner.run(x)

    With ``max_batch_size`` set, concurrent single queries are merged into batches by a
    :class:`~nnperf.runtime.batching.DynamicBatcher` (Triton-style dynamic batching).
    """

    def __init__(
        self,
        model: ModelSource | None = None,
        *,
        device: str | None = None,
        workers: int | None = None,
        batch_size: int | None = None,
        config: RunConfig | str | None = None,
        max_batch_size: int | None = None,
        max_delay_ms: float | None = None,
        preferred_batch_sizes: tuple[int, ...] = (),
        backend: Backend | None = None,
    ) -> None:
        """Load ``model`` (or wrap ``backend``).

        Args:
            model: path, ``zoo:NAME``, bytes or ``onnx.ModelProto``; omit when giving ``backend``.
            device: device string (default: the config's, then ``$NNPERF_DEVICES``, then ``cpu``).
            workers: worker threads (default: one per instance).
            batch_size: fix the model's free batch dimension.
            config: a :class:`RunConfig` or a JSON config path.
            max_batch_size: merge concurrent queries into batches of up to this many rows
                (``None``, the default: the config's merge batching, else none).
            max_delay_ms: with merging, the longest a query waits for others, in ms (default:
                the config's, else 1.0).
            preferred_batch_sizes: with merging, batch sizes to prefer (default: none).
            backend: an existing Runner or DynamicBatcher to run on; the AsyncRunner closes it.

        Raises:
            InvalidInputError: both or neither of ``model`` and ``backend``; bad arguments.
        """
        if (model is None) == (backend is None):
            raise InvalidInputError(
                "AsyncRunner: expected exactly one of model= and backend=; got "
                + ("both" if model is not None else "neither")
            )
        if backend is None:
            cfg = resolve_config(config, device=device, workers=workers, batch_size=batch_size)
            if max_batch_size is None and cfg.max_batch_size is not None:
                # a tuned config's merge batching
                max_batch_size = cfg.max_batch_size
                if max_delay_ms is None:
                    max_delay_ms = cfg.max_delay_ms
            else:
                warn_unapplied_technique(
                    cfg.replace(max_batch_size=None, max_delay_ms=None), "AsyncRunner(model=...)"
                )
            runner = create_runner(
                model,  # type: ignore[arg-type]  # checked above
                config=cfg.without_technique(),
            )
            if max_batch_size is None:
                backend = runner
            else:
                from nnperf.runtime.batcher import DEFAULT_MAX_DELAY_MS, DynamicBatcher

                try:
                    backend = DynamicBatcher(
                        runner,
                        max_batch_size=max_batch_size,
                        max_delay_ms=DEFAULT_MAX_DELAY_MS if max_delay_ms is None else max_delay_ms,
                        preferred_batch_sizes=preferred_batch_sizes,
                    )
                except BaseException:
                    runner.close()
                    raise
        self.backend: Backend = backend
        self._max_inflight = backend.max_inflight
        # A Runner admits queries itself (``offer``): no loop-side bound, no slot round trip.
        self._offer: Callable[..., None] | None = (
            backend.offer if isinstance(backend, Admitting) else None
        )
        # Backends that complete asyncio futures themselves (DynamicBatcher) batch their wake-ups.
        self._submit_async: Callable[..., asyncio.Future[list[np.ndarray]]] | None = (
            backend.submit_async if isinstance(backend, LoopBatching) else None
        )
        self._completed: deque[
            tuple[asyncio.Future[list[np.ndarray]], list[np.ndarray] | None, BaseException | None]
        ] = deque()
        self._wake_pending = False
        # Bound on the loop for backends without ``offer``; remade for each new loop.
        self._limiter = _Limiter(self._max_inflight)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inside = 0
        self._closed = False

    @property
    def max_inflight(self) -> int:
        """Queries inside the runtime at once; more ``run`` calls wait (asynchronously)."""
        return self._max_inflight

    @property
    def observers(self) -> Observers:
        """Who watches the backend's runs."""
        return self.backend.observers

    @property
    def inflight(self) -> int:
        """Queries handed in and not finished yet (inside the runtime or waiting to enter it)."""
        return self._inside

    @property
    def inputs(self) -> tuple[TensorDesc, ...]:
        """Model inputs."""
        return self.backend.inputs

    @property
    def outputs(self) -> tuple[TensorDesc, ...]:
        """Model outputs."""
        return self.backend.outputs

    def _release(self) -> None:
        # On the loop thread, once the query has left a loop-bounded backend.
        self._inside -= 1
        self._limiter.give()

    async def run(self, inputs: Inputs) -> list[np.ndarray]:
        """Run one query and return its outputs in model order, without blocking the loop.

        Cancelling the ``await`` returns at once. On a Runner a query that has not started is
        dropped and one already running finishes in the background; in merge batching a query
        not yet in a batch is dropped.

        Raises:
            InvalidInputError: a bad feed (raised before anything is queued), or closed.
            EngineError: the engine failed.
        """
        if self._closed:
            raise InvalidInputError("AsyncRunner is closed; create a new one")
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._inside:
                raise InvalidInputError(
                    "AsyncRunner is in use on another event loop; use one AsyncRunner per loop"
                )
            self._loop = loop
            self._limiter = _Limiter(self._max_inflight)
        offer = self._offer
        if offer is not None:
            afuture: asyncio.Future[list[np.ndarray]] = loop.create_future()
            # Never blocks: with every slot taken the query waits outside the runtime and a
            # worker lets it in. A cancelled await cancels only ``afuture``; the runner then
            # skips the query if it has not started (``dropped``) and _drain settles the count.
            offer(inputs, functools.partial(self._on_done, afuture), dropped=afuture.done)
            self._inside += 1
            return await afuture
        waiter = self._limiter.take(loop)
        if waiter is not None:
            try:
                await waiter
            except asyncio.CancelledError:
                if not waiter.cancelled():  # the slot was handed over just before the cancel
                    self._limiter.give()
                raise
        self._inside += 1
        submit_async = self._submit_async
        if submit_async is not None:
            try:
                direct = submit_async(inputs, on_exit=self._release)
            except BaseException:
                self._release()
                raise
            # Cancelling this await cancels ``direct``; the backend still calls on_exit once
            # the query has left it, so the slot comes back then.
            return await direct
        try:
            # A slot is held, so the backend has room: submit never blocks the loop.
            future = self.backend.submit(inputs, timeout_s=0)
        except BaseException:
            self._release()
            raise
        afut: asyncio.Future[list[np.ndarray]] = loop.create_future()
        # The worker wakes the loop once (call_soon_threadsafe) and the slot comes back then.
        # A cancelled await cancels only ``afut``: the query itself is not cancelled (the
        # runtime cannot tell when a cancelled, queued query leaves it), it finishes in the
        # background and its slot returns when it does.
        future.add_done_callback(lambda f: _call_soon(loop, self._complete, f, afut))
        return await afut

    def _on_done(
        self,
        afuture: asyncio.Future[list[np.ndarray]],
        outputs: list[np.ndarray] | None,
        error: BaseException | None,
    ) -> None:
        # On a worker thread. deque.append is atomic; the flag is only an optimisation (two
        # wake-ups for one group are harmless), and the order append-then-test and
        # clear-then-drain (in _drain) means no completion is ever left without a wake-up.
        self._completed.append((afuture, outputs, error))
        if not self._wake_pending:
            self._wake_pending = True
            loop = self._loop
            assert loop is not None
            try:
                loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop is closed: nobody is left to wait
                self._wake_pending = False

    def _drain(self) -> None:
        # On the loop thread: complete every finished query.
        self._wake_pending = False
        completed = self._completed
        pop = completed.popleft
        n = 0
        while completed:
            afuture, outputs, error = pop()
            n += 1
            if afuture.done():  # the awaiting coroutine was cancelled
                continue
            if error is None:
                afuture.set_result(outputs)  # type: ignore[arg-type]
            elif isinstance(error, CancelledError):  # dropped by close(cancel_pending=True)
                afuture.cancel()
            else:
                afuture.set_exception(error)
        self._inside -= n

    def _complete(
        self, future: Future[list[np.ndarray]], afuture: asyncio.Future[list[np.ndarray]]
    ) -> None:
        # On the loop thread, once the query has left the runtime.
        self._release()
        if afuture.done():  # the awaiting coroutine was cancelled
            return
        exc = future.exception()
        if exc is not None:
            afuture.set_exception(exc)
        else:
            afuture.set_result(future.result())

    async def close(self) -> None:
        """Wait for queries inside to finish, then stop the workers (in a thread)."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self.backend.close)

    def close_sync(self) -> None:
        """Close from synchronous code (outside the event loop)."""
        if not self._closed:
            self._closed = True
            self.backend.close()

    async def __aenter__(self) -> AsyncRunner:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncRunner(backend={self.backend!r})"
