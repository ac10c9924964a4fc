"""What ran a measurement: machine, OS and library versions."""

from __future__ import annotations

import os
import platform
import sys
from functools import lru_cache
from importlib import metadata
from typing import Any

from nnperf.device import available_cores

__all__ = ["cpu_model", "machine_info"]


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


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """Machine and versions, JSON-ready."""
    versions = {
        name: _version(name)
        for name in ("nnperf", "onnxruntime", "onnxruntime-gpu", "onnx", "numpy")
        if _version(name) is not None
    }
    return {
        "cpu": cpu_model(),
        "cores_available": len(available_cores()),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
    }
