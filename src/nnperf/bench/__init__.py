"""Benchmarks: one load generator (scenarios over any system under test), statistics, reports
(``nnperf bench``)."""

from __future__ import annotations

from nnperf.bench.config import BenchConfig, BenchWarning, Scenario
from nnperf.bench.scenarios import BENCH_SCHEMA, BenchResult, run_benchmark
from nnperf.bench.stats import LatencyStats, Validity

__all__ = [
    "BENCH_SCHEMA",
    "BenchConfig",
    "BenchResult",
    "BenchWarning",
    "LatencyStats",
    "Scenario",
    "Validity",
    "run_benchmark",
]
