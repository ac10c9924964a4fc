"""Engines: the seam between nnperf and the inference runtimes it drives."""

from __future__ import annotations

from nnperf.engines.base import Engine, EngineInstance, get_engine

__all__ = ["Engine", "EngineInstance", "get_engine"]
