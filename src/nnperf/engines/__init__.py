"""Engines: the seam between nnperf and the inference runtimes it drives.

Everything engine-specific lives here: the registry, each engine's options type, and the optional
capabilities (operator profiling, graph dumps). Layers above name engines only through
:class:`~nnperf.engines.config.RunConfig` (``engine=`` and ``options=``).
"""

from __future__ import annotations

from nnperf.engines.base import (
    Engine,
    EngineInstance,
    EngineOptions,
    NodePlacement,
    OperatorEvent,
    ProfilingInstance,
    SupportsGraphDump,
    SupportsOperatorProfiling,
)
from nnperf.engines.config import CONFIG_SCHEMA, PRECISIONS, RunConfig
from nnperf.engines.onnxruntime_options import ExecutionMode, GraphLevel, OrtOptions
from nnperf.engines.openvino_options import Hint, OpenVINOOptions
from nnperf.engines.registry import (
    DEFAULT_ENGINE,
    EngineEntry,
    engine_names,
    get_engine,
    installed_engines,
    options_type,
    register_engine,
)

__all__ = [
    "CONFIG_SCHEMA",
    "DEFAULT_ENGINE",
    "PRECISIONS",
    "Engine",
    "EngineEntry",
    "EngineInstance",
    "EngineOptions",
    "ExecutionMode",
    "GraphLevel",
    "Hint",
    "NodePlacement",
    "OpenVINOOptions",
    "OperatorEvent",
    "OrtOptions",
    "ProfilingInstance",
    "RunConfig",
    "SupportsGraphDump",
    "SupportsOperatorProfiling",
    "engine_names",
    "get_engine",
    "installed_engines",
    "options_type",
    "register_engine",
]
