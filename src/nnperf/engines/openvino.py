"""The OpenVINO engine: ONNX models (QDQ int8 included) on OpenVINO's CPU plugin.

Device mapping (measured on the project's 2-core Xeon, OpenVINO 2026.4): each instance of
``cpu(T)*N`` is its own ``ov.Core`` with one compiled model of one stream and T threads, CPU
pinning off. Two compiled models in one Core, or OpenVINO's own pinning, put both instances' stream
threads on the same core (MobileNetV2: 103 vs 275 queries/s, 1.0 vs 2.0 CPUs busy); separate Cores
spread them. Pinned devices (``cpu:0,cpu:1``) compile each instance with the compiling thread's
affinity set to the instance's cores: OpenVINO's stream threads inherit it (323 queries/s, each
thread on its own core, checked in ``/proc``).

Precision is explicit (:attr:`RunConfig.precision`, ``f32`` by default), never the CPU plugin's own
default, which is bf16 on CPUs with AMX/AVX-512-BF16 and makes numbers differ from the reference.

Capabilities: operator profiling (``PERF_COUNT`` and ``get_profiling_info``; OpenVINO reports each
node's duration, not its start, so starts are laid out one after another within the run).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import openvino as ov

from nnperf.device import InstanceSpec
from nnperf.engines.base import EngineOptions, NodePlacement, OperatorEvent
from nnperf.engines.config import RunConfig
from nnperf.engines.openvino_options import Hint, OpenVINOOptions
from nnperf.errors import EngineError, InvalidInputError, ModelLoadError, UnsupportedError
from nnperf.model import ModelBlob, graph_io
from nnperf.types import Dim, TensorDesc

__all__ = ["OpenVINOEngine", "OpenVINOInstance", "OpenVINOProfilingInstance"]

_PRECISION = {"f32": "f32", "bf16": "bf16", "f16": "f16"}
_CAPABILITY = {"bf16": "BF16", "f16": "FP16"}
# Runtime-model op types that are graph plumbing, not work.
_PLUMBING = {"Input", "Output", "Parameter", "Result", "Constant", "Const"}


def _options(config: RunConfig) -> OpenVINOOptions:
    opts = config.engine_options
    if not isinstance(opts, OpenVINOOptions):
        raise InvalidInputError(
            f"openvino got {type(opts).__name__}; expected OpenVINOOptions for engine 'openvino'"
        )
    return opts


@contextmanager
def _thread_affinity(cores: Sequence[int] | None) -> Any:
    """Run the block with this thread's CPU affinity set to ``cores`` (threads it creates
    inherit it), then restore it."""
    if cores is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cores))
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


class OpenVINOEngine:
    """OpenVINO's CPU plugin, reading ONNX models directly."""

    name = "openvino"
    options_type: type[EngineOptions] = OpenVINOOptions

    def __init__(self) -> None:
        self._caps: tuple[str, ...] | None = None

    @property
    def version(self) -> str:
        return str(ov.get_version()).split("-")[0]

    @property
    def platform(self) -> str:
        return "openvino_onnx"

    def available_providers(self) -> tuple[str, ...]:
        return tuple(ov.Core().available_devices)

    def capabilities(self) -> tuple[str, ...]:
        """The CPU plugin's ``OPTIMIZATION_CAPABILITIES`` (``BF16``, ``FP16``, ``INT8``...)."""
        if self._caps is None:
            self._caps = tuple(
                str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
            )
        return self._caps

    def precisions(self, kind: str) -> tuple[str, ...]:
        if kind != "cpu":
            return ()
        caps = self.capabilities()
        return ("f32", *(p for p, cap in _CAPABILITY.items() if cap in caps))

    def _check(self, config: RunConfig, instance: InstanceSpec) -> OpenVINOOptions:
        opts = _options(config)
        if instance.kind != "cpu":
            raise UnsupportedError(
                f"device {instance.label!r} on openvino: nnperf drives OpenVINO's CPU plugin "
                "only; use device 'cpu...' or --engine onnxruntime for CUDA/TensorRT"
            )
        offered = self.precisions(instance.kind)
        if config.precision not in offered:
            raise UnsupportedError(
                f"precision {config.precision!r} on openvino: this CPU offers {list(offered)} "
                f"(OPTIMIZATION_CAPABILITIES {list(self.capabilities())}); expected one of them"
            )
        return opts

    def _properties(
        self, config: RunConfig, instance: InstanceSpec, opts: OpenVINOOptions
    ) -> dict[str, Any]:
        props: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": _PRECISION[config.precision],
            "INFERENCE_NUM_THREADS": instance.threads,
            "ENABLE_CPU_PINNING": False,
        }
        if opts.hint is None:
            props["NUM_STREAMS"] = opts.streams or 1
        else:
            props["PERFORMANCE_HINT"] = "THROUGHPUT" if opts.hint is Hint.THROUGHPUT else "LATENCY"
            if opts.streams is not None:
                props["NUM_STREAMS"] = opts.streams
        return props

    def _compile(
        self,
        model: ModelBlob,
        config: RunConfig,
        instance: InstanceSpec,
        *,
        profiling: bool = False,
    ) -> tuple[Any, tuple[TensorDesc, ...], tuple[TensorDesc, ...], dict[str, Any]]:
        opts = self._check(config, instance)
        # One Core per instance: compiled models that share a Core put their streams on the same
        # cores (see the module docstring).
        core = ov.Core()
        if opts.cache_dir is not None:
            os.makedirs(opts.cache_dir, exist_ok=True)
            core.set_property({"CACHE_DIR": opts.cache_dir})
        t0 = time.perf_counter_ns()
        try:
            ov_model = core.read_model(model.path if model.path is not None else model.data)
        except Exception as exc:  # openvino raises RuntimeError with its frontend's text
            raise ModelLoadError(
                f"openvino could not read model {model.name!r}: {str(exc).strip()}"
            ) from exc
        t1 = time.perf_counter_ns()
        declared = graph_io(model)
        inputs = _resolved(declared.inputs, config)
        reshape = {
            d.name: ov.PartialShape([s if isinstance(s, int) else -1 for s in d.shape])
            for d in inputs
            if d.shape != _by_name(declared.inputs)[d.name].shape
        }
        if reshape:
            try:
                ov_model.reshape(reshape)
            except Exception as exc:
                raise InvalidInputError(
                    f"openvino cannot reshape model {model.name!r} to "
                    f"{ {k: str(v) for k, v in reshape.items()} }: {str(exc).strip()}"
                ) from exc
        props = self._properties(config, instance, opts)
        if profiling:
            props["PERF_COUNT"] = True
        try:
            with _thread_affinity(instance.cores):
                compiled = core.compile_model(ov_model, "CPU", props)
        except Exception as exc:
            raise ModelLoadError(
                f"openvino could not compile model {model.name!r}: {str(exc).strip()}"
            ) from exc
        t2 = time.perf_counter_ns()
        outputs = _outputs(compiled, declared.outputs)
        info: dict[str, Any] = {"read_ms": (t1 - t0) / 1e6}
        cached = opts.cache_dir is not None and bool(compiled.get_property("LOADED_FROM_CACHE"))
        info["cache_load_ms" if cached else "compile_ms"] = (t2 - t1) / 1e6
        info["cache"] = "off" if opts.cache_dir is None else ("hit" if cached else "miss")
        info["streams"] = int(compiled.get_property("NUM_STREAMS"))
        info["threads"] = int(compiled.get_property("INFERENCE_NUM_THREADS"))
        info["precision"] = _precision_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
        return compiled, inputs, outputs, info

    def load(self, model: ModelBlob, config: RunConfig, instance: InstanceSpec) -> OpenVINOInstance:
        compiled, inputs, outputs, info = self._compile(model, config, instance)
        return OpenVINOInstance(compiled, inputs, outputs, info=info)

    # -- capabilities -----------------------------------------------------------------------------
    def load_profiling(
        self, model: ModelBlob, config: RunConfig, instance: InstanceSpec, *, workdir: str
    ) -> OpenVINOProfilingInstance:
        compiled, inputs, outputs, info = self._compile(model, config, instance, profiling=True)
        return OpenVINOProfilingInstance(compiled, inputs, outputs, info=info)

    def profiling_cost(self) -> str:
        return (
            "OpenVINO's PERF_COUNT reports each node's duration (µs) after the run, not its start; "
            "reading it adds about 1 µs per node per run; latency of record comes from span mode"
        )

    def variations(self, config: RunConfig) -> list[tuple[str, EngineOptions]]:
        opts = _options(config)
        out = [opts.replace(hint=Hint.THROUGHPUT), opts.replace(hint=Hint.LATENCY)]
        return [(" ".join(o.changes()), o) for o in out if o != opts]


