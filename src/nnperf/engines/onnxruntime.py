"""The onnxruntime engine: the CPU execution provider everywhere, CUDA/TensorRT where installed.

Capabilities: operator profiling (onnxruntime's own profiler, on a profiling twin session) and
graph dumps (``SessionOptions.optimized_model_filepath``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

from nnperf.device import InstanceSpec
from nnperf.engines.base import EngineOptions, NodePlacement, OperatorEvent
from nnperf.engines.config import RunConfig
from nnperf.engines.onnxruntime_options import ExecutionMode, GraphLevel, OrtOptions
from nnperf.errors import EngineError, InvalidInputError, ModelLoadError, UnsupportedError
from nnperf.model import ModelBlob, graph_io
from nnperf.types import Dim, TensorDesc, concrete_shape, dtype_from_onnx

__all__ = [
    "OrtEngine",
    "OrtInstance",
    "OrtProfilingInstance",
    "provider_entry",
    "read_ort_profile",
    "session_options",
]

_LEVELS = {
    GraphLevel.DISABLED: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    GraphLevel.BASIC: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    GraphLevel.EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    GraphLevel.ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_PROVIDER_NAMES = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
}
_CUDA_ALGO_SEARCH = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")
#: TensorRT on a CUDA device, with CUDA and CPU for what it does not take.
_TENSORRT_CHAIN = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def _descs(metas: Sequence[Any]) -> tuple[TensorDesc, ...]:
    out = []
    for m in metas:
        shape: tuple[Dim, ...] = tuple(
            d if isinstance(d, (int, str)) and d != "" else None for d in m.shape
        )
        out.append(TensorDesc(name=m.name, shape=shape, dtype=dtype_from_onnx(m.type)))
    return tuple(out)


def _options(config: RunConfig) -> OrtOptions:
    opts = config.engine_options
    if not isinstance(opts, OrtOptions):  # RunConfig guarantees it; a clear error all the same
        raise InvalidInputError(
            f"onnxruntime got {type(opts).__name__}; expected OrtOptions for engine 'onnxruntime'"
        )
    return opts


def affinity_string(cores: Sequence[int]) -> str:
    """onnxruntime's ``session.intra_op_thread_affinities`` for an instance on ``cores``.

    One ``;``-separated group per intra-op thread *other than* the calling thread (which
    onnxruntime never pins), each naming a 1-based logical processor: cores ``(0, 1)`` give
    ``"2"`` — the extra thread on the second processor, the caller pinned by nnperf to core 0.
    """
    return ";".join(str(c + 1) for c in cores[1:])


def session_options(
    config: RunConfig,
    instance: InstanceSpec,
    *,
    free_dims: Mapping[str, int] | None = None,
    profile_prefix: str | None = None,
    optimized_model_path: str | None = None,
) -> ort.SessionOptions:
    """Translate a :class:`RunConfig` and one instance into onnxruntime session options."""
    opts = _options(config)
    so = ort.SessionOptions()
    so.intra_op_num_threads = instance.threads
    if opts.inter_op_threads is not None:
        so.inter_op_num_threads = opts.inter_op_threads
    so.graph_optimization_level = _LEVELS[opts.graph_level]
    so.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL
        if opts.execution_mode is ExecutionMode.PARALLEL
        else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    so.enable_mem_pattern = opts.mem_pattern
    so.use_deterministic_compute = opts.deterministic
    so.log_severity_level = 3
    if not opts.prepack:
        so.add_session_config_entry("session.disable_prepacking", "1")
    spin = "1" if opts.spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    if instance.cores is not None and len(instance.cores) > 1:
        so.add_session_config_entry(
            "session.intra_op_thread_affinities", affinity_string(instance.cores)
        )
    dump = optimized_model_path or opts.optimized_model_path
    if dump is not None:
        so.optimized_model_filepath = dump
    for dim_name, size in (free_dims or {}).items():
        so.add_free_dimension_override_by_name(dim_name, size)
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return so


class OrtEngine:
    """onnxruntime, with the CPU provider everywhere and CUDA/TensorRT where installed."""

    name = "onnxruntime"
    options_type: type[EngineOptions] = OrtOptions

    @property
    def version(self) -> str:
        return str(ort.__version__)

    @property
    def platform(self) -> str:
        return "onnxruntime_onnx"

    def available_providers(self) -> tuple[str, ...]:
        return tuple(ort.get_available_providers())

    def precisions(self, kind: str) -> tuple[str, ...]:
        # onnxruntime runs a model in the precision its file says; fp16/int8 are model edits
        # (nnperf optimize --fp16, nnperf quantize), not a session setting.
        return ("f32",)

    def providers_for(self, config: RunConfig, instance: InstanceSpec) -> list[Any]:
        """The provider list (with options) for one instance."""
        opts = _options(config)
        names = opts.providers or _PROVIDER_NAMES[instance.kind]
        available = set(self.available_providers())
        missing = [n for n in names if n not in available]
        if missing:
            raise UnsupportedError(
                f"execution provider(s) {missing} are not available in this onnxruntime build "
                f"({ort.__version__}, device {instance.label!r}); available: {sorted(available)}. "
                "Install onnxruntime-gpu for CUDA/TensorRT, or use device 'cpu'"
            )
        return [provider_entry(n, opts, instance) for n in names]

    def _session(
        self,
        model: ModelBlob,
        config: RunConfig,
        instance: InstanceSpec,
        *,
        profile_prefix: str | None = None,
        optimized_model_path: str | None = None,
    ) -> ort.InferenceSession:
        opts = _options(config)
        if config.precision != "f32":
            raise UnsupportedError(
                f"precision {config.precision!r} on onnxruntime: onnxruntime runs the precision "
                "the model file has; convert the model ('nnperf optimize --fp16', "
                "'nnperf quantize') or use --engine openvino, which offers bf16/f16 on CPUs "
                "that have them"
            )
        if opts.cuda_graph and instance.kind == "cpu":
            raise UnsupportedError(
                "cuda_graph needs a CUDA device; got device 'cpu' (CPU has no graph replay: "
                "drop cuda_graph or use device 'cuda:0')"
            )
        providers = self.providers_for(config, instance)
        free_dims = _free_dims(model, config)
        so = session_options(
            config,
            instance,
            free_dims=free_dims,
            profile_prefix=profile_prefix,
            optimized_model_path=optimized_model_path,
        )
        # A model read from a file is loaded by path, so external-data tensors (models over
        # 2 GB, many exporters' output) are found beside it.
        source: str | bytes = model.path if model.path is not None else model.data
        try:
            return ort.InferenceSession(source, so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise ModelLoadError(
                f"onnxruntime could not load model {model.name!r}: {str(exc).strip()}"
            ) from exc

    def load(self, model: ModelBlob, config: RunConfig, instance: InstanceSpec) -> OrtInstance:
        t0 = time.perf_counter_ns()
        sess = self._session(model, config, instance)
        info = {"session_ms": (time.perf_counter_ns() - t0) / 1e6}
        return OrtInstance(sess, instance, model=model, config=config, engine=self, info=info)

    # -- capabilities -----------------------------------------------------------------------------
    def load_profiling(
        self, model: ModelBlob, config: RunConfig, instance: InstanceSpec, *, workdir: str
    ) -> OrtProfilingInstance:
        return OrtProfilingInstance(self, model, config, instance, workdir=workdir)

    def profiling_cost(self) -> str:
        return (
            "onnxruntime's profiler adds about 5 µs per node per run and reports µs resolution; "
            "latency of record comes from span mode"
        )

    def graph_levels(self) -> tuple[str, ...]:
        return tuple(g.value for g in GraphLevel)

    def at_graph_level(self, config: RunConfig, level: str) -> RunConfig:
        try:
            lvl = GraphLevel(level)
        except ValueError:
            raise InvalidInputError(
                f"graph level: got {level!r}, expected one of {list(self.graph_levels())}"
            ) from None
        return config.with_options(graph_level=lvl, optimized_model_path=None)

    def dump_optimized(
        self, model: ModelBlob, config: RunConfig, instance: InstanceSpec, path: str
    ) -> str:
        self._session(model, config, instance, optimized_model_path=path)
        return path

    def variations(self, config: RunConfig) -> list[tuple[str, EngineOptions]]:
        opts = _options(config)
        kind = "cpu"
        if config.device is not None and config.device.startswith("cuda"):
            kind = "cuda"
        out: list[OrtOptions] = [
            opts.replace(graph_level=GraphLevel.EXTENDED),
            opts.replace(graph_level=GraphLevel.BASIC),
            opts.replace(prepack=False),
            opts.replace(mem_pattern=False),
            opts.replace(execution_mode=ExecutionMode.PARALLEL),
        ]
        if kind == "cuda":
            for algo in _CUDA_ALGO_SEARCH[1:]:
                po = {k: dict(v) for k, v in opts.provider_options.items()}
                po.setdefault("CUDAExecutionProvider", {})["cudnn_conv_algo_search"] = algo
                out.append(opts.replace(provider_options=po))
            out.append(opts.replace(cuda_graph=True))
            if "TensorrtExecutionProvider" in self.available_providers() and not opts.providers:
                out.append(opts.replace(providers=_TENSORRT_CHAIN))
        return [(" ".join(o.changes()), o) for o in out if o != opts]


def _free_dims(model: ModelBlob, config: RunConfig) -> dict[str, int]:
    """Free-dimension overrides: the batch size on every input's leading symbolic dim, the named
    ``dims``, and the named dims of every input with a whole ``shapes`` entry."""
    out = _batch_overrides(model, config.batch_size) if config.batch_size else {}
    if config.shapes:
        for desc in graph_io(model).inputs:
            name, dims = desc.name, desc.shape
            shape = config.shapes.get(name)
            if shape is None:
                continue
            if len(shape) != len(dims):
                raise InvalidInputError(
                    f"shape for input {name!r}: got {list(shape)} (rank {len(shape)}), expected "
                    f"rank {len(dims)} like {list(dims)}"
                )
            for d, size in zip(dims, shape):
                if isinstance(d, str):
                    out[d] = size
                elif isinstance(d, int) and d != size:
                    raise InvalidInputError(
                        f"shape for input {name!r}: got {list(shape)}, but the model fixes "
                        f"{list(dims)}; expected the fixed sizes as they are"
                    )
    out.update(config.dims)
    return out


def _batch_overrides(model: ModelBlob, batch_size: int) -> dict[str, int]:
    """Free-dimension overrides that fix every input's leading symbolic dim to ``batch_size``.

    Parsed once per model and batch size (``sha256`` names the bytes), not once per instance.
    """
    key = (model.sha256, batch_size)
    found = _OVERRIDES.get(key)
    if found is None:
        found = _parse_batch_overrides(model, batch_size)
        with _OVERRIDES_LOCK:
            _OVERRIDES[key] = found
            while len(_OVERRIDES) > 64:  # small results; forget the oldest
                del _OVERRIDES[next(iter(_OVERRIDES))]
    return dict(found)


_OVERRIDES: dict[tuple[str, int], tuple[tuple[str, int], ...]] = {}
_OVERRIDES_LOCK = threading.Lock()


def _parse_batch_overrides(model: ModelBlob, batch_size: int) -> tuple[tuple[str, int], ...]:
    names: dict[str, int] = {}
    for desc in graph_io(model).inputs:
        name, dims = desc.name, desc.shape
        if not dims:
            continue
        d0 = dims[0]
        if isinstance(d0, str):
            names[d0] = batch_size
        elif isinstance(d0, int) and d0 != batch_size:
            raise InvalidInputError(
                f"batch_size={batch_size}: input {name!r} has a fixed leading dimension "
                f"{d0}; expected a symbolic batch dimension. Use batch_size="
                f"{d0}, or re-export the model with a dynamic batch axis "
                "('nnperf optimize --batch-size' can free it)"
            )
        elif d0 is None:
            raise InvalidInputError(
                f"batch_size={batch_size}: input {name!r} has an unnamed leading dimension, "
                "which onnxruntime cannot override; name it (e.g. 'batch') or fix it with "
                "'nnperf optimize --batch-size'"
            )
    return tuple(names.items())


class OrtInstance:
    """One onnxruntime ``InferenceSession`` on one device instance."""

    def __init__(
        self,
        sess: ort.InferenceSession,
        spec: InstanceSpec,
        *,
        model: ModelBlob,
        config: RunConfig,
        engine: OrtEngine,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        self.session = sess
        self.spec = spec
        self._model = model
        self._config = config
        self._engine = engine
        self._info = dict(info or {})
        self._inputs = _descs(sess.get_inputs())
        self._outputs = _descs(sess.get_outputs())
        self._output_names = [o.name for o in self._outputs]
        self._providers = tuple(sess.get_providers())
        self._closed = False
        # InferenceSession.run re-checks the feed's names and then calls the C++ session's run.
        # nnperf validates names, dtypes and shapes itself before this point, so it calls the C++
        # run directly: ~1.3 µs less per call (a third of the per-call floor on small models,
        # see benchmarks/overhead.py). If a future onnxruntime drops the attribute, the public
        # method is used. IO binding was measured too and is slower on the CPU provider when the
        # caller needs fresh output arrays (per call on a 1000-float Identity, ORT 1.31.1:
        # run 4.9 µs, C++ run 3.5 µs, bind + run_with_iobinding + copy_outputs_to_cpu 4.2 µs,
        # binding a freshly allocated output buffer 7.7 µs); it pays off only for device memory.
        inner = getattr(sess, "_sess", None)
        self._fast_run = inner.run if inner is not None and hasattr(inner, "run") else None
        self._run_options = quiet_run_options()
        # onnxruntime captures a CUDA graph only for runs through IO binding on fixed device
        # buffers; plain run() would copy into fresh buffers each time.
        self._graph: _CudaGraphRun | None = None
        if _options(config).cuda_graph and spec.kind == "cuda":
            self._graph = _CudaGraphRun(
                sess, spec.device_id or 0, self._output_names, run_options=self._run_options
            )

    @property
    def inputs(self) -> tuple[TensorDesc, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorDesc, ...]:
        return self._outputs

    @property
    def providers(self) -> tuple[str, ...]:
        return self._providers

    @property
    def load_info(self) -> Mapping[str, Any]:
        return self._info

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        if self._graph is not None:
            return self._graph.run(feeds, self._wrap)
        fast = self._fast_run
        if fast is None:
            return self.run_outputs(self._output_names, feeds)
        try:
            result: list[np.ndarray] = fast(self._output_names, feeds, self._run_options)
        except Exception as exc:
            raise self._wrap(exc) from exc
        return result

    def run_outputs(
        self, names: Sequence[str], feeds: Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        if self._graph is not None:
            outs = dict(zip(self._output_names, self._graph.run(feeds, self._wrap)))
            return [outs[n] for n in names]
        try:
            if self._fast_run is not None:
                result: list[np.ndarray] = self._fast_run(names, feeds, self._run_options)
            else:
                result = self.session.run(list(names), dict(feeds), self._run_options)
        except Exception as exc:
            raise self._wrap(exc) from exc
        return result

    def _wrap(self, exc: Exception) -> EngineError:
        if self._closed:
            return EngineError("the engine instance is closed; create a new session")
        return EngineError(f"onnxruntime run failed: {str(exc).strip()}")

    def placement(self) -> list[NodePlacement]:
        """Where each node of the optimised graph runs, read from one profiled run.

        A throwaway profiling session with the same options runs once on zeros; its per-node
        events name the op type and provider of every node that ran.
        """
        with tempfile.TemporaryDirectory(prefix="nnperf-placement-") as tmp:
            probe = self._engine.load_profiling(self._model, self._config, self.spec, workdir=tmp)
            try:
                probe.run(
                    {
                        d.name: np.zeros(
                            concrete_shape(d, dims=self._config.dims, default=1), np.dtype(d.dtype)
                        )
                        for d in probe.inputs
                    }
                )
                events = probe.collect()
            finally:
                probe.close()
        out: dict[str, NodePlacement] = {}
        for ev in events:
            out.setdefault(ev.name, NodePlacement(ev.name, ev.op_type, ev.provider))
        return list(out.values())

    def close(self) -> None:
        self._closed = True


class _CudaGraphRun:
    """Runs through IO binding on fixed CUDA buffers, which onnxruntime's CUDA graphs require:
    each query is copied into the bound input buffers (``OrtValue.update_inplace``), the captured
    graph is replayed, and the outputs are copied back to the host.

    onnxruntime does one regular run (allocating memory) before it captures. That first run binds
    the outputs to device memory onnxruntime allocates; those same OrtValues are then bound as the
    fixed outputs, so the buffers never move whichever run is captured. A graph replays one set
    of shapes: a query of other shapes is an error.
    """

    def __init__(
        self,
        sess: ort.InferenceSession,
        device_id: int,
        names: Sequence[str],
        *,
        device_type: str = "cuda",
        run_options: ort.RunOptions | None = None,
    ) -> None:
        self._sess = sess
        self._run_options = run_options
        self._device_type = device_type  # "cpu" in tests: the same binding steps, no graph
        self._device_id = device_id
        self._names = list(names)
        self._binding: Any = None
        self._inputs: dict[str, Any] = {}
        self._outputs: list[Any] = []
        self._signature: dict[str, tuple[tuple[int, ...], str]] = {}
        # One binding per instance: runs sharing it are serialised (one CUDA stream anyway).
        self._lock = threading.Lock()

    def run(
        self, feeds: Mapping[str, np.ndarray], wrap: Callable[[Exception], EngineError]
    ) -> list[np.ndarray]:
        signature = {k: (tuple(v.shape), v.dtype.str) for k, v in feeds.items()}
        with self._lock:
            try:
                if self._binding is None:
                    self._first(feeds)
                    self._signature = signature
                else:
                    if signature != self._signature:
                        raise InvalidInputError(
                            f"cuda_graph replays the shapes it captured: got {signature}, "
                            f"captured {self._signature}; fix the shapes (batch_size=, --shape) "
                            "or drop cuda_graph"
                        )
                    for name, arr in feeds.items():
                        self._inputs[name].update_inplace(np.ascontiguousarray(arr))
                    self._sess.run_with_iobinding(self._binding, self._run_options)
                outs = [o.numpy() for o in self._outputs]
                if self._device_type == "cpu":  # numpy() is a view of the bound buffer there
                    outs = [o.copy() for o in outs]
                return outs
            except InvalidInputError:
                raise
            except Exception as exc:
                raise wrap(exc) from exc

    def _first(self, feeds: Mapping[str, np.ndarray]) -> None:
        binding = self._sess.io_binding()
        for name, arr in feeds.items():
            # A copy: on the CPU an OrtValue wraps the array itself, and later queries are
            # written into this buffer.
            value = ort.OrtValue.ortvalue_from_numpy(
                np.array(arr, order="C", copy=True), self._device_type, self._device_id
            )
            binding.bind_ortvalue_input(name, value)
            self._inputs[name] = value
        for name in self._names:
            binding.bind_output(name, self._device_type, self._device_id)
        self._sess.run_with_iobinding(binding, self._run_options)
        outputs = list(binding.get_outputs())
        binding.clear_binding_outputs()
        for name, value in zip(self._names, outputs):
            binding.bind_ortvalue_output(name, value)
        self._outputs = outputs
        self._binding = binding


class OrtProfilingInstance(OrtInstance):
    """An onnxruntime instance with the profiler on, whose events :meth:`collect` returns.

    onnxruntime can only switch its profiler on when an ``InferenceSession`` is created, and its
    event list (and JSON file) grows with every run until ``end_profiling()``. :meth:`collect`
    therefore ends the session's profile, parses and deletes the file, and builds a fresh
    profiling session for the next runs (one session load: call it outside measured code).

    Clock: ``get_profiling_start_time_ns()`` is wall-clock time (``time.time_ns()``-compatible on
    Linux, measured with onnxruntime 1.31) and each event's ``ts`` is µs since that start; events
    are converted onto ``time.perf_counter_ns``, the clock of the runtime's spans.
    """

    def __init__(
        self,
        engine: OrtEngine,
        model: ModelBlob,
        config: RunConfig,
        instance: InstanceSpec,
        *,
        workdir: str,
    ) -> None:
        self._workdir = workdir
        self._counter = 0
        self._lock = threading.Lock()
        sess, origin = self._profiled(engine, model, config, instance)
        super().__init__(sess, instance, model=model, config=config, engine=engine)
        self._origin_ns = origin

    def _profiled(
        self, engine: OrtEngine, model: ModelBlob, config: RunConfig, instance: InstanceSpec
    ) -> tuple[ort.InferenceSession, int]:
        self._counter += 1
        prefix = os.path.join(self._workdir, f"ort-{id(self)}-{self._counter}")
        sess = engine._session(model, config, instance, profile_prefix=prefix)
        origin = int(sess.get_profiling_start_time_ns()) - clock_offset_ns()
        return sess, origin

    def collect(self) -> list[OperatorEvent]:
        with self._lock:
            old, origin = self.session, self._origin_ns
            if not self._closed:
                sess, self._origin_ns = self._profiled(
                    self._engine, self._model, self._config, self.spec
                )
                self._swap(sess)
            path = str(old.end_profiling())
            try:
                return read_ort_profile(path, origin_ns=origin)
            finally:
                with contextlib.suppress(OSError):
                    os.remove(path)

    def _swap(self, sess: ort.InferenceSession) -> None:
        self.session = sess
        inner = getattr(sess, "_sess", None)
        self._fast_run = inner.run if inner is not None and hasattr(inner, "run") else None


def provider_entry(
    name: str, opts: OrtOptions, instance: InstanceSpec
) -> str | tuple[str, dict[str, str]]:
    """One entry of onnxruntime's ``providers=`` list: the name, with its options where any.

    The user's ``provider_options`` win; nnperf adds the GPU ordinal, ``enable_cuda_graph`` /
    ``trt_cuda_graph_enable`` with ``cuda_graph``, and with ``cache_dir`` TensorRT's engine and
    timing caches there (its "algorithm search" results, reused by later sessions: MegEngine's
    fast-run cache on a GPU).
    """
    provider_opts = dict(opts.provider_options.get(name, {}))
    if name in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        provider_opts.setdefault("device_id", str(instance.device_id or 0))
    if name == "CUDAExecutionProvider" and opts.cuda_graph:
        provider_opts.setdefault("enable_cuda_graph", "1")
    if name == "TensorrtExecutionProvider":
        if opts.cuda_graph:
            provider_opts.setdefault("trt_cuda_graph_enable", "1")
        if opts.cache_dir is not None:
            for key in ("trt_engine_cache", "trt_timing_cache"):
                provider_opts.setdefault(f"{key}_enable", "1")
                provider_opts.setdefault(f"{key}_path", opts.cache_dir)
    return (name, provider_opts) if provider_opts else name


def quiet_run_options() -> ort.RunOptions:
    """Run options that keep onnxruntime's per-run error log quiet.

    A failed run raises with onnxruntime's message, which nnperf's ``EngineError`` carries; left
    at the default, onnxruntime also prints that message to stderr on every failed run (a
    served model fed bad indices logged each request twice). Session-level warnings (at load)
    are unaffected. Handing the same object to every call is also cheaper than ``None``, for
    which the binding builds default options per call (zoo:identity, ORT 1.32: ~1.7 µs a call).
    """
    options = ort.RunOptions()
    options.log_severity_level = 4  # fatal only
    return options


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
                resolution_ns=1000,
            )
        )
    return out
