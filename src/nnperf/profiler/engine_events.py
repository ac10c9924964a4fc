"""onnxruntime per-node events: collection on a profiling instance, clock alignment, classes.

onnxruntime can only switch its profiler on when an ``InferenceSession`` is created, and its
in-memory event list (and JSON file) then grows with every run until ``end_profiling()``. nnperf
therefore wraps each engine instance of a Session created under ``profile(operators=True)`` in a
:class:`ProfilingInstance` that holds two sessions: the plain one the Session built and a
*profiling* one. Runs go to the profiling session while the profiler collects (not paused, and
fewer than ``max_runs`` runs in the current block); otherwise to the plain one, so the file stops
growing. At the end of each ``record`` block the profiling session is ended, its JSON parsed and
deleted, and a fresh profiling session is created for the next block.

Clock: onnxruntime's ``get_profiling_start_time_ns()`` is wall-clock time (``CLOCK_REALTIME``,
libstdc++'s ``high_resolution_clock``) and each event's ``ts`` is microseconds since that start.
Measured on Linux with onnxruntime 1.31: the value is ``time.time_ns()``-compatible, not
``time.perf_counter_ns()``-compatible. nnperf samples ``time.time_ns() - time.perf_counter_ns()``
when each profiling session starts and converts every event onto ``perf_counter_ns``, the clock
of the runtime's spans.

Classes (what "external" means here): Furiosa's profiler calls the host-side work around an NPU
program *external operators* (Quantize, Lower, Unlower, Dequantize). On the CPU execution provider
everything runs on the same cores, so nnperf's *external* class is the operators that do the same
job — layout and precision conversion, not the model's arithmetic: ``QuantizeLinear``,
``DequantizeLinear``, ``Cast``, ``Transpose``, ``Pad``, ``Slice`` and the NCHWc ``ReorderInput``
(Lower) / ``ReorderOutput`` (Unlower). *copy* is ``Memcpy*`` (host↔device transfers on GPU
providers). Everything else is *compute*.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from nnperf.types import TensorDesc

__all__ = [
    "EXTERNAL_ALIASES",
    "OpClass",
    "OperatorEvent",
    "ProfilingInstance",
    "classify",
    "clock_offset_ns",
    "op_alias",
    "read_ort_profile",
]


class OpClass(str, Enum):
    """What an operator's time is spent on."""

    COMPUTE = "compute"
    EXTERNAL = "external"
    COPY = "copy"

    def __str__(self) -> str:
        return self.value


#: External operator types and the name Furiosa's profiler gives the same job.
EXTERNAL_ALIASES: dict[str, str] = {
    "QuantizeLinear": "Quantize",
    "DequantizeLinear": "Dequantize",
    "ReorderInput": "Lower",
    "ReorderOutput": "Unlower",
    "Cast": "Cast",
    "Transpose": "Transpose",
    "Pad": "Pad",
    "Slice": "Slice",
}


def classify(op_type: str) -> OpClass:
    """Class of an onnxruntime op type (``"Conv"`` → compute, ``"ReorderInput"`` → external)."""
    if op_type in EXTERNAL_ALIASES:
        return OpClass.EXTERNAL
    if op_type.startswith("Memcpy"):
        return OpClass.COPY
    return OpClass.COMPUTE


def op_alias(op_type: str) -> str:
    """Furiosa's name for an external operator (``QuantizeLinear`` → ``Quantize``), else op_type."""
    return EXTERNAL_ALIASES.get(op_type, op_type)


@dataclass(frozen=True)
class OperatorEvent:
    """One node execution from onnxruntime's profiler, on the ``perf_counter_ns`` clock.

    Attributes:
        name: node name in the optimised graph (``relu1_nchwc``).
        op_type: onnxruntime op type (``Conv``, ``ReorderOutput``, ``QuantizeLinear``).
        provider: execution provider that ran it.
        start_ns / dur_ns: start (perf_counter_ns) and duration, ns (onnxruntime gives µs).
        os_thread_id: native id of the thread that ran the node (the caller of ``run``).
        input_shapes / output_shapes: ``dtype[d0,d1,...]`` strings, one per tensor.
        input_dtypes: element type of each input (``float``, ``int8``...).
    """

    name: str
    op_type: str
    provider: str
    start_ns: int
    dur_ns: int
    os_thread_id: int
    input_shapes: tuple[str, ...]
    output_shapes: tuple[str, ...]
    input_dtypes: tuple[str, ...] = ()

    @property
    def end_ns(self) -> int:
        """End of the node (perf_counter_ns)."""
        return self.start_ns + self.dur_ns

    @property
    def op_class(self) -> OpClass:
        """compute / external / copy."""
        return classify(self.op_type)


def clock_offset_ns(samples: int = 5) -> int:
    """``time.time_ns() - time.perf_counter_ns()``, from the tightest of ``samples`` readings."""
    best_gap = None
    best = 0
    for _ in range(samples):
        a = time.perf_counter_ns()
        w = time.time_ns()
        b = time.perf_counter_ns()
        if best_gap is None or b - a < best_gap:
            best_gap = b - a
            best = w - (a + b) // 2
    return best