def _precision_name(value: Any) -> str:
    """OpenVINO's element type as nnperf's precision name (``bf16``, ``f32``, ``f16``)."""
    name = str(value.get_type_name()) if hasattr(value, "get_type_name") else str(value)
    return {"bf16": "bf16", "f32": "f32", "f16": "f16"}.get(name, name)


def _by_name(descs: Sequence[TensorDesc]) -> dict[str, TensorDesc]:
    return {d.name: d for d in descs}


def _resolved(declared: Sequence[TensorDesc], config: RunConfig) -> tuple[TensorDesc, ...]:
    """The inputs with every dim the config gives a size for (batch, dims, shapes) fixed."""
    out = []
    for d in declared:
        given = config.shapes.get(d.name)
        if given is not None:
            if len(given) != len(d.shape) or any(
                isinstance(s, int) and s != g for s, g in zip(d.shape, given)
            ):
                raise InvalidInputError(
                    f"shape for input {d.name!r}: got {list(given)}, expected rank "
                    f"{len(d.shape)} with the model's fixed sizes, like {d.shape_str()}"
                )
            out.append(TensorDesc(name=d.name, shape=tuple(given), dtype=d.dtype))
            continue
        shape: list[Dim] = list(d.shape)
        for i, s in enumerate(shape):
            if isinstance(s, str) and s in config.dims:
                shape[i] = config.dims[s]
            elif i == 0 and config.batch_size is not None:
                if isinstance(s, int) and s != config.batch_size:
                    raise InvalidInputError(
                        f"batch_size={config.batch_size}: input {d.name!r} has a fixed leading "
                        f"dimension {s}; expected a symbolic batch dimension. Use batch_size="
                        f"{s}, or free it with 'nnperf optimize --batch-size'"
                    )
                shape[i] = config.batch_size
        out.append(TensorDesc(name=d.name, shape=tuple(shape), dtype=d.dtype))
    return tuple(out)


