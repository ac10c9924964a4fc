"""What a tuning run optimises: latency (single-stream) or throughput (offline, or within a p99
budget in the server scenario)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nnperf.bench.scenarios import BenchResult
from nnperf.errors import InvalidInputError

__all__ = ["Objective"]


@dataclass(frozen=True)
class Objective:
    """What to optimise.

    Attributes:
        kind: ``"latency"`` (single-stream; lower is better) or ``"throughput"`` (samples/s;
            offline, or the server scenario when ``latency_budget_ms`` is given).
        percentile: latency percentile to minimise, 50 or 99 (default 50).
        latency_budget_ms: throughput only: the p99 latency the server scenario must stay within.
    """

    kind: str = "throughput"
    percentile: int = 50
    latency_budget_ms: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("latency", "throughput"):
            raise InvalidInputError(
                f"objective: got {self.kind!r}, expected 'latency' or 'throughput'"
            )
        if self.percentile not in (50, 99):
            raise InvalidInputError(f"percentile: got {self.percentile!r}, expected 50 or 99")
        if self.latency_budget_ms is not None:
            if self.kind != "throughput":
                raise InvalidInputError(
                    "latency_budget_ms applies to the throughput objective (throughput within a "
                    "p99 budget); got it with objective 'latency'. Drop --latency-budget-ms or "
                    "use --objective throughput"
                )
            if not self.latency_budget_ms > 0 or not math.isfinite(self.latency_budget_ms):
                raise InvalidInputError(
                    f"latency_budget_ms: got {self.latency_budget_ms!r}, expected a number > 0"
                )

    @property
    def scenario(self) -> str:
        """The benchmark scenario that measures this objective."""
        if self.kind == "latency":
            return "single-stream"
        return "offline" if self.latency_budget_ms is None else "server"

    @property
    def higher_is_better(self) -> bool:
        """Throughput: higher wins; latency: lower wins."""
        return self.kind == "throughput"

    @property
    def unit(self) -> str:
        """Unit of the objective value."""
        return "samples/s" if self.kind == "throughput" else "ms"

    def describe(self) -> str:
        """One line, e.g. ``throughput (offline, samples/s)``."""
        if self.kind == "latency":
            return f"latency p{self.percentile} (single-stream, ms; lower is better)"
        if self.latency_budget_ms is None:
            return "throughput (offline, samples/s; higher is better)"
        return (
            f"throughput within p99 <= {self.latency_budget_ms:g} ms "
            "(server scenario, samples/s; higher is better)"
        )

    def value(self, result: BenchResult) -> float:
        """The objective value of one offline or single-stream result."""
        if self.kind == "latency":
            return result.latency.p50_ms if self.percentile == 50 else result.latency.p99_ms
        return result.throughput_samples_per_s

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is better than ``b``."""
        return a > b if self.higher_is_better else a < b

    def ratio(self, best: float, other: float) -> float:
        """How many times better ``best`` is than ``other`` (>= 1 when it is better)."""
        if self.higher_is_better:
            return best / other if other > 0 else math.inf
        return other / best if best > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (part of the cache key)."""
        return {
            "kind": self.kind,
            "percentile": self.percentile,
            "latency_budget_ms": self.latency_budget_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Objective:
        """Inverse of :meth:`to_dict`."""
        return cls(
            kind=str(data["kind"]),
            percentile=int(data.get("percentile", 50)),
            latency_budget_ms=data.get("latency_budget_ms"),
        )
