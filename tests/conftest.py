"""Shared fixtures."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit device or profiler settings from the shell."""
    for name in ("NNPERF_DEVICES", "NNPERF_MAX_INFLIGHT", "NNPERF_PROFILER_OUTPUT_PATH"):
        monkeypatch.delenv(name, raising=False)


def has_gpu() -> bool:
    """Whether onnxruntime can use CUDA here."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers() and bool(
        os.environ.get("NNPERF_TEST_GPU", "1") != "0"
    )
