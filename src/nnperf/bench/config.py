"""``BenchConfig``: what the load generator does, for any system under test.

MLPerf LoadGen's ``TestSettings``: the scenario, how long and how much to measure, the offered
load, how many queries are kept outstanding, and the thresholds of the validity verdict. How the
model runs (engine, device, batch size, dims) is the :class:`~nnperf.engines.config.RunConfig`'s
business; where queries go (a Session, an executor, an HTTP server) the system under test's
(:mod:`nnperf.bench.sut`).

Options that do not apply to the chosen scenario are errors, not silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nnperf.errors import InvalidInputError
from nnperf.types import StrEnum

__all__ = [
    "APIS",
    "DEFAULT_DURATION_S",
    "MAX_SAMPLES",
    "MIN_VALID_DURATION_S",
    "BenchConfig",
    "BenchWarning",
    "Scenario",
    "scenario_of",
]

DEFAULT_DURATION_S = 1.0
"""Default minimum measured time: a count of queries alone measures 2 ms on a fast model."""

MIN_VALID_DURATION_S = 1.0
"""A run measured for less than this is INVALID (too short for a stable figure)."""

MAX_SAMPLES = 200_000
"""Raw per-query latencies kept in a result; above that, an evenly thinned subset."""

APIS = ("sync", "queue", "async")
"""How queries reach an executor: blocking calls, the Submitter/Receiver queue, asyncio."""


class BenchWarning(UserWarning):
    """Something about the run the reader should know (oversubscribed cores, ignored settings)."""


class Scenario(StrEnum):
    """Traffic patterns (MLPerf LoadGen's names)."""

    SINGLE_STREAM = "single-stream"
    OFFLINE = "offline"
    SERVER = "server"


def scenario_of(value: Scenario | str) -> Scenario:
    """``value`` as a :class:`Scenario`.

    Raises:
        InvalidInputError: not one of the scenario names.
    """
    try:
        return Scenario(value)
    except ValueError:
        raise InvalidInputError(
            f"scenario: got {value!r}, expected one of {[s.value for s in Scenario]}"
        ) from None


def _positive_int(name: str, value: Any, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name}: got {value!r}, expected an integer >= 1")


def _number(name: str, value: Any, *, low: float, strict: bool) -> None:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and (value > low if strict else value >= low)
    )
    if not ok:
        op = ">" if strict else ">="
        raise InvalidInputError(f"{name}: got {value!r}, expected a number {op} {low:g}")


