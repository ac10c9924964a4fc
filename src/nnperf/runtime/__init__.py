"""The runtime: sessions, executors (runner, batcher, pipeline), queues, asyncio, observers.

Imports no pandas, HTTP or graph-editing code (checked by ``tests/test_layers.py``).
"""

from __future__ import annotations

from nnperf.runtime.aio import AsyncRunner
from nnperf.runtime.batching import BatchStats, DynamicBatcher, SplitBatcher, run_split
from nnperf.runtime.executor import Admitting, Executor, LoopBatching
from nnperf.runtime.feeds import FeedValidator, Inputs
from nnperf.runtime.observers import Observers, RunEvent, RunObserver
from nnperf.runtime.pipeline import Pipeline, StageInfo, load_pipeline
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
    "Admitting",
    "AsyncRunner",
    "BatchStats",
    "DynamicBatcher",
    "Executor",
    "FeedValidator",
    "Inputs",
    "LoadStages",
    "LoopBatching",
    "Observers",
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
    "create",
    "create_queue",
    "create_runner",
    "load_pipeline",
    "resolve_config",
    "run_split",
]
