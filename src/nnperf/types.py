"""Value types shared by every layer: tensor descriptions and the run configuration."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from nnperf.device import parse_device
from nnperf.errors import InvalidInputError

__all__ = [
    "Dim",
    "ExecutionMode",
    "GraphLevel",
    "RunConfig",
    "TensorDesc",
    "dtype_from_onnx",
    "guess_layout",
]

Dim = int | str | None
"""A dimension: a fixed size, a symbolic name (``"batch"``) or unknown (``None``)."""


class _StrEnum(str, Enum):
    # enum.StrEnum is Python 3.11+; the package supports 3.10.
    def __str__(self) -> str:
        return str(self.value)


class GraphLevel(_StrEnum):
    """Graph optimisation level (onnxruntime's ``GraphOptimizationLevel``)."""

    DISABLED = "disabled"
    BASIC = "basic"
    EXTENDED = "extended"
    ALL = "all"


class ExecutionMode(_StrEnum):
    """Node scheduling: sequential, or parallel across independent branches."""

    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


_ONNX_TO_NUMPY: dict[str, str] = {
    "float": "float32",
    "float16": "float16",
    "double": "float64",
    "bfloat16": "bfloat16",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
    "bool": "bool",
    "string": "object",
}


def dtype_from_onnx(type_str: str) -> str:
    """Map onnxruntime's ``tensor(float)`` style type names to numpy dtype names.

    Raises:
        InvalidInputError: for non-tensor types (sequences, maps), which nnperf does not feed.
    """
    if type_str.startswith("tensor(") and type_str.endswith(")"):
        inner = type_str[len("tensor(") : -1]
        if inner in _ONNX_TO_NUMPY:
            return _ONNX_TO_NUMPY[inner]
    raise InvalidInputError(
        f"tensor type {type_str!r} is not supported; expected a tensor of a numeric or bool type"
    )


def guess_layout(shape: tuple[Dim, ...]) -> str:
    """Guess a layout name from a shape: ``NCHW``/``NHWC`` for images, ``NC``, ``NL``, ``NLC``..."""
    rank = len(shape)
    if rank == 4:
        c1, c3 = shape[1], shape[3]
        if isinstance(c3, int) and c3 in (1, 3, 4) and not (isinstance(c1, int) and c1 <= 4):
            return "NHWC"
        return "NCHW"
    return {0: "scalar", 1: "N", 2: "NC", 3: "NLC", 5: "NCDHW"}.get(rank, f"rank{rank}")


@dataclass(frozen=True)
class TensorDesc:
    """Name, shape and dtype of a model input or output.

    Attributes:
        name: the tensor name in the graph.
        shape: dimensions; symbolic names (``"batch"``) or ``None`` where not fixed.
        dtype: numpy dtype name (``"float32"``, ``"int64"``, ``"uint8"``...).
        layout: a guess from the shape (``NCHW``, ``NHWC``, ``NC``...).
    """

    name: str
    shape: tuple[Dim, ...]
    dtype: str
    layout: str = ""

    def __post_init__(self) -> None:
        if not self.layout:
            object.__setattr__(self, "layout", guess_layout(self.shape))

    @property
    def is_static(self) -> bool:
        """Whether every dimension is a fixed size."""
        return all(isinstance(d, int) for d in self.shape)

    @property
    def numel(self) -> int | None:
        """Element count when static, else ``None``."""
        if not self.is_static:
            return None
        return int(np.prod([int(d) for d in self.shape if d is not None], dtype=np.int64))

    @property
    def size_bytes(self) -> int | None:
        """Size in bytes when static, else ``None``."""
        n = self.numel
        return None if n is None else n * np.dtype(self.dtype).itemsize

    def shape_str(self) -> str:
        """The shape as text, symbolic dims by name: ``(batch, 3, 224, 224)``."""
        parts = ["?" if d is None else str(d) for d in self.shape]
        return "(" + ", ".join(parts) + (",)" if len(parts) == 1 else ")")

    def __str__(self) -> str:
        return f"{self.name}: {self.dtype} {self.shape_str()} {self.layout}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "layout": self.layout,
        }


_CONFIG_SCHEMA = "nnperf.runconfig/1"


