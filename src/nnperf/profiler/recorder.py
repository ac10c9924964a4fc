"""The span recorder behind :func:`nnperf.profiler.profile`.

A :class:`Profiler` attaches itself as a run observer to every Session (alive when it starts, or
created while it runs; see :mod:`nnperf.runtime.observers`); each query run by a Session, Runner,
batcher or pipeline while it is active becomes an ``Inference`` span with children (``Validation``,
``QueueWait`` for Runner queries, ``EngineRun``, ``OutputHandling``), nested under the innermost
open ``record(name)`` block. The observer only appends a tuple per query; spans, ids and operator
attachment are built when asked for (``spans()``, tables, export), so the measured runs stay cheap.

With ``operators=True``, Sessions whose engine supports operator profiling get a profiling twin
per instance (see :mod:`nnperf.profiler.engine_events`); operator events are attached to the
inference whose ``EngineRun`` contains them, on the same clock.
"""

from __future__ import annotations

import atexit
import bisect
import csv
import itertools
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal

from nnperf.engines.base import SupportsOperatorProfiling
from nnperf.errors import InvalidInputError
from nnperf.profiler.engine_events import OperatorEvent, ProfilingInstance, classify, op_alias
from nnperf.runtime import observers as runtime_observers
from nnperf.runtime.observers import RunEvent

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COLUMNS",
    "OPERATORS_ENV",
    "ROOT_SPAN_ID",
    "Profiler",
    "Span",
    "profile",
    "start_env_profiler",
    "write_csv",
]

ROOT_SPAN_ID = "0000000000000000"

#: Columns of :meth:`Profiler.dataframe` and the CSV export, in order. ``start``/``end``/``dur``
#: are ns (perf_counter_ns).
COLUMNS = (
    "trace_id",  # 32 hex, one per inference (and one per record block)
    "parent_span_id",  # 16 hex; "0000000000000000" at the root
    "span_id",  # 16 hex
    "start",  # ns, time.perf_counter_ns
    "end",  # ns
    "dur",  # ns, end - start
    "cat",  # Record | Runtime | Engine | Operator
    "name",  # Inference, Validation, QueueWait, EngineRun, OutputHandling, block label, node name
    "thread.id",  # OS thread id
    "session",  # Session ordinal (Int64, null for blocks)
    "instance",  # engine instance index (Int64)
    "batch",  # rows in the query (Inference rows)
    "op_type",  # operators: engine op type (Conv, QuantizeLinear, ReorderInput...)
    "op_class",  # operators: compute | external | copy
    "op_alias",  # operators: Furiosa name for external ops (Quantize, Lower, Unlower, Dequantize)
    "provider",  # operators: execution provider
    "operator_index",  # operators: position within the inference (Int64)
    "input_shapes",  # operators: "dtype[d0,d1];..."
    "output_shapes",
    "error",  # Inference rows of failed queries: exception type name
    "resolution_ns",  # operators: the engine's clock resolution in ns (onnxruntime 1000)
    "synthetic_start",  # operators: start laid out from durations (OpenVINO), not measured
)
OPERATORS_ENV = "NNPERF_PROFILER_OPERATORS"
#: Tolerance when placing a node inside its EngineRun: onnxruntime truncates ``ts``/``dur`` to µs.
ATTACH_TOLERANCE_NS = 2_000

Format = Literal["chrome", "pandas"]


