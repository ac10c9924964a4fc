"""The runtime: sessions, runners and the hooks the profiler uses.

Imports no pandas, HTTP or graph-editing code (checked by ``tests/test_layers.py``).
"""

from __future__ import annotations

from nnperf.runtime.aio import AsyncRunner
from nnperf.runtime.batching import BatchStats, DynamicBatcher, SplitBatcher, run_split
from nnperf.runtime.feeds import FeedValidator, Inputs
from nnperf.runtime.hooks import RunEvent, RunObserver, add_observer, remove_observer
from nnperf.runtime.pipeline import Pipeline, StageInfo, create_pipeline
from nnperf.runtime.queue import (
    QueryFailedError,
    QueueClosedError,
    Receiver,
    Submitter,
    create_queue,
)
from nnperf.runtime.runner import Runner, create_runner
from nnperf.runtime.session import LoadStages, Session, create, resolve_config

__all__ = [
    "AsyncRunner",
    "BatchStats",
    "DynamicBatcher",
    "FeedValidator",
    "Inputs",
    "LoadStages",
    "Pipeline",
    "QueryFailedError",
    "QueueClosedError",
    "Receiver",
    "RunEvent",
    "RunObserver",
    "Runner",
    "Session",
    "SplitBatcher",
    "StageInfo",
    "Submitter",
    "add_observer",
    "create",
    "create_pipeline",
    "create_queue",
    "create_runner",
    "remove_observer",
    "resolve_config",
    "run_split",
]