@dataclass(frozen=True)
class RunConfig:
    """How to run a model: the one serialisable description read by ``bench``, ``create`` and ``serve``.

    Attributes:
        device: device string (see :mod:`nnperf.device`); ``None``: ``$NNPERF_DEVICES``, else ``cpu``.
        workers: host threads feeding the instances (Runner); ``None``: one per instance.
        batch_size: fix the model's free batch dimension to this size; ``None``: keep it free.
        graph_level: graph optimisation level (default ``all``: fusions and NCHWc layouts).
        prepack: let kernels pre-pack weights at load (MegEngine ``--weight-preprocess``); default on.
        mem_pattern: plan memory from the first run's shapes (default on).
        execution_mode: ``sequential`` (default) or ``parallel`` branches.
        inter_op_threads: threads for ``parallel`` mode; ``None``: engine default.
        spinning: let idle intra-op threads spin (lower latency, burns CPU); default on.
        deterministic: ask the engine for deterministic kernels (default off).
        providers: explicit execution providers in priority order; empty: derived from ``device``.
        provider_options: per-provider option strings, e.g. ``{"CUDAExecutionProvider":
            {"cudnn_conv_algo_search": "HEURISTIC"}}``.
        optimized_model_path: where the engine writes the optimised graph (offline dump).
        cuda_graph: capture and replay the run as a CUDA graph (GPU only).
        max_inflight: bound on queries inside the runtime; ``None``: instances + 3.
    """

    device: str | None = None
    workers: int | None = None
    batch_size: int | None = None
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
    max_inflight: int | None = None

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
        for name in ("workers", "batch_size", "inter_op_threads", "max_inflight"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise InvalidInputError(
                    f"{name}: got {value!r}, expected a positive integer or None"
                )
        for name in ("prepack", "mem_pattern", "spinning", "deterministic", "cuda_graph"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(
                    f"{name}: got {getattr(self, name)!r}, expected true or false"
                )
        if self.device is not None:
            object.__setattr__(self, "device", parse_device(self.device).text)
        if isinstance(self.providers, str) or not all(isinstance(p, str) for p in self.providers):
            raise InvalidInputError(
                f"providers: got {self.providers!r}, expected a list of provider names such as "
                "['CUDAExecutionProvider', 'CPUExecutionProvider']"
            )
        object.__setattr__(self, "providers", tuple(self.providers))
        if not isinstance(self.provider_options, Mapping):
            raise InvalidInputError(
                f"provider_options: got {type(self.provider_options).__name__}, expected a mapping "
                "of provider name to {option: value}"
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

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed (validated again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InvalidInputError(
                f"RunConfig has no field(s) {sorted(unknown)}; expected among "
                f"{[f.name for f in dataclasses.fields(self)]}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with its schema tag."""
        out: dict[str, Any] = {"schema": _CONFIG_SCHEMA}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Enum):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = {k: dict(v) for k, v in value.items()}
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Build from :meth:`to_dict`'s form; unknown keys and wrong schemas are errors."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(
                f"run config: got {type(data).__name__}, expected a JSON object"
            )
        body = dict(data)
        schema = body.pop("schema", _CONFIG_SCHEMA)
        if schema != _CONFIG_SCHEMA:
            raise InvalidInputError(
                f"run config: schema {schema!r} is not supported; expected {_CONFIG_SCHEMA!r}"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(body) - names)
        if unknown:
            raise InvalidInputError(
                f"run config: unknown field(s) {unknown}; expected among {sorted(names)}"
            )
        if "providers" in body and isinstance(body["providers"], list):
            body["providers"] = tuple(body["providers"])
        return cls(**body)

    def to_json(self) -> str:
        """The config as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RunConfig:
        """Read a config file written by :meth:`save` or by ``nnperf tune`` (its ``config`` key).

        Raises:
            InvalidInputError: the file is missing, not JSON, or not a run config.
        """
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise InvalidInputError(
                f"config file {str(p)!r} does not exist; expected a JSON file written by "
                "'nnperf tune' or RunConfig.save()"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"config file {str(p)!r} is not valid JSON: {exc}") from None
        if isinstance(data, dict) and "config" in data and isinstance(data["config"], dict):
            data = data["config"]
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the config as JSON."""
        Path(path).write_text(self.to_json() + "\n")