def _outputs(compiled: Any, declared: Sequence[TensorDesc]) -> tuple[TensorDesc, ...]:
    """Output descriptions: the ONNX names and dtypes, shapes from the compiled model where
    they are static, the declared symbolic names where they are not."""
    by_name = _by_name(declared)
    out = []
    for port in compiled.outputs:
        names = port.get_names()
        name = next((n for n in names if n in by_name), port.get_any_name())
        decl = by_name.get(name)
        pshape = port.get_partial_shape()
        dims: list[Dim] = []
        for i, dim in enumerate(pshape):
            if dim.is_static:
                dims.append(int(dim.get_length()))
            elif decl is not None and i < len(decl.shape):
                dims.append(decl.shape[i])
            else:
                dims.append(None)
        dtype = decl.dtype if decl is not None else str(port.get_element_type().to_dtype())
        out.append(TensorDesc(name=name, shape=tuple(dims), dtype=dtype))
    return tuple(out)


class OpenVINOInstance:
    """One compiled model on one device instance; a pool of infer requests, one per caller.

    Thread-safe: each concurrent caller takes an infer request from a pool (creating one when
    none is free), so several threads can keep several streams busy.
    """

    def __init__(
        self,
        compiled: Any,
        inputs: tuple[TensorDesc, ...],
        outputs: tuple[TensorDesc, ...],
        *,
        info: Mapping[str, Any],
    ) -> None:
        self.compiled = compiled
        self._inputs = inputs
        self._outputs = outputs
        self._info = dict(info)
        self._input_index = {d.name: i for i, d in enumerate(inputs)}
        self._output_index = {d.name: i for i, d in enumerate(outputs)}
        self._all = list(range(len(outputs)))
        self._pool: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        # Ports in the compiled model's own order, matched to the declared names.
        self._in_ports = self._ports(compiled.inputs, inputs)
        self._out_ports = self._ports(compiled.outputs, outputs)

    @staticmethod
    def _ports(ports: Sequence[Any], descs: Sequence[TensorDesc]) -> list[int]:
        index = {}
        for i, port in enumerate(ports):
            for n in port.get_names():
                index[n] = i
        return [index[d.name] for d in descs]

    @property
    def inputs(self) -> tuple[TensorDesc, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorDesc, ...]:
        return self._outputs

    @property
    def providers(self) -> tuple[str, ...]:
        return ("CPU",)

    @property
    def load_info(self) -> Mapping[str, Any]:
        return self._info

    def _request(self) -> Any:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            if self._closed:
                raise EngineError("the engine instance is closed; create a new session") from None
            return self.compiled.create_infer_request()

    def _infer(self, request: Any, feeds: Mapping[str, np.ndarray]) -> None:
        # set_input_tensor on a shared-memory Tensor and a bare infer() is the cheapest call
        # (zoo:mnist, 1 thread: 57 µs vs 93 µs for infer({name: array}); benchmarks/engines.py).
        ports = self._in_ports
        for name, arr in feeds.items():
            data = arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)
            request.set_input_tensor(
                ports[self._input_index[name]], ov.Tensor(data, shared_memory=True)
            )
        request.infer()

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self._run(self._all, feeds)

    def run_outputs(
        self, names: Sequence[str], feeds: Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        try:
            wanted = [self._output_index[n] for n in names]
        except KeyError as exc:
            raise InvalidInputError(
                f"unknown output {exc.args[0]!r}; expected names among {list(self._output_index)}"
            ) from None
        return self._run(wanted, feeds)

    def _run(self, wanted: Sequence[int], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        request = self._request()
        try:
            self._infer(request, feeds)
            ports = self._out_ports
            result = [np.array(request.get_output_tensor(ports[i]).data) for i in wanted]
            self._after(request)
        except Exception as exc:
            if self._closed:
                raise EngineError("the engine instance is closed; create a new session") from exc
            raise EngineError(f"openvino run failed: {str(exc).strip()}") from exc
        finally:
            self._pool.put(request)
        return result

    def _after(self, request: Any) -> None:
        """Hook for the profiling subclass (called with the request after each run)."""

    def placement(self) -> list[NodePlacement]:
        """Each node of OpenVINO's runtime graph: layer type, kernel and runtime precision."""
        out = []
        for op in self.compiled.get_runtime_model().get_ordered_ops():
            rt = op.get_rt_info()

            def get(key: str, rt: Any = rt) -> str:
                return str(rt[key].astype(str)) if key in rt else ""

            layer = get("layerType") or op.get_type_name()
            if layer in _PLUMBING:
                continue
            out.append(
                NodePlacement(
                    node=op.get_friendly_name(),
                    op_type=layer,
                    provider="CPU",
                    kernel=get("primitiveType"),
                    precision=get("runtimePrecision"),
                )
            )
        return out

    def close(self) -> None:
        self._closed = True


class OpenVINOProfilingInstance(OpenVINOInstance):
    """An instance compiled with ``PERF_COUNT``: each run's per-node durations are kept."""

    def __init__(
        self,
        compiled: Any,
        inputs: tuple[TensorDesc, ...],
        outputs: tuple[TensorDesc, ...],
        *,
        info: Mapping[str, Any],
    ) -> None:
        super().__init__(compiled, inputs, outputs, info=info)
        self._events: list[OperatorEvent] = []
        self._lock = threading.Lock()
        self._local = threading.local()

    def _infer(self, request: Any, feeds: Mapping[str, np.ndarray]) -> None:
        self._local.start_ns = time.perf_counter_ns()
        super()._infer(request, feeds)

    def _after(self, request: Any) -> None:
        end = time.perf_counter_ns()
        start = int(getattr(self._local, "start_ns", end))
        tid = threading.get_native_id()
        ran = [
            info
            for info in request.get_profiling_info()
            if not str(info.status).endswith("NOT_RUN") and info.node_type not in _PLUMBING
        ]
        durations = [int(info.real_time.total_seconds() * 1e9) for info in ran]
        # OpenVINO reports durations only: lay the nodes out one after another from the start of
        # the run, squeezed (never stretched) to fit inside it, so each nests in its EngineRun.
        total = sum(durations)
        scale = min(1.0, (end - start) / total) if total else 1.0
        events = []
        offset = 0
        for info, dur_ns in zip(ran, durations):
            exec_type = str(info.exec_type)
            events.append(
                OperatorEvent(
                    name=str(info.node_name),
                    op_type=str(info.node_type),
                    provider="CPU",
                    start_ns=start + int(offset * scale),
                    dur_ns=min(dur_ns, end - start),
                    os_thread_id=tid,
                    kernel=exec_type,
                    precision=exec_type.rsplit("_", 1)[-1],
                    resolution_ns=1000,
                    synthetic_start=True,
                )
            )
            offset += dur_ns
        with self._lock:
            self._events.extend(events)

    def collect(self) -> list[OperatorEvent]:
        with self._lock:
            events, self._events = self._events, []
        return events
