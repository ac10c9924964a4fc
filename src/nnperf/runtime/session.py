"""``Session``: a model loaded on a device, run synchronously (Furiosa's ``session.create``)."""

from __future__ import annotations

import itertools
import os
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from nnperf.device import DeviceSpec, parse_device
from nnperf.engines.base import Engine, EngineInstance, EngineOptions
from nnperf.engines.config import RunConfig
from nnperf.engines.registry import get_engine
from nnperf.errors import InvalidInputError, NnperfError
from nnperf.model import ModelBlob, ModelSource, load_model
from nnperf.runtime.feeds import FeedValidator, Inputs
from nnperf.runtime.observers import Observers, RunEvent, session_created
from nnperf.types import TensorDesc

__all__ = ["LoadStages", "Session", "create", "resolve_config"]


@dataclass(frozen=True)
class LoadStages:
    """How long loading took, MegEngine ``load_and_run`` style.

    Attributes:
        load_ns: reading the model (file, zoo build or bytes) and checking it.
        prepare_ns: creating every engine instance (graph optimisation, kernel prepacking,
            compilation or a cached blob's import).
        engine: what the engine reported for each instance (``load_info``: e.g. OpenVINO's
            ``compile_ms`` or ``cache_load_ms`` and ``cache`` hit/miss), one mapping per instance.
    """

    load_ns: int
    prepare_ns: int
    engine: tuple[Mapping[str, Any], ...] = ()


def resolve_config(
    config: RunConfig | str | None,
    *,
    device: str | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    engine: str | None = None,
    precision: str | None = None,
    options: EngineOptions | Mapping[str, Any] | None = None,
) -> RunConfig:
    """Merge explicit keyword arguments over a config (object or JSON file path).

    Explicit arguments win over the config; the config wins over ``$NNPERF_DEVICES``. A new
    ``engine`` without ``options`` starts from that engine's default options.
    """
    if config is None:
        cfg = RunConfig()
    elif isinstance(config, RunConfig):
        cfg = config
    elif isinstance(config, str):
        cfg = RunConfig.load(config)
    else:
        raise InvalidInputError(
            f"config: got {type(config).__name__}, expected a RunConfig or a JSON file path"
        )
    changes: dict[str, Any] = {}
    if device is not None:
        changes["device"] = device
    if batch_size is not None:
        changes["batch_size"] = batch_size
    if workers is not None:
        changes["workers"] = workers
    if engine is not None:
        changes["engine"] = engine
    if precision is not None:
        changes["precision"] = precision
    if options is not None:
        changes["options"] = options
    return cfg.replace(**changes) if changes else cfg