def _shapes(items: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    shapes: list[str] = []
    dtypes: list[str] = []
    for item in items or []:
        if isinstance(item, Mapping):
            for dtype, dims in item.items():
                shapes.append(f"{dtype}[{','.join(str(d) for d in dims)}]")
                dtypes.append(str(dtype))
    return tuple(shapes), tuple(dtypes)


def read_ort_profile(path: str, *, origin_ns: int) -> list[OperatorEvent]:
    """Parse onnxruntime's profile JSON into node events on the ``perf_counter_ns`` clock.

    Args:
        path: the file ``end_profiling()`` returned.
        origin_ns: the profiling start on the perf_counter_ns clock
            (``get_profiling_start_time_ns() - clock_offset_ns()``).
    """
    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    events = raw["traceEvents"] if isinstance(raw, Mapping) else raw
    out: list[OperatorEvent] = []
    for ev in events:
        if ev.get("cat") != "Node":
            continue
        name = str(ev.get("name", ""))
        if not name.endswith("_kernel_time"):
            continue  # fence_before / fence_after markers
        args = ev.get("args", {})
        in_shapes, in_dtypes = _shapes(args.get("input_type_shape"))
        out_shapes, _ = _shapes(args.get("output_type_shape"))
        out.append(
            OperatorEvent(
                name=name[: -len("_kernel_time")],
                op_type=str(args.get("op_name", "?")),
                provider=str(args.get("provider", "?")),
                start_ns=origin_ns + int(ev["ts"]) * 1000,
                dur_ns=int(ev["dur"]) * 1000,
                os_thread_id=int(ev.get("tid", 0)),
                input_shapes=in_shapes,
                output_shapes=out_shapes,
                input_dtypes=in_dtypes,
            )
        )
    return out


class ProfilingInstance:
    """An engine instance that can route runs to an onnxruntime *profiling* twin.

    Implements the :class:`~nnperf.engines.base.EngineInstance` protocol by delegation. Built by
    the profiler's session hook; you do not create one yourself.

    Args:
        session: the Session whose instance ``index`` is wrapped (its engine, model and config
            build the profiling twin).
        index: instance index.
        prefix: file prefix for onnxruntime's JSON (a temporary directory of the profiler).
        max_runs: profiled runs per block; later runs go to the plain instance.
    """

    def __init__(self, session: Any, index: int, *, prefix: str, max_runs: int) -> None:
        self.plain: Any = session.instances[index]
        self.index = index
        self.session_id = id(session)
        self._session = session
        self._prefix = prefix
        self.max_runs = max_runs
        self._profiling: Any = None
        self._origin_ns = 0
        self._runs = 0
        self._collecting = False
        self._lock = threading.Lock()
        self.dropped_runs = 0
        self.closed = False
        #: Events of a twin ended by ``close()`` (the Session closed while profiling).
        self.leftover: list[OperatorEvent] = []

    # -- EngineInstance protocol ------------------------------------------------------------------
    @property
    def inputs(self) -> tuple[TensorDesc, ...]:
        return tuple(self.plain.inputs)

    @property
    def outputs(self) -> tuple[TensorDesc, ...]:
        return tuple(self.plain.outputs)

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(self.plain.providers)

    def _target(self) -> Any:
        prof = self._profiling
        if prof is not None and self._collecting:
            if self._runs < self.max_runs:
                self._runs += 1
                return prof
            self.dropped_runs += 1
        return self.plain

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        result: list[np.ndarray] = self._target().run(feeds)
        return result

    def run_outputs(
        self, names: Sequence[str], feeds: Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        result: list[np.ndarray] = self._target().run_outputs(names, feeds)
        return result

    def placement(self) -> dict[str, str]:
        result: dict[str, str] = self.plain.placement()
        return result

    def close(self) -> None:
        self.closed = True
        self._collecting = False
        self.leftover.extend(self.stop())
        self.plain.close()

    # -- profiling control ------------------------------------------------------------------------
    def set_collecting(self, on: bool) -> None:
        """Route runs to the profiling twin (``True``) or the plain instance."""
        self._collecting = on

    def start(self) -> None:
        """Create a fresh profiling twin (one session load; call outside measured code)."""
        with self._lock:
            if self._profiling is not None or self.closed:
                return
            s = self._session
            spec = s.device.instances[self.index]
            prof = s.engine.load(s.model, s.config, spec, profile_prefix=self._prefix)
            self._origin_ns = int(prof.profiling_start_ns()) - clock_offset_ns()
            self._runs = 0
            self._profiling = prof

    def stop(self) -> list[OperatorEvent]:
        """End the profiling twin, read and delete its JSON; return its node events."""
        with self._lock:
            prof, self._profiling = self._profiling, None
            if prof is None:
                return []
            path = prof.end_profiling()
            prof.close()
            try:
                return read_ort_profile(path, origin_ns=self._origin_ns)
            finally:
                with contextlib.suppress(OSError):
                    os.remove(path)

    def rotate(self) -> list[OperatorEvent]:
        """End the current twin (returning its events) and start a fresh one."""
        events = [*self.leftover, *self.stop()]
        self.leftover.clear()
        self.start()
        return events
