"""The engine protocol every runtime adapter implements, and its optional capabilities.

An :class:`Engine` turns a model and a :class:`~nnperf.engines.config.RunConfig` into
:class:`EngineInstance` objects, one per device instance. Instances run already validated feeds;
validation, batching and timing live above, in :mod:`nnperf.runtime`. Each engine owns an options
type (:class:`EngineOptions`) holding its own vocabulary (onnxruntime's graph level and providers,
OpenVINO's performance hint and cache directory), so nothing above ``engines/`` names it.

Optional capabilities are separate protocols an engine may also implement, checked with
``isinstance`` (they are ``runtime_checkable``), never by probing attributes:

* :class:`SupportsOperatorProfiling`: per-operator events for the profiler's operator mode;
* :class:`SupportsGraphDump`: the engine-optimised graph written to a file (offline dumps).

``tests/test_engine_contract.py`` is the suite every installed engine must pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np

from nnperf.device import InstanceSpec
from nnperf.errors import InvalidInputError
from nnperf.model import ModelBlob
from nnperf.types import TensorDesc

if TYPE_CHECKING:
    from nnperf.engines.config import RunConfig

_O = TypeVar("_O", bound="EngineOptions")

__all__ = [
    "Engine",
    "EngineInstance",
    "EngineOptions",
    "NodePlacement",
    "OperatorEvent",
    "ProfilingInstance",
    "SupportsGraphDump",
    "SupportsOperatorProfiling",
]


@dataclass(frozen=True)
class NodePlacement:
    """One node of the engine-optimised graph: what runs it and how.

    Attributes:
        node: node name in the optimised graph.
        op_type: operator type as the engine names it (``Conv``, ``FullyConnected``...).
        provider: what runs it (onnxruntime: the execution provider; OpenVINO: the device).
        kernel: the implementation the engine chose, where it says
            (OpenVINO: ``brgconv_avx512_amx_I8``); empty otherwise.
        precision: the precision the node runs in, where the engine says (``I8``, ``BF16``,
            ``FP32``); empty otherwise.
    """

    node: str
    op_type: str
    provider: str
    kernel: str = ""
    precision: str = ""


@dataclass(frozen=True)
class OperatorEvent:
    """One operator execution reported by an engine, on the ``perf_counter_ns`` clock.

    Attributes:
        name: node name in the optimised graph (``relu1_nchwc``).
        op_type: engine op type (``Conv``, ``ReorderOutput``, ``QuantizeLinear``).
        provider: what ran it (execution provider or device).
        start_ns / dur_ns: start (perf_counter_ns) and duration in ns.
        os_thread_id: native id of the thread that ran the node (0 when the engine does not say).
        input_shapes / output_shapes: ``dtype[d0,d1,...]`` strings, one per tensor.
        input_dtypes: element type of each input (``float``, ``int8``...).
        kernel: the implementation, where the engine says (OpenVINO's exec type).
        precision: the runtime precision, where the engine says.
        resolution_ns: the engine's clock resolution (onnxruntime reports µs: 1000).
        synthetic_start: the engine gave only durations; ``start_ns`` lays the operators out one
            after another from the start of the run, so it is not a measured instant.
    """

    name: str
    op_type: str
    provider: str
    start_ns: int
    dur_ns: int
    os_thread_id: int = 0
    input_shapes: tuple[str, ...] = ()
    output_shapes: tuple[str, ...] = ()
    input_dtypes: tuple[str, ...] = ()
    kernel: str = ""
    precision: str = ""
    resolution_ns: int = 1
    synthetic_start: bool = False

    @property
    def end_ns(self) -> int:
        """End of the node (perf_counter_ns)."""
        return self.start_ns + self.dur_ns


class EngineOptions:
    """Base of each engine's options type (a frozen dataclass with a ``to_dict``/``from_dict``).

    Subclasses set :attr:`engine` and validate in ``__post_init__``. :meth:`changes` lists the
    fields that differ from the defaults as short labels (``level=extended``), which the tuner and
    the reports print.
    """

    engine: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (enums as values, tuples as lists, mappings as dicts)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]  # subclasses are dataclasses
            out[f.name] = _jsonable(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls: type[_O], data: Mapping[str, Any]) -> _O:
        """Build from :meth:`to_dict`'s form; unknown keys are errors naming the valid ones."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(
                f"{cls.engine} options: got {type(data).__name__}, expected a JSON object"
            )
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidInputError(
                f"{cls.engine} options: unknown field(s) {unknown}; expected among {sorted(names)}"
            )
        return cls(**dict(data))

    def replace(self: _O, **changes: Any) -> _O:
        """A copy with some fields changed (validated again)."""
        names = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        unknown = sorted(set(changes) - names)
        if unknown:
            raise InvalidInputError(
                f"{self.engine} options have no field(s) {unknown}; expected among {sorted(names)}"
            )
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def changes(self) -> list[str]:
        """Short labels for the fields that differ from the defaults, e.g. ``["no-prepack"]``."""
        default = type(self)()
        out = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                out.append(self._label(f.name, value))
        return out

    def _label(self, name: str, value: Any) -> str:
        """How one non-default setting reads in a label (override for nicer names)."""
        if isinstance(value, bool):
            return name.replace("_", "-") if value else "no-" + name.replace("_", "-")
        return f"{name}={_jsonable(value)}"

    def complexity(self) -> int:
        """How many settings differ from the defaults (the tuner's tie-break: simpler wins)."""
        return len(self.changes())


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


