"""The executor contract: what Runner, DynamicBatcher and Pipeline share.

An :class:`Executor` takes queries from any thread and answers each with exactly one result or
one error. The queue API (:func:`~nnperf.runtime.queue.queue_over`), :class:`~nnperf.runtime.aio.
AsyncRunner`, ``nnperf bench``, ``nnperf serve`` and tiling are written against it, not against a
concrete class.

Two optional fast paths are capabilities, checked with ``isinstance`` (they are
``runtime_checkable``), never by probing attributes:

* :class:`Admitting`: queries past the in-flight bound wait *outside* the runtime and a worker
  admits the next one as it frees a slot, with no round trip through the submitting thread or
  event loop (:class:`~nnperf.runtime.runner.Runner`);
* :class:`LoopBatching`: merge batching formed on the caller's event loop, finished batches
  delivered with one wake-up per group (:class:`~nnperf.runtime.batching.DynamicBatcher`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol, runtime_checkable

import numpy as np

from nnperf.runtime.feeds import Inputs
from nnperf.runtime.observers import Observers
from nnperf.types import TensorDesc

__all__ = ["Admitting", "Done", "Executor", "LoopBatching"]

Done = Callable[[list[np.ndarray] | None, BaseException | None], None]
"""Completion callback: ``done(outputs, None)`` or ``done(None, error)``, called exactly once."""


@runtime_checkable
class Executor(Protocol):
    """Runs queries submitted from any thread; every query gets one result or one error."""

    @property
    def inputs(self) -> tuple[TensorDesc, ...]:
        """Model inputs (what :meth:`submit` validates against)."""
        ...

    @property
    def outputs(self) -> tuple[TensorDesc, ...]:
        """Model outputs, in the order results come back."""
        ...

    @property
    def max_inflight(self) -> int:
        """Queries accepted at once; more wait (``submit`` blocks up to ``timeout_s``)."""
        ...

    @property
    def observers(self) -> Observers:
        """Who watches the runs this executor makes (see :mod:`nnperf.runtime.observers`)."""
        ...

    @property
    def instances(self) -> int:
        """Engine instances the executor runs on (utilisation is busy time over these)."""
        ...

    def submit(self, inputs: Inputs, *, timeout_s: float | None = None) -> Future[list[np.ndarray]]:
        """Queue one query; the future holds its outputs or its error.

        Raises:
            InvalidInputError: a bad feed (raised here: nothing is queued), or closed.
            OverloadedError: no room within ``timeout_s``.
        """
        ...

    def run(self, inputs: Inputs, *, timeout_s: float | None = None) -> list[np.ndarray]:
        """Submit one query and wait for its outputs."""
        ...

    def close(self, *, cancel_pending: bool = False) -> None:
        """Stop accepting queries; finish (or cancel) the queued ones; release resources."""
        ...


@runtime_checkable
class Admitting(Protocol):
    """Capability: queue a query without ever blocking, admitted by the worker that frees a
    slot."""

    def offer(
        self,
        inputs: Inputs,
        done: Done,
        *,
        outputs: list[str] | None = None,
        dropped: Callable[[], bool] | None = None,
    ) -> None:
        """Queue one query; ``done`` gets its outcome. ``dropped()`` returning true just before
        it would run skips it (``done(None, CancelledError())``).

        Raises:
            InvalidInputError: a bad feed or output name, or closed (``done`` is never called).
        """
        ...


@runtime_checkable
class LoopBatching(Protocol):
    """Capability: batches formed on the caller's event loop."""

    def submit_async(
        self, inputs: Inputs, *, on_exit: Callable[[], None] | None = None
    ) -> asyncio.Future[list[np.ndarray]]:
        """Queue one query from the running loop; ``on_exit`` is called once it has left."""
        ...
