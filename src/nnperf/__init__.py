"""nnperf: measure, profile and optimise neural-network inference on real engines."""

from __future__ import annotations

import os
from typing import Any

from nnperf.device import DeviceSpec, InstanceSpec, parse_device
from nnperf.engines import (
    ExecutionMode,
    GraphLevel,
    OpenVINOOptions,
    OrtOptions,
    RunConfig,
    engine_names,
    installed_engines,
)
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
    create_queue,
    create_runner,
)
from nnperf.runtime.observers import PROFILER_OUTPUT_ENV
from nnperf.types import TensorDesc
from nnperf.version import __version__


def __getattr__(name: str) -> Any:
    # nnperf.profile, nnperf.create_pipeline and nnperf.create_executor (graph tooling: a pipeline
    # splits the model) are imported on first use so that `import nnperf` stays light.
    if name == "profile":
        from nnperf.profiler import profile

        return profile
    if name == "create_pipeline":
        from nnperf.optimize.partition import create_pipeline

        return create_pipeline
    if name == "create_executor":
        from nnperf.deploy import create_executor

        return create_executor
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
    "OpenVINOOptions",
    "OrtOptions",
    "OverloadedError",
    "RunConfig",
    "Runner",
    "Session",
    "SplitBatcher",
    "TensorDesc",
    "UnsupportedError",
    "__version__",
    "create",
    "create_executor",
    "create_pipeline",
    "create_queue",
    "create_runner",
    "engine_names",
    "installed_engines",
    "load_model",
    "parse_device",
    "profile",
]

# ``NNPERF_PROFILER_OUTPUT_PATH`` traces any program that uses nnperf with no code change (the
# seed's ``FURIOSA_PROFILER_OUTPUT_PATH``). Started here, at the top of the package, so the
# runtime never imports the profiler.
if os.environ.get(PROFILER_OUTPUT_ENV):
    from nnperf.profiler.recorder import start_env_profiler

    try:
        start_env_profiler()
    except NnperfError as _exc:  # one line, not a traceback at import; nothing is traced
        import sys as _sys

        print(f"nnperf: error: {_exc}", file=_sys.stderr)
