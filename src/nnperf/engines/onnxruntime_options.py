"""onnxruntime's own options (pure Python: reading a config never imports onnxruntime)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from nnperf.engines.base import EngineOptions
from nnperf.errors import InvalidInputError
from nnperf.types import StrEnum

__all__ = ["ExecutionMode", "GraphLevel", "OrtOptions"]


class GraphLevel(StrEnum):
    """Graph optimisation level (onnxruntime's ``GraphOptimizationLevel``)."""

    DISABLED = "disabled"
    BASIC = "basic"
    EXTENDED = "extended"
    ALL = "all"


class ExecutionMode(StrEnum):
    """Node scheduling: sequential, or parallel across independent branches."""

    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


#: Short provider names (as device kinds once spelled them) and onnxruntime's own.
_PROVIDER_SHORT = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}


@dataclass(frozen=True)
class OrtOptions(EngineOptions):
    """How onnxruntime builds its sessions.

    Attributes:
        graph_level: graph optimisation level (default ``all``: fusions and NCHWc layouts).
        prepack: let kernels pre-pack weights at load (MegEngine ``--weight-preprocess``); default on.
        mem_pattern: plan memory from the first run's shapes (default on).
        execution_mode: ``sequential`` (default) or ``parallel`` branches.
        inter_op_threads: threads for ``parallel`` mode; ``None``: onnxruntime's default.
        spinning: let idle intra-op threads spin (lower latency, burns CPU); default on.
        deterministic: ask for deterministic kernels (default off).
        providers: explicit execution providers in priority order (onnxruntime's names, or the
            short ``cpu``, ``cuda``, ``tensorrt``; a comma-joined string is split), e.g.
            ``tensorrt,cuda,cpu`` for TensorRT on a ``cuda:N`` device with CUDA and CPU as
            fallbacks; empty: derived from the device kind (``cuda`` → CUDA then CPU).
        provider_options: per-provider option strings, e.g. ``{"CUDAExecutionProvider":
            {"cudnn_conv_algo_search": "HEURISTIC"}}``.
        optimized_model_path: where onnxruntime writes the optimised graph (offline dump).
        cuda_graph: capture and replay the run as a CUDA graph (CUDA only; needs IO binding).
        cache_dir: where the TensorRT provider keeps its engine and timing caches (built once,
            reused by later sessions); ``None``: no cache. Other providers ignore it.
    """

    engine: ClassVar[str] = "onnxruntime"

    graph_level: GraphLevel = GraphLevel.ALL
    prepack: bool = True
    mem_pattern: bool = True
    execution_mode: ExecutionMode = ExecutionMode.SEQUENTIAL
    inter_op_threads: int | None = None
    spinning: bool = True
    deterministic: bool = False
    providers: tuple[str, ...] = ()
    provider_options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    optimized_model_path: str | None = None
    cuda_graph: bool = False
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "graph_level", GraphLevel(self.graph_level))
        except ValueError:
            raise InvalidInputError(
                f"graph_level: got {self.graph_level!r}, expected one of "
                f"{[g.value for g in GraphLevel]}"
            ) from None
        try:
            object.__setattr__(self, "execution_mode", ExecutionMode(self.execution_mode))
        except ValueError:
            raise InvalidInputError(
                f"execution_mode: got {self.execution_mode!r}, expected 'sequential' or 'parallel'"
            ) from None
        value = self.inter_op_threads
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InvalidInputError(
                f"inter_op_threads: got {value!r}, expected a positive integer or None"
            )
        for name in ("prepack", "mem_pattern", "spinning", "deterministic", "cuda_graph"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(
                    f"{name}: got {getattr(self, name)!r}, expected true or false"
                )
        providers: Any = self.providers
        if isinstance(providers, str):
            providers = [p for p in providers.replace(" ", "").split(",") if p]
        if not isinstance(providers, (list, tuple)) or not all(
            isinstance(p, str) and p for p in providers
        ):
            raise InvalidInputError(
                f"providers: got {self.providers!r}, expected a list of provider names such as "
                "['tensorrt', 'cuda', 'cpu'] or ['CUDAExecutionProvider', 'CPUExecutionProvider']"
            )
        full = tuple(_PROVIDER_SHORT.get(p.lower(), p) for p in providers)
        if len(set(full)) != len(full):
            raise InvalidInputError(f"providers: got {self.providers!r}, which names one twice")
        object.__setattr__(self, "providers", full)
        if not isinstance(self.provider_options, Mapping) or not all(
            isinstance(v, Mapping) for v in self.provider_options.values()
        ):
            raise InvalidInputError(
                f"provider_options: got {self.provider_options!r}, expected a mapping of provider "
                "name to {option: value}"
            )
        object.__setattr__(
            self,
            "provider_options",
            {
                str(k): {str(a): str(b) for a, b in dict(v).items()}
                for k, v in self.provider_options.items()
            },
        )
        if self.optimized_model_path is not None:
            object.__setattr__(self, "optimized_model_path", os.fspath(self.optimized_model_path))
        if self.cache_dir is not None:
            if not isinstance(self.cache_dir, (str, os.PathLike)) or not os.fspath(self.cache_dir):
                raise InvalidInputError(
                    f"cache_dir: got {self.cache_dir!r}, expected a directory path or None"
                )
            object.__setattr__(self, "cache_dir", os.fspath(self.cache_dir))

    def _label(self, name: str, value: Any) -> str:
        if name == "graph_level":
            return f"level={value.value}"
        if name == "execution_mode":
            return str(value.value)
        if name == "provider_options":
            return " ".join(f"{k}={v}" for opts in value.values() for k, v in sorted(opts.items()))
        if name == "cuda_graph":
            return "cuda-graph"
        if name == "providers":
            short = {v: k for k, v in _PROVIDER_SHORT.items() if k != "trt"}
            return "providers=" + ",".join(short.get(p, p) for p in value)
        return super()._label(name, value)
