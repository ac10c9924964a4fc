"""Batching in the runtime (kept as one import path): split big user batches
(:mod:`nnperf.runtime.split`), merge small concurrent queries (:mod:`nnperf.runtime.batcher`, its
policy in :mod:`nnperf.runtime.merge`)."""

from __future__ import annotations

from nnperf.runtime.batcher import BatchStats, DynamicBatcher
from nnperf.runtime.split import SplitBatcher, run_split

__all__ = ["BatchStats", "DynamicBatcher", "SplitBatcher", "run_split"]
