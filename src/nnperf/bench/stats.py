"""Latency statistics: the percentiles every nnperf report prints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nnperf.errors import InvalidInputError

__all__ = ["LatencyStats", "PERCENTILES"]

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True)
class LatencyStats:
    """Latency summary in milliseconds.

    ``stddev_ms`` is the sample standard deviation (n − 1), as MegEngine's ``load_and_run``
    prints; percentiles use numpy's default (linear) interpolation.
    """

    count: int
    min_ms: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p99_9_ms: float
    max_ms: float
    stddev_ms: float

    @classmethod
    def from_ns(cls, durations_ns: Sequence[int] | np.ndarray) -> LatencyStats:
        """Summarise durations given in nanoseconds.

        Raises:
            InvalidInputError: no durations.
        """
        arr = np.asarray(durations_ns, dtype=np.float64)
        if arr.size == 0:
            raise InvalidInputError("latency statistics need at least one measured query; got 0")
        ms = arr / 1e6
        p50, p90, p95, p99, p999 = np.percentile(ms, PERCENTILES)
        return cls(
            count=int(ms.size),
            min_ms=float(ms.min()),
            mean_ms=float(ms.mean()),
            p50_ms=float(p50),
            p90_ms=float(p90),
            p95_ms=float(p95),
            p99_ms=float(p99),
            p99_9_ms=float(p999),
            max_ms=float(ms.max()),
            stddev_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with the field names of ``nnperf.bench/1`` (``p99.9`` spelled with a dot)."""
        d = asdict(self)
        out: dict[str, Any] = {"count": d.pop("count")}
        for key, value in d.items():
            name = key.removesuffix("_ms").replace("p99_9", "p99.9")
            out[name] = round(float(value), 6)
        return out