@dataclass(frozen=True)
class BenchConfig:
    """The load generator's settings.

    Attributes:
        scenario: ``single-stream`` (one query in flight), ``offline`` (``concurrency`` in
            flight, closed loop) or ``server`` (Poisson arrivals at ``target_qps``, open loop).
        queries: minimum measured queries (default 100).
        duration_s: minimum measured time in seconds (default 1.0). Both minimums must be met
            (furiosa-bench's ``-n`` and ``--duration``).
        warmup_iters: warm-up runs per instance before measuring (default 3).
        fake_first: one run on zeros before warm-up, reported as its own stage (default off).
        target_qps: server only (required there): the offered load, queries/s.
        latency_bound_ms: server only: the p99 latency the run must meet to be VALID.
        concurrency: offline: queries kept outstanding (default: the system under test's);
            not for single-stream (always 1), nor for the in-process server scenario.
        workers: host threads running queries, when asked for explicitly (the RunConfig's
            ``workers`` otherwise); not for single-stream.
        api: how queries reach an executor: ``sync`` (default), ``queue`` or ``async``.
        max_batch_size / max_delay_ms: merge concurrent queries into batches (DynamicBatcher);
            ``max_delay_ms`` (default 1.0) only with ``max_batch_size``.
        pipeline_stages: split the model into this many stages, one instance each.
        split_batch: split batching: each query's rows run as chunks of this many rows across
            the instances (AWS Neuron's dynamic batching).
        seed: seed of synthetic inputs and of the arrival schedule (default 0).
        windows: stability windows the measured phase is cut into (default 5).
        stability: the largest spread of per-window throughput still VALID (default 0.10).
    """

    scenario: Scenario = Scenario.SINGLE_STREAM
    queries: int = 100
    duration_s: float = DEFAULT_DURATION_S
    warmup_iters: int = 3
    fake_first: bool = False
    target_qps: float | None = None
    latency_bound_ms: float | None = None
    concurrency: int | None = None
    workers: int | None = None
    api: str = "sync"
    max_batch_size: int | None = None
    max_delay_ms: float | None = None
    pipeline_stages: int | None = None
    split_batch: int | None = None
    seed: int = 0
    windows: int = 5
    stability: float = 0.10

    def __post_init__(self) -> None:
        scen = scenario_of(self.scenario)
        object.__setattr__(self, "scenario", scen)
        _positive_int("queries", self.queries, optional=False)
        _number("duration_s", self.duration_s, low=0.0, strict=False)
        if isinstance(self.warmup_iters, bool) or not isinstance(self.warmup_iters, int):
            raise InvalidInputError(f"warmup_iters: got {self.warmup_iters!r}, expected >= 0")
        if self.warmup_iters < 0:
            raise InvalidInputError(f"warmup_iters: got {self.warmup_iters}, expected >= 0")
        for name in ("concurrency", "workers", "max_batch_size", "pipeline_stages", "split_batch"):
            _positive_int(name, getattr(self, name))
        _positive_int("windows", self.windows, optional=False)
        _number("stability", self.stability, low=0.0, strict=True)
        if self.api not in APIS:
            raise InvalidInputError(f"api: got {self.api!r}, expected one of {list(APIS)}")
        server = scen is Scenario.SERVER
        if server:
            if self.target_qps is None:
                raise InvalidInputError(
                    "the server scenario needs target_qps > 0 (--target-qps): the Poisson "
                    "arrival rate"
                )
            _number("target_qps", self.target_qps, low=0.0, strict=True)
        elif self.target_qps is not None:
            raise InvalidInputError(
                f"target_qps applies to the server scenario (Poisson arrivals); got it with "
                f"{scen.value}. Drop --target-qps or use --scenario server"
            )
        if self.latency_bound_ms is not None:
            if not server:
                raise InvalidInputError(
                    f"latency_bound_ms applies to the server scenario (its p99 verdict); got it "
                    f"with {scen.value}. Drop --latency-bound-ms or use --scenario server"
                )
            _number("latency_bound_ms", self.latency_bound_ms, low=0.0, strict=True)
        if scen is Scenario.SINGLE_STREAM:
            for name in ("concurrency", "workers"):
                if getattr(self, name) is not None:
                    raise InvalidInputError(
                        f"{name} does not apply to single-stream, which keeps one query in "
                        f"flight on one thread; drop --{name} or use --scenario offline"
                    )
        if self.max_delay_ms is not None:
            if self.max_batch_size is None:
                raise InvalidInputError(
                    "max_delay_ms applies to merge batching; give max_batch_size "
                    "(--max-batch-size) too, or drop --max-delay-ms"
                )
            _number("max_delay_ms", self.max_delay_ms, low=0.0, strict=False)
        techniques = [
            n for n in ("max_batch_size", "pipeline_stages", "split_batch") if getattr(self, n)
        ]
        if len(techniques) > 1:
            raise InvalidInputError(
                f"{' and '.join(techniques)} cannot be combined; measure them separately"
            )
        if self.split_batch is not None and (server or self.api != "sync"):
            raise InvalidInputError(
                "split batching is measured with blocking calls (single-stream or offline, "
                "api sync): each call runs its query's chunks across the instances"
            )

    @property
    def delay_ms(self) -> float:
        """The merge batcher's longest wait in ms (1.0 unless set)."""
        return 1.0 if self.max_delay_ms is None else float(self.max_delay_ms)

    def replace(self, **changes: Any) -> BenchConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["scenario"] = self.scenario.value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            InvalidInputError: unknown fields or bad values.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidInputError(
                f"bench config: unknown field(s) {unknown}; expected among {sorted(names)}"
            )
        return cls(**dict(data))