class Session:
    """A model loaded on every instance of a device, run synchronously.

    Thread-safe: concurrent callers are spread over the device's instances (one per calling
    thread, round robin). Use :func:`create` to build one.

    Attributes:
        observers: who watches this session's runs (and those of the Runner, queue or batcher
            built over it); see :mod:`nnperf.runtime.observers`.
    """

    def __init__(
        self,
        model: ModelSource,
        *,
        config: RunConfig,
        engine: Engine | None = None,
        observers: Observers | None = None,
    ) -> None:
        """Load ``model`` on every instance of ``config.device`` with ``config.engine``.

        Args:
            model: path, ``zoo:NAME``, bytes, ``onnx.ModelProto`` or a loaded ``ModelBlob``.
            config: how to run it.
            engine: an engine object to use instead of the registry's ``config.engine``.
            observers: an observer list to share (a pipeline's stages share one); default: new.
        """
        self.observers = observers if observers is not None else Observers()
        t0 = time.perf_counter_ns()
        self.model: ModelBlob = load_model(model)
        t1 = time.perf_counter_ns()
        self.config = config
        self.device: DeviceSpec = parse_device(config.device)
        self.engine: Engine = engine or get_engine(config.engine)
        self.instances: list[EngineInstance] = []
        try:
            for spec in self.device.instances:
                self.instances.append(self.engine.load(self.model, config, spec))
        except BaseException:
            self.close()
            raise
        t2 = time.perf_counter_ns()
        self.stages = LoadStages(
            load_ns=t1 - t0,
            prepare_ns=t2 - t1,
            engine=tuple(dict(i.load_info) for i in self.instances),
        )
        first = self.instances[0]
        self._validator = FeedValidator(first.inputs)
        self._output_names = [o.name for o in first.outputs]
        self._closed = False
        self._local = threading.local()
        self._counter = itertools.count()
        # The fast path: one unpinned instance, no per-thread lookup. A pinned device takes the
        # lookup and runs each query on the instance's core (see :meth:`run`).
        self._pinned = self.device.pinned and hasattr(os, "sched_setaffinity")
        self._single = first if len(self.instances) == 1 and not self._pinned else None
        session_created(self)

    # -- metadata -------------------------------------------------------------------------------
    @property
    def inputs(self) -> tuple[TensorDesc, ...]:
        """Model inputs (batch dimension fixed when ``batch_size`` was given)."""
        return self.instances[0].inputs

    @property
    def outputs(self) -> tuple[TensorDesc, ...]:
        """Model outputs."""
        return self.instances[0].outputs

    @property
    def validator(self) -> FeedValidator:
        """The input checker (shared with the Runner and the server)."""
        return self._validator

    def summary(self) -> str:
        """Inputs and outputs in Furiosa's ``Model.summary()`` form, plus device and providers."""
        lines = [f"Model: {self.model.name} (sha256 {self.model.sha256[:12]})", "Inputs:"]
        for i, d in enumerate(self.inputs):
            lines.append(f"  {i}: {d}")
        lines.append("Outputs:")
        for i, d in enumerate(self.outputs):
            lines.append(f"  {i}: {d}")
        lines.append(
            f"Device: {self.device.text} ({len(self.instances)} instance(s): "
            + ", ".join(s.label for s in self.device.instances)
            + ")"
        )
        lines.append(f"Engine: {self.engine.name} {self.engine.version}")
        lines.append(f"Providers: {', '.join(self.instances[0].providers)}")
        return "\n".join(lines)

    # -- running ----------------------------------------------------------------------------------
    def _instance(self) -> tuple[int, EngineInstance]:
        index: int | None = getattr(self._local, "index", None)
        if index is None:
            index = next(self._counter) % len(self.instances)
            self._local.index = index
        return index, self.instances[index]

    def bind_thread(self, index: int) -> EngineInstance:
        """Make the calling thread run on instance ``index % instances`` and return it.

        On a pinned device (``cpu:0,cpu:1``) the thread is also pinned to the instance's first
        core: the calling thread is the instance's first compute thread, and onnxruntime pins the
        others (onnxruntime's ``intra_op_thread_affinities``; OpenVINO's stream threads inherit
        the affinity they were compiled under). Worker threads call this once.
        """
        index %= len(self.instances)
        self._local.index = index
        spec = self.device.instances[index]
        if spec.cores is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {spec.cores[0]})  # pid 0: this thread, on Linux
            self._local.bound = True
        return self.instances[index]

    def _on_core(self, index: int, call: Callable[[], list[np.ndarray]]) -> list[np.ndarray]:
        """``call()`` with the calling thread pinned to instance ``index``'s first core, its own
        affinity restored afterwards (about 2 µs; threads that :meth:`bind_thread` skip it)."""
        spec = self.device.instances[index]
        if spec.cores is None or getattr(self._local, "bound", False):
            return call()
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {spec.cores[0]})
        try:
            return call()
        finally:
            os.sched_setaffinity(0, before)

    def run(self, inputs: Inputs) -> list[np.ndarray]:
        """Run one query and return every output, in :attr:`outputs` order.

        On a pinned device (``cpu:1``, ``cpu:0-1``) the query runs with the calling thread pinned
        to the instance's first core (the thread's own affinity is restored when ``run``
        returns), so it runs where the device string says, as on a Runner's workers.

        Args:
            inputs: one array (single-input models), a list in input order, or a dict by name.
                Arrays are not copied; do not modify them until ``run`` returns.

        Raises:
            InvalidInputError: a wrong name, dtype, rank or shape (nothing reached the engine).
            EngineError: the engine failed.
        """
        if self.observers.items or self._closed:
            if self._closed:
                raise InvalidInputError("session is closed; create a new one with nnperf.create()")
            return self._observed(None, inputs)
        feeds = self._validator.normalise(inputs)
        single = self._single
        if single is not None:
            return single.run(feeds)
        index, inst = self._instance()
        if self._pinned:
            return self._on_core(index, lambda: inst.run(feeds))
        return inst.run(feeds)

    def run_with(
        self, outputs: Sequence[str], inputs: Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        """Run and return only the named outputs, in the order given (Furiosa ``run_with``).

        Raises:
            InvalidInputError: unknown output names, or a bad feed.
        """
        if self._closed:
            raise InvalidInputError("session is closed; create a new one with nnperf.create()")
        if isinstance(outputs, str):
            outputs = [outputs]
        unknown = [n for n in outputs if n not in self._output_names]
        if unknown or not outputs:
            raise InvalidInputError(
                f"run_with: unknown output(s) {unknown or '(none given)'}; expected names among "
                f"{self._output_names}"
            )
        if self.observers.items:
            return self._observed(list(outputs), inputs)
        feeds = self._validator.normalise(inputs)
        index, inst = self._instance()
        if self._pinned:
            return self._on_core(index, lambda: inst.run_outputs(list(outputs), feeds))
        return inst.run_outputs(list(outputs), feeds)

    def _observed(self, names: list[str] | None, inputs: Inputs) -> list[np.ndarray]:
        """The run with timestamps for observers (profiler, bench)."""
        start = time.perf_counter_ns()
        index, inst = self._instance()
        error: str | None = None
        engine_start = engine_end = start
        try:
            feeds = self._validator.normalise(inputs)
            engine_start = time.perf_counter_ns()
            try:
                if self._pinned:
                    result = self._on_core(
                        index,
                        lambda: (
                            inst.run(feeds) if names is None else inst.run_outputs(names, feeds)
                        ),
                    )
                else:
                    result = inst.run(feeds) if names is None else inst.run_outputs(names, feeds)
            finally:
                engine_end = time.perf_counter_ns()
            return result
        except NnperfError as exc:
            error = type(exc).__name__
            raise
        finally:
            end = time.perf_counter_ns()
            event = RunEvent(
                session_id=id(self),
                instance=index,
                thread_id=threading.get_ident(),
                batch=_batch_of(inputs),
                submit_ns=start,
                start_ns=start,
                engine_start_ns=engine_start,
                engine_end_ns=engine_end,
                end_ns=end,
                error=error,
            )
            self.observers.emit(event)

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        """Release every instance. Idempotent."""
        self._closed = True
        for inst in getattr(self, "instances", []):
            inst.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Session(model={self.model.name!r}, engine={self.engine.name!r}, "
            f"device={self.device.text!r})"
        )


def _batch_of(inputs: Any) -> int:
    """Rows in a query: the leading dim of its first array (1 when there is none)."""
    first: Any = inputs
    if isinstance(inputs, Mapping):
        first = next(iter(inputs.values()), None)
    elif isinstance(inputs, (list, tuple)):
        first = inputs[0] if inputs else None
    if isinstance(first, np.ndarray) and first.ndim > 0:
        return int(first.shape[0])
    return 1


def warn_unapplied_technique(config: RunConfig, made: str) -> None:
    """Warn that ``config``'s runtime technique is not what ``made`` runs (a tuned config names
    one; only :func:`nnperf.create_executor` builds it)."""
    technique = config.technique
    if technique is not None:
        warnings.warn(
            f"the config sets {technique}, which {made} does not apply: it runs each query as "
            "it comes. nnperf.create_executor(model, config=...) builds the executor the config "
            "describes (what nnperf tune measured)",
            UserWarning,
            stacklevel=3,
        )


def create(
    model: ModelSource,
    *,
    device: str | None = None,
    batch_size: int | None = None,
    config: RunConfig | str | None = None,
    engine: str | None = None,
    precision: str | None = None,
    options: EngineOptions | Mapping[str, Any] | None = None,
) -> Session:
    """Load ``model`` on ``device`` and return a synchronous :class:`Session`.

    Args:
        model: path, ``zoo:NAME``, bytes or ``onnx.ModelProto``.
        device: device string (``cpu``, ``cpu(1)*2``, ``cpu:0-1``, ``cuda:0``...); default:
            the config's, then ``$NNPERF_DEVICES``, then ``cpu``.
        batch_size: fix the model's free batch dimension.
        config: a :class:`RunConfig` or the path of a JSON config (``nnperf tune`` writes one).
        engine: ``onnxruntime`` (default) or ``openvino``; default: the config's.
        precision: ``f32`` (default), ``bf16`` or ``f16`` where the engine offers it.
        options: the engine's own options (its options type, or a mapping of its fields).

    Raises:
        ModelLoadError, NotFoundError, InvalidInputError, UnsupportedError,
        MissingDependencyError (the engine is not installed).
    """
    cfg = resolve_config(
        config,
        device=device,
        batch_size=batch_size,
        engine=engine,
        precision=precision,
        options=options,
    )
    warn_unapplied_technique(cfg, "a Session")
    return Session(model, config=cfg)
