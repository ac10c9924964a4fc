"""Run observers: how the profiler and ``bench`` watch the runtime.

Every run checks one module-level list; while it is empty the run takes its fast path and pays
nothing more. An observer receives a :class:`RunEvent` after each run, on the thread that ran it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "PROFILER_OUTPUT_ENV",
    "RunEvent",
    "RunObserver",
    "add_observer",
    "add_session_hook",
    "observers",
    "remove_observer",
    "remove_session_hook",
]

PROFILER_OUTPUT_ENV = "NNPERF_PROFILER_OUTPUT_PATH"


@dataclass(frozen=True)
class RunEvent:
    """Timestamps (``time.perf_counter_ns``) of one query through the runtime.

    Attributes:
        session_id: which Session/Runner ran it (``id`` of the owner).
        instance: index of the engine instance that ran it.
        thread_id: ``threading.get_ident()`` of the thread that ran the engine.
        batch: rows in the query (leading dim of the first input, 1 for scalars).
        submit_ns: when the caller handed the query in (Runner: before queueing).
        start_ns: when validation began on the running thread (queue wait = start - submit).
        engine_start_ns / engine_end_ns: the engine call.
        end_ns: when outputs were ready for the caller.
        error: the exception's type name when the query failed, else ``None``.
        queued_ns: Runner only: when the validated query entered the queue (validation =
            queued - submit, queue wait = start - queued); ``None`` for a Session run.
    """

    session_id: int
    instance: int
    thread_id: int
    batch: int
    submit_ns: int
    start_ns: int
    engine_start_ns: int
    engine_end_ns: int
    end_ns: int
    error: str | None = None
    queued_ns: int | None = None

    @property
    def latency_ns(self) -> int:
        """From submission to outputs ready."""
        return self.end_ns - self.submit_ns

    @property
    def engine_ns(self) -> int:
        """Time inside the engine."""
        return self.engine_end_ns - self.engine_start_ns


class RunObserver(Protocol):
    """Receives one event per query."""

    def on_run(self, event: RunEvent) -> None:
        """Called on the running thread after each query; must be quick and must not raise."""
        ...


_OBSERVERS: list[RunObserver] = []
_LOCK = threading.Lock()


def observers() -> list[RunObserver]:
    """The current observers (a snapshot: registration replaces the list, never mutates it)."""
    return _OBSERVERS


def add_observer(observer: RunObserver) -> None:
    """Start sending events to ``observer``."""
    global _OBSERVERS
    with _LOCK:
        # Copy-on-write: a run iterating the old list is not disturbed.
        _OBSERVERS = [*_OBSERVERS, observer]


def remove_observer(observer: RunObserver) -> None:
    """Stop sending events to ``observer`` (no error if it was not registered)."""
    global _OBSERVERS
    with _LOCK:
        _OBSERVERS = [o for o in _OBSERVERS if o is not observer]


# -- session hooks (the profiler's operator mode) ----------------------------------------------------
_SESSION_HOOKS: list[Callable[[Any], None]] = []


def add_session_hook(hook: Callable[[Any], None]) -> None:
    """Call ``hook(session)`` for every Session created from now on, once its instances exist.

    The hook may replace entries of ``session.instances`` (the profiler wraps them to collect
    onnxruntime per-node events). Costs nothing per run.
    """
    global _SESSION_HOOKS
    with _LOCK:
        _SESSION_HOOKS = [*_SESSION_HOOKS, hook]


def remove_session_hook(hook: Callable[[Any], None]) -> None:
    """Stop calling ``hook`` (no error if it was not registered)."""
    global _SESSION_HOOKS
    with _LOCK:
        _SESSION_HOOKS = [h for h in _SESSION_HOOKS if h != hook]  # == : bound methods


def start_env_profiler() -> None:
    """Start the process-wide profiler when ``$NNPERF_PROFILER_OUTPUT_PATH`` is set.

    Called at Session creation; imports the profiler only when the variable is set, so the
    runtime keeps its layering (no pandas, no profiler code) in ordinary use.
    """
    if os.environ.get(PROFILER_OUTPUT_ENV):
        from nnperf.profiler import recorder

        recorder.start_env_profiler()
