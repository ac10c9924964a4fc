"""Benchmarks: scenarios, statistics and reports (``nnperf bench``)."""

from __future__ import annotations

from nnperf.bench.scenarios import BENCH_SCHEMA, BenchResult, Scenario, run_benchmark
from nnperf.bench.stats import LatencyStats

__all__ = ["BENCH_SCHEMA", "BenchResult", "LatencyStats", "Scenario", "run_benchmark"]