@dataclass(frozen=True)
class Span:
    """One timed interval of a profile (all times ``time.perf_counter_ns``, ns).

    Attributes:
        trace_id: 32 hex digits: one trace per inference (the Inference span, its children and
            its operators share it; Furiosa's ``groupby("trace_id")`` gives one group per
            inference); each ``record()`` block is a trace of its own.
        span_id: 16 hex digits.
        parent_span_id: the enclosing span, ``"0000000000000000"`` at the root.
        start_ns / end_ns: interval; ``dur_ns`` = end - start.
        cat: ``Record`` (a ``record()`` block), ``Runtime`` (Inference and its host-side
            children), ``Engine`` (EngineRun), ``Operator`` (an engine operator).
        name: ``Inference``, ``Validation``, ``QueueWait``, ``EngineRun``, ``OutputHandling``, a
            block's label, or the node name for operators.
        thread_id: native (OS) id of the thread (for operators: the thread that ran the node).
        session: ordinal of the Session (0, 1, ... in order of first query), ``None`` for blocks.
        instance: engine instance index, ``None`` for blocks.
        batch: rows in the query (Inference only).
        op_type / op_class / op_alias / provider: operators only (``Conv``, ``external``,
            ``Lower``, ``CPUExecutionProvider``).
        operator_index: position of the node within its inference (operators only).
        input_shapes / output_shapes: ``dtype[d0,d1]`` strings joined by ``;`` (operators only).
        error: exception type name of a failed query (Inference only).
        resolution_ns: operators: the engine's clock resolution (onnxruntime: 1000).
        synthetic_start: operators: the engine reported durations only and ``start_ns`` lays
            the operators out one after another (OpenVINO); not a measured instant.
    """

    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    end_ns: int
    cat: str
    name: str
    thread_id: int
    session: int | None = None
    instance: int | None = None
    batch: int | None = None
    op_type: str | None = None
    op_class: str | None = None
    op_alias: str | None = None
    provider: str | None = None
    operator_index: int | None = None
    input_shapes: str | None = None
    output_shapes: str | None = None
    error: str | None = None
    resolution_ns: int | None = None
    synthetic_start: bool | None = None

    @property
    def dur_ns(self) -> int:
        """Duration in ns."""
        return self.end_ns - self.start_ns

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (adds ``dur_ns``)."""
        d = asdict(self)
        d["dur_ns"] = self.dur_ns
        return d

    def to_row(self) -> dict[str, Any]:
        """One row of :meth:`Profiler.dataframe`, keyed by :data:`COLUMNS`."""
        return {
            "trace_id": self.trace_id,
            "parent_span_id": self.parent_span_id,
            "span_id": self.span_id,
            "start": self.start_ns,
            "end": self.end_ns,
            "dur": self.end_ns - self.start_ns,
            "cat": self.cat,
            "name": self.name,
            "thread.id": self.thread_id,
            "session": self.session,
            "instance": self.instance,
            "batch": self.batch,
            "op_type": self.op_type,
            "op_class": self.op_class,
            "op_alias": self.op_alias,
            "provider": self.provider,
            "operator_index": self.operator_index,
            "input_shapes": self.input_shapes,
            "output_shapes": self.output_shapes,
            "error": self.error,
            "resolution_ns": self.resolution_ns,
            "synthetic_start": self.synthetic_start,
        }


def write_csv(spans: Sequence[Span], file: str | os.PathLike[str] | IO[str]) -> None:
    """The dataframe's CSV (``to_csv(index=False)``'s layout) with the standard library only.

    The env-var profiler writes at interpreter exit, when importing pandas is no longer possible
    (it registers atexit hooks of its own), so the CSV must not need it.
    """

    def write(fh: IO[str]) -> None:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(s.to_row() for s in spans)

    if isinstance(file, (str, os.PathLike)):
        with open(file, "w", encoding="utf-8", newline="") as fh:
            write(fh)
    else:
        write(file)


@dataclass
class _Block:
    name: str
    start_ns: int
    parent: int
    thread_id: int
    end_ns: int = 0


@dataclass
class _Track:
    """Operator events collected from one wrapped engine instance."""

    proxy: ProfilingInstance
    model: str
    events: list[OperatorEvent] = field(default_factory=list)


class Profiler:
    """Records spans of every query run while active. Build one with :func:`profile`.

    Use as a context manager; ``record(name)`` opens nested blocks, ``pause()``/``resume()`` stop
    and restart recording (idempotent; a block opened while paused leaves no row).
    """

    def __init__(
        self,
        *,
        file: str | os.PathLike[str] | IO[str] | None = None,
        format: Format = "chrome",
        operators: bool = False,
        max_operator_runs: int = 1000,
        max_inferences: int = 1_000_000,
    ) -> None:
        if format not in ("chrome", "pandas"):
            raise InvalidInputError(
                f"profile format: got {format!r}, expected 'chrome' (trace-event JSON) or "
                "'pandas' (CSV of dataframe())"
            )
        if max_operator_runs < 1 or max_inferences < 1:
            raise InvalidInputError(
                f"max_operator_runs={max_operator_runs}, max_inferences={max_inferences}: "
                "expected positive integers"
            )
        self.file = file
        self.format: Format = format
        self.operators = operators
        self.max_operator_runs = max_operator_runs
        self.max_inferences = max_inferences
        #: 32 hex digits naming this profile (traces are per inference; see :class:`Span`).
        self.profile_id = secrets.token_hex(16)
        self.dropped_inferences = 0
        self._runs: list[tuple[RunEvent, int, int]] = []
        self._blocks: list[_Block] = []
        self._stack: list[int] = []
        self._thread_names: dict[int, str] = {}
        self._tracks: list[_Track] = []
        self._paused = False
        self._active = False
        self._tmpdir: str | None = None
        self._spans: list[Span] | None = None
        self.start_ns = 0
        self.end_ns = 0
        self.unattached_operators = 0
        self._watched: list[Any] = []
        self._span_only = 0  # open record(operators=False) blocks
        #: What operator recording costs on the engine that ran (set once a twin exists).
        self.operator_cost = ""

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> Profiler:
        """Begin recording (what ``__enter__`` does)."""
        if self._active:
            return self
        self._active = True
        self.start_ns = time.perf_counter_ns()
        if self.operators:
            self._tmpdir = tempfile.mkdtemp(prefix="nnperf-opprof-")
        runtime_observers.watch_sessions(self._attach)
        return self

    @property
    def active(self) -> bool:
        """Whether the profiler is recording (between start and stop)."""
        return self._active

    def stop(self) -> None:
        """Stop recording, collect operator events and write ``file`` if one was given."""
        if not self._active:
            return
        self._active = False
        self.end_ns = time.perf_counter_ns()
        runtime_observers.unwatch_sessions(self._attach)
        for watched in self._watched:
            watched.observers.remove(self)
        self._watched = []
        if self.operators:
            for track in self._tracks:
                track.proxy.set_collecting(False)
                track.events.extend(track.proxy.leftover)
                track.proxy.leftover.clear()
                track.events.extend(track.proxy.stop())
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
        for b in self._blocks:  # blocks left open by an exception elsewhere
            if b.end_ns == 0:
                b.end_ns = self.end_ns
        self._spans = None
        if self.file is not None:
            self.export(self.file)

    def __enter__(self) -> Profiler:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- observer ---------------------------------------------------------------------------------
    def on_run(self, event: RunEvent) -> None:
        """Run observer: keep the event (called by the runtime on the running thread)."""
        if self._paused:
            return
        if len(self._runs) >= self.max_inferences:
            self.dropped_inferences += 1
            return
        tid = threading.get_native_id()
        if tid not in self._thread_names:
            self._thread_names[tid] = threading.current_thread().name
        stack = self._stack
        self._runs.append((event, tid, stack[-1] if stack else -1))

    def _attach(self, session: Any) -> None:
        """Session watcher: observe ``session``; in operator mode, give each of its instances a
        profiling twin when its engine supports operator profiling."""
        session.observers.add(self)
        self._watched.append(session)
        if not self.operators or not isinstance(session.engine, SupportsOperatorProfiling):
            return
        if any(isinstance(i, ProfilingInstance) for i in session.instances):
            return  # already wrapped (by an earlier profiler)
        self.operator_cost = session.engine.profiling_cost()
        assert self._tmpdir is not None
        for index in range(len(session.instances)):
            proxy = ProfilingInstance(
                session, index, workdir=self._tmpdir, max_runs=self.max_operator_runs
            )
            proxy.start()
            proxy.set_collecting(self._collecting())
            session.instances[index] = proxy
            self._tracks.append(_Track(proxy=proxy, model=str(session.model.name)))

    # -- blocks -----------------------------------------------------------------------------------
    @contextmanager
    def record(self, name: str, *, operators: bool | None = None) -> Iterator[None]:
        """A named block; queries run inside become its children (nested blocks nest).

        Args:
            name: the block's label.
            operators: ``False`` runs the block's queries on the plain engine instances (span
                mode: no operator recording, so their latency is the latency of record);
                ``None`` (default) keeps the profiler's mode.

        With operators on, each block that ran profiled queries collects its profiling twins'
        events at its end (onnxruntime: ends its profiling session, so files stay bounded) and
        starts a fresh one, outside the block's own interval.
        """
        if self._paused or not self._active:
            yield
            return
        index = len(self._blocks)
        parent = self._stack[-1] if self._stack else -1
        span_only = operators is False and self.operators
        if span_only:
            self._span_only += 1
            for track in self._tracks:
                track.proxy.set_collecting(False)
        block = _Block(name, time.perf_counter_ns(), parent, threading.get_native_id())
        self._blocks.append(block)
        self._stack = [*self._stack, index]
        try:
            yield
        finally:
            block.end_ns = time.perf_counter_ns()
            self._stack = [i for i in self._stack if i != index]
            self._spans = None
            if span_only:
                self._span_only -= 1
            if self.operators and self._active:
                for track in self._tracks:
                    if track.proxy.profiled_runs:
                        track.events.extend(track.proxy.rotate())
                    track.proxy.set_collecting(self._collecting() and not track.proxy.closed)

    def _collecting(self) -> bool:
        return self._active and not self._paused and self._span_only == 0

    def pause(self) -> None:
        """Stop recording queries until :meth:`resume` (idempotent)."""
        self._paused = True
        for track in self._tracks:
            track.proxy.set_collecting(False)

    def resume(self) -> None:
        """Record again after :meth:`pause` (idempotent)."""
        self._paused = False
        for track in self._tracks:
            track.proxy.set_collecting(self._collecting())

    @property
    def paused(self) -> bool:
        """Whether recording is paused."""
        return self._paused

    # -- spans ------------------------------------------------------------------------------------
    def spans(self) -> list[Span]:
        """Every span recorded so far: blocks, inferences and their children, operators."""
        if self._spans is None or self._active:
            self._spans = self._build()
        return self._spans

    def _build(self) -> list[Span]:
        base = int.from_bytes(secrets.token_bytes(8), "big") | 1
        counter = itertools.count()
        trace_base = int.from_bytes(secrets.token_bytes(16), "big") | 1
        trace_counter = itertools.count()

        def new_id() -> str:
            return f"{(base + next(counter) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF or 1:016x}"

        def new_trace() -> str:
            step = 0x9E3779B97F4A7C15F39CC0605CEDC835
            value = (trace_base + next(trace_counter) * step) & ((1 << 128) - 1)
            return f"{value or 1:032x}"

        spans: list[Span] = []
        block_ids: list[str] = []
        for b in self._blocks:
            sid = new_id()
            block_ids.append(sid)
            parent = block_ids[b.parent] if b.parent >= 0 else ROOT_SPAN_ID
            end = b.end_ns or time.perf_counter_ns()
            spans.append(
                Span(new_trace(), sid, parent, b.start_ns, end, "Record", b.name, b.thread_id)
            )

        sessions: dict[int, int] = {}
        engine_index: dict[tuple[int, int, int], list[tuple[int, int, str, int, str]]] = {}
        runs = list(self._runs)
        for ev, tid, block in runs:
            sess = sessions.setdefault(ev.session_id, len(sessions))
            trace = new_trace()
            inf_id = new_id()
            parent = block_ids[block] if block >= 0 else ROOT_SPAN_ID
            spans.append(
                Span(
                    trace, inf_id, parent, ev.submit_ns, ev.end_ns, "Runtime", "Inference", tid,
                    session=sess, instance=ev.instance, batch=ev.batch, error=ev.error,
                )
            )  # fmt: skip
            children: list[tuple[str, str, int, int]] = []
            if ev.queued_ns is not None:
                children.append(("Runtime", "Validation", ev.submit_ns, ev.queued_ns))
                children.append(("Runtime", "QueueWait", ev.queued_ns, ev.start_ns))
            elif ev.start_ns > ev.submit_ns:
                children.append(("Runtime", "QueueWait", ev.submit_ns, ev.start_ns))
            if ev.engine_start_ns > ev.start_ns:
                children.append(("Runtime", "Validation", ev.start_ns, ev.engine_start_ns))
            children.append(("Engine", "EngineRun", ev.engine_start_ns, ev.engine_end_ns))
            if ev.end_ns > ev.engine_end_ns:
                children.append(("Runtime", "OutputHandling", ev.engine_end_ns, ev.end_ns))
            for cat, name, start, end in children:
                sid = new_id()
                spans.append(
                    Span(trace, sid, inf_id, start, end, cat, name, tid,
                         session=sess, instance=ev.instance)
                )  # fmt: skip
                if name == "EngineRun":
                    key = (ev.session_id, ev.instance, tid)
                    engine_index.setdefault(key, []).append((start, end, sid, sess, trace))
        for lst in engine_index.values():
            lst.sort()

        unattached = 0
        for track in self._tracks:
            proxy = track.proxy
            counts: dict[str, int] = {}
            for op in sorted(track.events, key=lambda o: o.start_ns):
                lst = engine_index.get((proxy.session_id, proxy.index, op.os_thread_id), [])
                hit = None
                if lst:
                    pos = bisect.bisect_right(lst, (op.start_ns + ATTACH_TOLERANCE_NS, 1 << 62)) - 1
                    if pos >= 0 and op.end_ns <= lst[pos][1] + ATTACH_TOLERANCE_NS:
                        hit = lst[pos]
                if hit is None:
                    unattached += 1
                    continue
                engine_start, engine_end, parent_id, sess, trace = hit
                # Clamp µs-truncation jitter so children nest inside their EngineRun.
                start = min(max(op.start_ns, engine_start), engine_end)
                end = max(min(op.end_ns, engine_end), start)
                index = counts.get(parent_id, 0)
                counts[parent_id] = index + 1
                spans.append(
                    Span(
                        trace, new_id(), parent_id, start, end, "Operator", op.name,
                        op.os_thread_id, session=sess, instance=proxy.index,
                        op_type=op.op_type, op_class=classify(op.op_type).value,
                        op_alias=op_alias(op.op_type), provider=op.provider,
                        operator_index=index, input_shapes=";".join(op.input_shapes),
                        output_shapes=";".join(op.output_shapes),
                        resolution_ns=op.resolution_ns, synthetic_start=op.synthetic_start,
                    )
                )  # fmt: skip
        self.unattached_operators = unattached
        return spans

    def operator_events(self) -> list[OperatorEvent]:
        """Raw engine operator events collected so far (perf_counter_ns clock)."""
        return [ev for t in self._tracks for ev in t.events]

    def thread_names(self) -> dict[int, str]:
        """Native thread id → Python thread name, for every thread that ran a query."""
        return dict(self._thread_names)

    def operator_tracks(self) -> list[tuple[int, int, str]]:
        """(session ordinal, instance, model name) of each wrapped engine instance."""
        sessions: dict[int, int] = {}
        for ev, _, _ in self._runs:
            sessions.setdefault(ev.session_id, len(sessions))
        return [
            (sessions.get(t.proxy.session_id, -1), t.proxy.index, t.model) for t in self._tracks
        ]

    # -- output -----------------------------------------------------------------------------------
    def export_chrome_trace(self, file: str | os.PathLike[str] | IO[str]) -> None:
        """Write a Chrome trace-event JSON (chrome://tracing, Perfetto)."""
        from nnperf.profiler.chrome import write_chrome_trace

        write_chrome_trace(self, file)

    def export(self, file: str | os.PathLike[str] | IO[str]) -> None:
        """Write the profile in this profiler's format (chrome JSON, or pandas CSV)."""
        if self.format == "chrome":
            self.export_chrome_trace(file)
        else:
            write_csv(self.spans(), file)

    def dataframe(self, cat: str | None = None) -> pd.DataFrame:
        """Every span as a pandas DataFrame (columns: :data:`nnperf.profiler.tables.COLUMNS`).

        Args:
            cat: keep only one category (``Record``, ``Runtime``, ``Engine``, ``Operator``).
        """
        from nnperf.profiler import tables

        return tables.dataframe(self.spans(), cat=cat)

    def get_pandas_dataframe(self) -> pd.DataFrame:
        """Furiosa's name for :meth:`dataframe`."""
        return self.dataframe()

    def summary_text(self) -> str:
        """The "Inference Results Summary" text."""
        from nnperf.profiler import tables

        return tables.summary_text(self.dataframe())

    def print_summary(self) -> None:
        """Print count, min, max, mean, median and 90/95/97/99/99.9 percentile latency (ns)."""
        print(self.summary_text())

    def print_inferences(self) -> None:
        """Print one row per inference: trace_id, span_id, thread.id, dur."""
        from nnperf.profiler import tables

        print(tables.inferences_table(self.dataframe()).to_text())

    def print_device_executions(self) -> None:
        """Print engine total, compute, external, copy and the rest (IO/wait) per inference, µs."""
        from nnperf.profiler import tables

        print(tables.device_executions_table(self.dataframe()).to_text())

    def print_operators(self) -> None:
        """Print mean and total µs (at the engine's resolution), count and share of engine time
        by op type (needs ``operators=True``)."""
        from nnperf.profiler import tables

        print(tables.operators_table(self.dataframe()).to_text())

    def print_external_operators(self) -> None:
        """Print every external operator execution (Quantize/Lower/Unlower/Dequantize...)."""
        from nnperf.profiler import tables

        print(tables.external_operators_table(self.dataframe()).to_text())


def profile(
    file: str | os.PathLike[str] | IO[str] | None = None,
    format: Format = "chrome",
    operators: bool = False,
    *,
    max_operator_runs: int = 1000,
    max_inferences: int = 1_000_000,
) -> Profiler:
    """Profile every nnperf query run inside the ``with`` block.

    Args:
        file: where to write the profile on exit (path or text file); ``None`` writes nothing
            (use the ``print_*`` tables, ``dataframe()`` or ``export_chrome_trace``).
        format: ``"chrome"`` (trace-event JSON, default) or ``"pandas"`` (CSV of ``dataframe()``).
        operators: also collect per-operator events (onnxruntime's profiler, OpenVINO's
            ``PERF_COUNT``) for every Session observed, through a profiling twin per instance
            (engines enable operator recording only when an instance is loaded). Default off.
        max_operator_runs: profiled runs per engine instance per ``record`` block (default 1000);
            later runs are timed as spans but not per node, which bounds onnxruntime's memory
            and file size on long runs.
        max_inferences: inferences kept in memory (default 1 000 000); later ones are counted
            in ``dropped_inferences``.

    Example:
        >>> with profile(file="trace.json") as prof:  # doctest: +SKIP
        ...     with prof.record("warm up"):
        ...         session.run(x)
    """
    return Profiler(
        file=file,
        format=format,
        operators=operators,
        max_operator_runs=max_operator_runs,
        max_inferences=max_inferences,
    )


_ENV_PROFILER: Profiler | None = None
_ENV_LOCK = threading.Lock()
#: Why ``$NNPERF_PROFILER_OUTPUT_PATH`` could not be honoured, once that was found (the package
#: root says it on stderr at import; the CLI then exits 2).
ENV_PROFILER_ERROR: InvalidInputError | None = None


def start_env_profiler() -> Profiler | None:
    """Start the process-wide profiler of ``$NNPERF_PROFILER_OUTPUT_PATH`` (once).

    Writes at interpreter exit: a ``.csv`` path gets the dataframe, anything else a Chrome
    trace. ``$NNPERF_PROFILER_OPERATORS=1`` adds engine operator events.

    Raises:
        InvalidInputError: the path cannot be written (checked now, not at exit).
    """
    global _ENV_PROFILER
    path = os.environ.get(runtime_observers.PROFILER_OUTPUT_ENV)
    if not path:
        return None
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.access(folder, os.W_OK | os.X_OK):
        global ENV_PROFILER_ERROR
        ENV_PROFILER_ERROR = InvalidInputError(
            f"{runtime_observers.PROFILER_OUTPUT_ENV}={path!r}: cannot write the profile there (a folder, or "
            f"{folder!r} is missing or not writable); expected a writable file path, or unset it"
        )
        raise ENV_PROFILER_ERROR
    with _ENV_LOCK:
        if _ENV_PROFILER is not None:
            return _ENV_PROFILER
        ops = os.environ.get(OPERATORS_ENV, "").lower() in ("1", "true", "yes", "on")
        fmt: Format = "pandas" if path.lower().endswith(".csv") else "chrome"
        prof = Profiler(file=path, format=fmt, operators=ops).start()
        _ENV_PROFILER = prof
        print(f"nnperf: writing profiler output into {path}", file=sys.stderr)
        atexit.register(prof.stop)
        return prof