@runtime_checkable
class EngineInstance(Protocol):
    """One loaded copy of a model on one device instance.

    ``run`` may be called from several threads at once; implementations make that safe.
    """

    @property
    def inputs(self) -> tuple[TensorDesc, ...]:
        """Model inputs (after any batch-size or shape override)."""
        ...

    @property
    def outputs(self) -> tuple[TensorDesc, ...]:
        """Model outputs."""
        ...

    @property
    def providers(self) -> tuple[str, ...]:
        """What runs the model, in priority order (execution providers, or devices)."""
        ...

    @property
    def load_info(self) -> Mapping[str, Any]:
        """What the engine reports about loading this instance, e.g. ``{"compile_ms": 41.2,
        "cache": "hit"}``; empty when it reports nothing."""
        ...

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run on validated feeds; return every output in :attr:`outputs` order."""
        ...

    def run_outputs(
        self, names: Sequence[str], feeds: Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        """Run and return only the named outputs, in the order given."""
        ...

    def placement(self) -> list[NodePlacement]:
        """Where and how each node of the engine-optimised graph runs."""
        ...

    def close(self) -> None:
        """Release the instance; further runs are errors."""
        ...


class Engine(Protocol):
    """A runtime that can load models."""

    name: str
    options_type: type[EngineOptions]

    @property
    def version(self) -> str:
        """The runtime's version string."""
        ...

    @property
    def platform(self) -> str:
        """The KServe v2 ``platform`` string of a model served on this engine."""
        ...

    def available_providers(self) -> tuple[str, ...]:
        """Providers (or devices) this installation can use."""
        ...

    def precisions(self, kind: str) -> tuple[str, ...]:
        """Inference precisions this engine offers on device kind ``kind``, ``"f32"`` first."""
        ...

    def load(self, model: ModelBlob, config: RunConfig, instance: InstanceSpec) -> EngineInstance:
        """Create one instance of ``model`` on ``instance`` configured by ``config``.

        Raises:
            ModelLoadError: the engine refused the model.
            UnsupportedError: the configuration asks for what this engine or build cannot do.
        """
        ...

    def variations(self, config: RunConfig) -> list[tuple[str, EngineOptions]]:
        """The tuner's secondary knobs: ``config``'s options with one setting moved off its
        default, for each setting worth measuring on ``config``'s device kind."""
        ...


@runtime_checkable
class ProfilingInstance(EngineInstance, Protocol):
    """An instance that records per-operator events while it runs."""

    def collect(self) -> list[OperatorEvent]:
        """Return (and forget) the operator events recorded since the last call.

        May be expensive (onnxruntime ends its profiling session, parses and deletes the file,
        and starts a fresh one); the profiler calls it outside measured code.
        """
        ...


@runtime_checkable
class SupportsOperatorProfiling(Protocol):
    """Engine capability: load an instance that records per-operator events."""

    def load_profiling(
        self, model: ModelBlob, config: RunConfig, instance: InstanceSpec, *, workdir: str
    ) -> ProfilingInstance:
        """Like :meth:`Engine.load`, recording operator events (files, if any, under
        ``workdir``)."""
        ...

    def profiling_cost(self) -> str:
        """One line on what operator recording costs per run on this engine (for reports)."""
        ...


@runtime_checkable
class SupportsGraphDump(Protocol):
    """Engine capability: graph optimisation levels, and the optimised graph written to a file
    (MegEngine's ``--layout-transform-dump``: load the dump with optimisation off)."""

    def graph_levels(self) -> tuple[str, ...]:
        """Optimisation levels, least first (``disabled`` ... ``all``)."""
        ...

    def at_graph_level(self, config: RunConfig, level: str) -> RunConfig:
        """``config`` set to optimise at ``level`` (``disabled``: load a dump as it is)."""
        ...

    def dump_optimized(
        self, model: ModelBlob, config: RunConfig, instance: InstanceSpec, path: str
    ) -> str:
        """Write the graph ``model`` becomes after the engine's optimisation at ``config``'s
        level; return the path."""
        ...
