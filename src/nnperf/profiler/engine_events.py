"""Engine operator events in the profiler: collection on a profiling twin, and classes.

An engine that implements :class:`~nnperf.engines.base.SupportsOperatorProfiling` loads a
*profiling* instance that records per-operator events (onnxruntime's profiler; OpenVINO's
``PERF_COUNT``). Recording costs time on every run and, on onnxruntime, grows an event file until
the profile is ended, so nnperf wraps each engine instance of a Session under
``profile(operators=True)`` in a :class:`ProfilingInstance` that holds two instances: the plain one
the Session built and the profiling twin. Runs go to the twin while the profiler collects (not
paused, and fewer than ``max_runs`` runs in the current block); otherwise to the plain one. At the
end of each ``record`` block the twin's events are collected (onnxruntime: its profile ended,
parsed, deleted and a fresh twin started).

Classes (what "external" means here): Furiosa's profiler calls the host-side work around an NPU
program *external operators* (Quantize, Lower, Unlower, Dequantize). On a CPU everything runs on
the same cores, so nnperf's *external* class is the operators that do the same job — layout and
precision conversion, not the model's arithmetic: ``QuantizeLinear``, ``DequantizeLinear``,
``Cast``, ``Transpose``, ``Pad``, ``Slice``, onnxruntime's NCHWc ``ReorderInput`` (Lower) /
``ReorderOutput`` (Unlower), and OpenVINO's ``Reorder``, ``Convert`` and ``FakeQuantize``. *copy*
is ``Memcpy*`` (host↔device transfers on GPU providers). Everything else is *compute*.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

import numpy as np

from nnperf.engines.base import (
    EngineInstance,
    NodePlacement,
    OperatorEvent,
    SupportsOperatorProfiling,
)
from nnperf.engines.base import ProfilingInstance as ProfilingEngineInstance
from nnperf.types import TensorDesc

__all__ = [
    "EXTERNAL_ALIASES",
    "OpClass",
    "OperatorEvent",
    "ProfilingInstance",
    "classify",
    "op_alias",
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
    # OpenVINO's runtime graph
    "Reorder": "Reorder",
    "Convert": "Cast",
    "FakeQuantize": "Quantize",
}


def classify(op_type: str) -> OpClass:
    """Class of an engine op type (``"Conv"`` → compute, ``"ReorderInput"`` → external)."""
    if op_type in EXTERNAL_ALIASES:
        return OpClass.EXTERNAL
    if op_type.startswith("Memcpy"):
        return OpClass.COPY
    return OpClass.COMPUTE


def op_alias(op_type: str) -> str:
    """Furiosa's name for an external operator (``QuantizeLinear`` → ``Quantize``), else op_type."""
    return EXTERNAL_ALIASES.get(op_type, op_type)


class ProfilingInstance:
    """An engine instance that can route runs to a profiling twin.

    Implements the :class:`~nnperf.engines.base.EngineInstance` protocol by delegation. Built by
    the profiler's session watcher; you do not create one yourself.

    Args:
        session: the Session whose instance ``index`` is wrapped (its engine, which supports
            operator profiling, its model and config build the twin).
        index: instance index.
        workdir: where the engine may write profile files (a temporary directory).
        max_runs: profiled runs per block; later runs go to the plain instance.
    """

    def __init__(self, session: Any, index: int, *, workdir: str, max_runs: int) -> None:
        self.plain: EngineInstance = session.instances[index]
        self.index = index
        self.session_id = id(session)
        self._session = session
        self._workdir = workdir
        self.max_runs = max_runs
        self._profiling: ProfilingEngineInstance | None = None
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

    @property
    def load_info(self) -> Mapping[str, Any]:
        return self.plain.load_info

    def _target(self) -> EngineInstance:
        prof = self._profiling
        if prof is not None and self._collecting:
            if self._runs < self.max_runs:
                self._runs += 1
                return prof
            self.dropped_runs += 1
        return self.plain

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self._target().run(feeds)

    def run_outputs(
        self, names: Sequence[str], feeds: Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        return self._target().run_outputs(names, feeds)

    def placement(self) -> list[NodePlacement]:
        return self.plain.placement()

    def close(self) -> None:
        self.closed = True
        self._collecting = False
        self.leftover.extend(self.stop())
        self.plain.close()

    # -- profiling control ------------------------------------------------------------------------
    @property
    def profiled_runs(self) -> int:
        """Runs routed to the profiling twin since it was started or last rotated."""
        return self._runs

    def set_collecting(self, on: bool) -> None:
        """Route runs to the profiling twin (``True``) or the plain instance."""
        self._collecting = on

    def start(self) -> None:
        """Load the profiling twin (one engine load; call outside measured code)."""
        with self._lock:
            if self._profiling is not None or self.closed:
                return
            s = self._session
            engine = s.engine
            assert isinstance(engine, SupportsOperatorProfiling)  # checked by the profiler
            spec = s.device.instances[self.index]
            self._profiling = engine.load_profiling(s.model, s.config, spec, workdir=self._workdir)
            self._runs = 0

    def stop(self) -> list[OperatorEvent]:
        """Collect the twin's events and release it."""
        with self._lock:
            prof, self._profiling = self._profiling, None
        if prof is None:
            return []
        try:
            return prof.collect()
        finally:
            prof.close()

    def rotate(self) -> list[OperatorEvent]:
        """The events recorded since the last rotation; the twin records afresh."""
        events = [*self.leftover]
        self.leftover.clear()
        with self._lock:
            prof = self._profiling
            self._runs = 0
        if prof is not None:
            events.extend(prof.collect())
        else:
            self.start()
        return events
