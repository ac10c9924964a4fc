"""The onnxruntime engine."""

from __future__ import annotations

import glob
import json
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

from nnperf.device import InstanceSpec
from nnperf.engines.base import NodePlacement
from nnperf.errors import EngineError, InvalidInputError, ModelLoadError, UnsupportedError
from nnperf.model import ModelBlob
from nnperf.types import Dim, ExecutionMode, GraphLevel, RunConfig, TensorDesc, dtype_from_onnx

__all__ = ["OrtEngine", "OrtInstance", "session_options"]

_LEVELS = {
    GraphLevel.DISABLED: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    GraphLevel.BASIC: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    GraphLevel.EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    GraphLevel.ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_PROVIDER_NAMES = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


def _descs(metas: Sequence[Any]) -> tuple[TensorDesc, ...]:
    out = []
    for m in metas:
        shape: tuple[Dim, ...] = tuple(
            d if isinstance(d, (int, str)) and d != "" else None for d in m.shape
        )
        out.append(TensorDesc(name=m.name, shape=shape, dtype=dtype_from_onnx(m.type)))
    return tuple(out)


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
) -> ort.SessionOptions:
    """Translate a :class:`RunConfig` and one instance into onnxruntime session options."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = instance.threads
    if config.inter_op_threads is not None:
        so.inter_op_num_threads = config.inter_op_threads
    so.graph_optimization_level = _LEVELS[config.graph_level]
    so.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL
        if config.execution_mode is ExecutionMode.PARALLEL
        else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    so.enable_mem_pattern = config.mem_pattern
    so.use_deterministic_compute = config.deterministic
    so.log_severity_level = 3
    if not config.prepack:
        so.add_session_config_entry("session.disable_prepacking", "1")
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.spinning else "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "1" if config.spinning else "0")
    if instance.cores is not None and len(instance.cores) > 1:
        so.add_session_config_entry(
            "session.intra_op_thread_affinities", affinity_string(instance.cores)
        )
    if config.optimized_model_path is not None:
        so.optimized_model_filepath = config.optimized_model_path
    for dim_name, size in (free_dims or {}).items():
        so.add_free_dimension_override_by_name(dim_name, size)
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return so


class OrtEngine:
    """onnxruntime, with the CPU provider everywhere and CUDA/TensorRT where installed."""

    name = "onnxruntime"

    @property
    def version(self) -> str:
        return str(ort.__version__)

    def available_providers(self) -> tuple[str, ...]:
        return tuple(ort.get_available_providers())

    def providers_for(self, config: RunConfig, instance: InstanceSpec) -> list[Any]:
        """The provider list (with options) for one instance."""
        names = config.providers or _PROVIDER_NAMES[instance.kind]
        available = set(self.available_providers())
        missing = [n for n in names if n not in available]
        if missing:
            raise UnsupportedError(
                f"execution provider(s) {missing} are not available in this onnxruntime build "
                f"({ort.__version__}, device {instance.label!r}); available: {sorted(available)}. "
                "Install onnxruntime-gpu for CUDA/TensorRT, or use device 'cpu'"
            )
        result: list[Any] = []
        for n in names:
            opts = dict(config.provider_options.get(n, {}))
            if n in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
                opts.setdefault("device_id", str(instance.device_id or 0))
            if n == "CUDAExecutionProvider" and config.cuda_graph:
                opts.setdefault("enable_cuda_graph", "1")
            result.append((n, opts) if opts else n)
        return result

    def load(
        self,
        model: ModelBlob,
        config: RunConfig,
        instance: InstanceSpec,
        *,
        profile_prefix: str | None = None,
    ) -> OrtInstance:
        if config.cuda_graph and instance.kind == "cpu":
            raise UnsupportedError(
                "cuda_graph needs a CUDA device; got device 'cpu' (CPU has no graph replay: "
                "drop cuda_graph or use device 'cuda:0')"
            )
        providers = self.providers_for(config, instance)
        free_dims = _batch_overrides(model, config.batch_size) if config.batch_size else {}
        so = session_options(config, instance, free_dims=free_dims, profile_prefix=profile_prefix)
        try:
            sess = ort.InferenceSession(model.data, so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise ModelLoadError(
                f"onnxruntime could not load model {model.name!r}: {str(exc).strip()}"
            ) from exc
        return OrtInstance(sess, instance, model=model, config=config)


def _batch_overrides(model: ModelBlob, batch_size: int) -> dict[str, int]:
    """Free-dimension overrides that fix every input's leading symbolic dim to ``batch_size``.

    Parsed once per model and batch size (``sha256`` names the bytes), not once per instance.
    """
    key = (model.sha256, batch_size)
    found = _OVERRIDES.get(key)
    if found is None:
        found = _parse_batch_overrides(model.data, batch_size)
        with _OVERRIDES_LOCK:
            _OVERRIDES[key] = found
            while len(_OVERRIDES) > 64:  # small results; forget the oldest
                del _OVERRIDES[next(iter(_OVERRIDES))]
    return dict(found)


_OVERRIDES: dict[tuple[str, int], tuple[tuple[str, int], ...]] = {}
_OVERRIDES_LOCK = threading.Lock()


def _parse_batch_overrides(data: bytes, batch_size: int) -> tuple[tuple[str, int], ...]:
    import onnx

    proto = onnx.ModelProto.FromString(data)
    inits = {i.name for i in proto.graph.initializer}
    names: dict[str, int] = {}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        dims = vi.type.tensor_type.shape.dim
        if not dims:
            continue
        d0 = dims[0]
        if d0.HasField("dim_param") and d0.dim_param:
            names[d0.dim_param] = batch_size
        elif d0.HasField("dim_value") and d0.dim_value != batch_size:
            raise InvalidInputError(
                f"batch_size={batch_size}: input {vi.name!r} has a fixed leading dimension "
                f"{d0.dim_value}; expected a symbolic batch dimension. Use batch_size="
                f"{d0.dim_value}, or re-export the model with a dynamic batch axis "
                "('nnperf optimize --batch-size' can free it)"
            )
        elif not d0.HasField("dim_value"):
            raise InvalidInputError(
                f"batch_size={batch_size}: input {vi.name!r} has an unnamed leading dimension, "
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
    ) -> None:
        self.session = sess
        self.spec = spec
        self._model = model
        self._config = config
        self._inputs = _descs(sess.get_inputs())
        self._outputs = _descs(sess.get_outputs())
        self._output_names = [o.name for o in self._outputs]
        self._providers = tuple(sess.get_providers())
        self._closed = False
        self._lock = threading.Lock()
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

    @property
    def inputs(self) -> tuple[TensorDesc, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorDesc, ...]:
        return self._outputs

    @property
    def providers(self) -> tuple[str, ...]:
        return self._providers

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        fast = self._fast_run
        if fast is None:
            return self.run_outputs(self._output_names, feeds)
        try:
            result: list[np.ndarray] = fast(self._output_names, feeds, None)
        except Exception as exc:
            raise self._wrap(exc) from exc
        return result

    def run_outputs(
        self, names: Sequence[str], feeds: Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        try:
            if self._fast_run is not None:
                result: list[np.ndarray] = self._fast_run(names, feeds, None)
            else:
                result = self.session.run(list(names), dict(feeds))
        except Exception as exc:
            raise self._wrap(exc) from exc
        return result

    def _wrap(self, exc: Exception) -> EngineError:
        if self._closed:
            return EngineError("the engine instance is closed; create a new session")
        return EngineError(f"onnxruntime run failed: {str(exc).strip()}")

    def end_profiling(self) -> str:
        """Stop onnxruntime's profiler and return its JSON file's path."""
        return str(self.session.end_profiling())

    def profiling_start_ns(self) -> int:
        """onnxruntime's profiling clock origin (``time.perf_counter_ns``-compatible on Linux)."""
        return int(self.session.get_profiling_start_time_ns())

    def placement(self) -> list[NodePlacement]:
        """Where each node of the optimised graph runs, read from one profiled run.

        A throwaway profiling session with the same options runs once on zeros; its per-node
        events name the op type and provider of every node that ran.
        """
        with tempfile.TemporaryDirectory(prefix="nnperf-placement-") as tmp:
            prefix = os.path.join(tmp, "p")
            engine = OrtEngine()
            probe = engine.load(self._model, self._config, self.spec, profile_prefix=prefix)
            feeds = {d.name: zeros_for(d) for d in probe.inputs}
            probe.run(feeds)
            path = probe.end_profiling()
            probe.close()
            with open(path) as f:
                events = json.load(f)
            for leftover in glob.glob(prefix + "*"):
                os.remove(leftover)
        out: dict[str, NodePlacement] = {}
        for ev in events:
            if ev.get("cat") != "Node":
                continue
            name = str(ev.get("name", ""))
            args = ev.get("args", {})
            if name.endswith("_kernel_time") and "provider" in args:
                node = name[: -len("_kernel_time")]
                out[node] = NodePlacement(
                    node=node, op_type=str(args.get("op_name", "?")), provider=str(args["provider"])
                )
        return list(out.values())

    def close(self) -> None:
        self._closed = True


def zeros_for(desc: TensorDesc, batch: int = 1) -> np.ndarray:
    """A zero tensor matching ``desc`` (symbolic dims: ``batch`` for the first, 1 for others)."""
    shape = [
        d if isinstance(d, int) else (batch if i == 0 else 1) for i, d in enumerate(desc.shape)
    ]
    return np.zeros(shape, dtype=np.dtype(desc.dtype))
