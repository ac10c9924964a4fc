"""Tuning: a measured search over run configurations, with a reusable cache (``nnperf tune``).

MegEngine's fast-run / ``--fitting`` and the "find the worker count and batch size by experiment"
advice of Furiosa and Neuron, done for the user: :func:`tune` measures candidates with
:func:`nnperf.bench.run_benchmark` and returns the winning :class:`~nnperf.types.RunConfig`.
"""

from __future__ import annotations

from nnperf.tune.cache import TUNE_SCHEMA, CacheWarning, cache_key, read_cache, write_cache
from nnperf.tune.search import (
    CandidateResult,
    Measurement,
    Objective,
    TuneResult,
    decide,
    tune,
)
from nnperf.tune.space import Candidate, SearchSpace, batch_axis_free, build_space, device_splits

__all__ = [
    "TUNE_SCHEMA",
    "CacheWarning",
    "Candidate",
    "CandidateResult",
    "Measurement",
    "Objective",
    "SearchSpace",
    "TuneResult",
    "batch_axis_free",
    "build_space",
    "cache_key",
    "decide",
    "device_splits",
    "read_cache",
    "tune",
    "write_cache",
]
