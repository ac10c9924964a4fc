"""nnperf: measure, profile and optimise neural-network inference on real engines."""

from __future__ import annotations

from typing import Any

from nnperf.device import DeviceSpec, InstanceSpec, parse_device
from nnperf.errors import (
    EngineError,
    InvalidInputError,
    MissingDependencyError,
    ModelLoadError,
    NnperfError,
    NotFoundError,
    OverloadedError,
    UnsupportedError,
)
from nnperf.model import ModelBlob, load_model
from nnperf.runtime import (
    AsyncRunner,
    DynamicBatcher,
    Runner,
    Session,
    SplitBatcher,
    create,
    create_pipeline,
    create_queue,
    create_runner,
)
from nnperf.types import ExecutionMode, GraphLevel, RunConfig, TensorDesc

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # nnperf.profile is imported on first use so that `import nnperf` stays light.
    if name == "profile":
        from nnperf.profiler import profile

        return profile
    raise AttributeError(f"module 'nnperf' has no attribute {name!r}")


__all__ = [
    "AsyncRunner",
    "DeviceSpec",
    "DynamicBatcher",
    "EngineError",
    "ExecutionMode",
    "GraphLevel",
    "InstanceSpec",
    "InvalidInputError",
    "MissingDependencyError",
    "ModelBlob",
    "ModelLoadError",
    "NnperfError",
    "NotFoundError",
    "OverloadedError",
    "RunConfig",
    "Runner",
    "Session",
    "SplitBatcher",
    "TensorDesc",
    "UnsupportedError",
    "__version__",
    "create",
    "create_pipeline",
    "create_queue",
    "create_runner",
    "load_model",
    "parse_device",
    "profile",
]
