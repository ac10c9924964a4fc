"""``AsyncRunner``: ``await runner.run(inputs)`` from asyncio, on the Runner's worker threads.

The event loop never blocks: a coroutine first waits (asynchronously) for one of the
``max_inflight`` slots, then hands the query to the worker threads (``Runner.submit_call``: no
``concurrent.futures.Future``). A worker appends each finished query to a completion list and
wakes the loop with one ``call_soon_threadsafe`` per *group* of completions (only when no wake-up
is already pending), and the loop completes the asyncio futures of the whole group at once. The slot goes back when the query leaves the runtime, not when the
awaiting coroutine gives up, so a cancelled ``await`` can neither leak a slot nor let more than
``max_inflight`` queries inside.

Any backend with ``submit(inputs, *, timeout_s) -> Future``, ``max_inflight``, ``inputs``,
``outputs`` and ``close()`` can sit underneath: a :class:`~nnperf.runtime.runner.Runner`
(default) or a :class:`~nnperf.runtime.batching.DynamicBatcher` (merge batching).
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from nnperf.errors import InvalidInputError
from nnperf.model import ModelSource
from nnperf.runtime.feeds import Inputs
from nnperf.runtime.runner import create_runner
from nnperf.types import RunConfig, TensorDesc

__all__ = ["AsyncRunner", "Backend"]


class Backend(Protocol):
    """What :class:`AsyncRunner` needs underneath (Runner and DynamicBatcher both fit)."""

    @property
    def max_inflight(self) -> int:
        """Queries the backend accepts at once."""
        ...

    @property
    def inputs(self) -> tuple[TensorDesc, ...]:
        """Model inputs."""
        ...

    @property
    def outputs(self) -> tuple[TensorDesc, ...]:
        """Model outputs."""
        ...

    def submit(self, inputs: Inputs, *, timeout_s: float | None = None) -> Future[list[np.ndarray]]:
        """Queue one query."""
        ...

    def close(self) -> None:
        """Stop and release resources."""
        ...


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: nobody is left to wait for the slot
        pass


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
        max_delay_ms: float = 1.0,
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
                (``None``, the default: no merging).
            max_delay_ms: with merging, the longest a query waits for others, in ms (default 1.0).
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
            runner = create_runner(
                model,  # type: ignore[arg-type]  # checked above
                device=device,
                workers=workers,
                batch_size=batch_size,
                config=config,
            )
            if max_batch_size is None:
                backend = runner
            else:
                from nnperf.runtime.batching import DynamicBatcher

                try:
                    backend = DynamicBatcher(
                        runner,
                        max_batch_size=max_batch_size,
                        max_delay_ms=max_delay_ms,
                        preferred_batch_sizes=preferred_batch_sizes,
                    )
                except BaseException:
                    runner.close()
                    raise
        self.backend: Backend = backend
        self._max_inflight = backend.max_inflight
        # Backends that complete asyncio futures themselves (DynamicBatcher) batch their wake-ups.
        self._submit_async: Callable[..., asyncio.Future[list[np.ndarray]]] | None = getattr(
            backend, "submit_async", None
        )
        # Backends that take a completion callback (Runner) skip the concurrent future.
        self._submit_call: Callable[..., None] | None = getattr(backend, "submit_call", None)
        self._completed: deque[
            tuple[asyncio.Future[list[np.ndarray]], list[np.ndarray] | None, BaseException | None]
        ] = deque()
        self._wake_pending = False
        # Created lazily on the running loop (asyncio primitives bind to a loop on first use).
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inside = 0
        self._closed = False

    @property
    def max_inflight(self) -> int:
        """Queries inside the runtime at once; more ``run`` calls wait (asynchronously)."""
        return self._max_inflight

    @property
    def inflight(self) -> int:
        """Queries inside the runtime now (slots taken)."""
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
        # On the loop thread, once the query has left the runtime.
        self._inside -= 1
        assert self._slots is not None
        self._slots.release()

    async def run(self, inputs: Inputs) -> list[np.ndarray]:
        """Run one query and return its outputs in model order, without blocking the loop.

        Cancelling the ``await`` returns at once; on a Runner the query still finishes in the
        background (its slot returns when it does), in merge batching a query not yet in a batch
        is dropped.

        Raises:
            InvalidInputError: a bad feed (raised before anything is queued), or closed.
            EngineError: the engine failed.
        """
        if self._closed:
            raise InvalidInputError("AsyncRunner is closed; create a new one")
        loop = asyncio.get_running_loop()
        slots = self._slots
        if slots is None or self._loop is not loop:
            if self._inside:
                raise InvalidInputError(
                    "AsyncRunner is in use on another event loop; use one AsyncRunner per loop"
                )
            slots = self._slots = asyncio.Semaphore(self._max_inflight)
            self._loop = loop
        await slots.acquire()
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
        afuture: asyncio.Future[list[np.ndarray]] = loop.create_future()
        submit_call = self._submit_call
        if submit_call is not None:
            try:
                # A slot is held, so the runner has room: this never blocks the loop.
                submit_call(inputs, functools.partial(self._on_done, afuture), timeout_s=0)
            except BaseException:
                self._release()
                raise
            # A cancelled await cancels only ``afuture``: the query finishes in the background
            # and its slot returns when it leaves the runtime (see _drain).
            return await afuture
        try:
            # A slot is held, so the backend has room: submit never blocks the loop.
            future = self.backend.submit(inputs, timeout_s=0)
        except BaseException:
            self._release()
            raise
        # The worker wakes the loop once (call_soon_threadsafe) and the slot comes back then.
        # A cancelled await cancels only ``afuture``: the query itself is not cancelled (the
        # runtime cannot tell when a cancelled, queued query leaves it), it finishes in the
        # background and its slot returns when it does.
        future.add_done_callback(lambda f: _call_soon(loop, self._complete, f, afuture))
        return await afuture

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
        # On the loop thread: complete every finished query, then give their slots back.
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
        if n:
            self._inside -= n
            slots = self._slots
            assert slots is not None
            release = slots.release
            for _ in range(n):
                release()

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
