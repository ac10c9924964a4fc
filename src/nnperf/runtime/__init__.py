"""The runtime: sessions, runners and the hooks the profiler uses.

Imports no pandas, HTTP or graph-editing code (checked by ``tests/test_layers.py``).
"""

from __future__ import annotations

from nnperf.runtime.feeds import FeedValidator, Inputs
from nnperf.runtime.hooks import RunEvent, RunObserver, add_observer, remove_observer
from nnperf.runtime.runner import Runner, create_runner
from nnperf.runtime.session import LoadStages, Session, create, resolve_config

__all__ = [
    "FeedValidator",
    "Inputs",
    "LoadStages",
    "RunEvent",
    "RunObserver",
    "Runner",
    "Session",
    "add_observer",
    "create",
    "create_runner",
    "remove_observer",
    "resolve_config",
]
