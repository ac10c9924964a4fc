"""Run observers: how the profiler, ``bench`` and ``serve`` watch the runtime.

Every runtime object owns its :class:`Observers` (a Session's; a Runner, batcher or queue reports
through its Session's; a Pipeline's stage sessions share the pipeline's), so what one benchmark
attaches never sees another object's runs. While a list is empty a run takes its fast path and
pays nothing more. An observer receives a :class:`RunEvent` after each run, on the thread that ran
it.

Process-wide tools (``nnperf.profile()``, ``$NNPERF_PROFILER_OUTPUT_PATH``) attach to every
Session through a *session watcher*: :func:`watch_sessions` calls it for each Session alive now
and each one created later, until :func:`unwatch_sessions`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from nnperf.runtime.session import Session

__all__ = [
    "PROFILER_OUTPUT_ENV",
    "Observers",
    "RunEvent",
    "RunObserver",
    "SessionWatcher",
    "live_sessions",
    "unwatch_sessions",
    "watch_sessions",
]

PROFILER_OUTPUT_ENV = "NNPERF_PROFILER_OUTPUT_PATH"


@dataclass(frozen=True)
class RunEvent:
    """Timestamps (``time.perf_counter_ns``) of one query through the runtime.

    Attributes:
        session_id: which Session ran it (``id`` of the Session).
        instance: index of the engine instance that ran it (a pipeline: the stage).
        thread_id: ``threading.get_ident()`` of the thread that ran the engine.
        batch: rows in the query (leading dim of the first input, 1 for scalars).
        submit_ns: when the caller handed the query in (Runner: before queueing).
        start_ns: when validation began on the running thread (queue wait = start - submit).
        engine_start_ns / engine_end_ns: the engine call.
        end_ns: when outputs were ready for the caller.
        error: the exception's type name when the query failed, else ``None``.
        queued_ns: Runner only: when the validated query entered the queue (validation =
            queued - submit, queue wait = start - queued); ``None`` for a Session run.
        stage: a pipeline's stage index (the run is one stage of a query), else ``None``.
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
    stage: int | None = None

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


class Observers:
    """The observers of one runtime object: a copy-on-write tuple, so a run iterating it is never
    disturbed by an ``add`` or ``remove`` on another thread. Falsy while empty (the fast path's
    one check). Adding an observer twice keeps one.

    Attributes:
        items: the observers attached now (a tuple; hot paths read it directly, nothing assigns
            it but :meth:`add` and :meth:`remove`).
    """

    __slots__ = ("_lock", "items")

    def __init__(self) -> None:
        self.items: tuple[RunObserver, ...] = ()
        self._lock = threading.Lock()

    def add(self, observer: RunObserver) -> None:
        """Start sending events to ``observer``."""
        with self._lock:
            if not any(o is observer for o in self.items):
                self.items = (*self.items, observer)

    def remove(self, observer: RunObserver) -> None:
        """Stop sending events to ``observer`` (no error if it was not attached)."""
        with self._lock:
            self.items = tuple(o for o in self.items if o is not observer)

    def emit(self, event: RunEvent) -> None:
        """Send ``event`` to every observer attached now."""
        for o in self.items:
            o.on_run(event)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[RunObserver]:
        return iter(self.items)

    def __contains__(self, observer: object) -> bool:
        return any(o is observer for o in self.items)


SessionWatcher = Callable[["Session"], None]
"""Called with a Session once its instances exist (the profiler attaches itself this way)."""

_WATCHERS: tuple[SessionWatcher, ...] = ()
_LIVE: weakref.WeakSet[Session] = weakref.WeakSet()
_LOCK = threading.Lock()


def watch_sessions(watcher: SessionWatcher, *, existing: bool = True) -> None:
    """Call ``watcher(session)`` for every Session created from now on, and (``existing``) for
    every Session alive now."""
    global _WATCHERS
    with _LOCK:
        _WATCHERS = (*_WATCHERS, watcher)
        alive = list(_LIVE) if existing else []
    for session in alive:
        watcher(session)


def unwatch_sessions(watcher: SessionWatcher) -> None:
    """Stop calling ``watcher`` (no error if it was not registered)."""
    global _WATCHERS
    with _LOCK:
        _WATCHERS = tuple(w for w in _WATCHERS if w != watcher)  # == : bound methods


def live_sessions() -> list[Session]:
    """Sessions not yet garbage-collected (closed ones included)."""
    with _LOCK:
        return list(_LIVE)


def session_created(session: Session) -> None:
    """Called by :class:`~nnperf.runtime.session.Session` once its instances exist."""
    with _LOCK:
        _LIVE.add(session)
        watchers = _WATCHERS
    for watcher in watchers:
        watcher(session)
