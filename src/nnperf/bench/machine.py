"""What ran a measurement: machine, OS and library versions."""

from __future__ import annotations

import os
import platform
import sys
from functools import lru_cache
from importlib import metadata
from typing import Any

from nnperf.device import available_cores

__all__ = ["cpu_features", "cpu_model", "machine_info"]

# The instruction-set extensions that decide which kernels engines pick (int8 / bf16 / fp16).
_FEATURES = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
    "amx_fp16",
)


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (falls back to ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def cpu_features() -> tuple[str, ...]:
    """Which of the int8/bf16/fp16-relevant instruction sets the CPU reports (``/proc/cpuinfo``
    flags, e.g. ``amx_int8``); empty where the flags cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(f for f in _FEATURES if f in flags)
    except OSError:
        pass
    return ()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """Machine and versions, JSON-ready."""
    versions = {
        name: _version(name)
        for name in ("nnperf", "onnxruntime", "onnxruntime-gpu", "openvino", "onnx", "numpy")
        if _version(name) is not None
    }
    return {
        "cpu": cpu_model(),
        "cpu_features": list(cpu_features()),
        "cores_available": len(available_cores()),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
    }
