"""Statistics of a measured run: latency percentiles, stability windows, the validity verdict.

A percentile is shown only when there are enough samples to observe it: the p-th percentile needs
at least ``1 / (1 - p)`` samples (p99: 100, p99.9: 1000); below that its JSON value is ``null``
and the text says ``n/a (< 1000 samples)``. The interpolated value is still kept on
:class:`LatencyStats` for callers that rank configurations by it (the tuner), which is their
call to make.

Stability follows Triton perf_analyzer's measurement windows: the measured phase is cut into
equal time windows and the run is stable when the completed-query rate of every window is within
a tolerance of the others (perf_analyzer's ``-s``, default 10 %).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnperf.errors import InvalidInputError

__all__ = [
    "PERCENTILES",
    "LatencyStats",
    "Stability",
    "Validity",
    "min_samples",
    "stability",
    "thin_samples",
]

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


def min_samples(percentile: float) -> int:
    """Samples needed before ``percentile`` is reported: ``ceil(1 / (1 - p / 100))``
    (p50: 2, p90: 10, p95: 20, p99: 100, p99.9: 1000)."""
    return math.ceil(round(1.0 / (1.0 - percentile / 100.0), 6))


def _key(percentile: float) -> str:
    """``p50``, ``p99_9``: JSON keys without dots."""
    return "p" + f"{percentile:g}".replace(".", "_")


@dataclass(frozen=True)
class LatencyStats:
    """Latency summary in milliseconds.

    ``stddev_ms`` is the sample standard deviation (n − 1), as MegEngine's ``load_and_run``
    prints; percentiles use numpy's default (linear) interpolation. Use :meth:`supported` (or
    :meth:`to_dict`, which writes ``null``) before trusting a high percentile of a short run.
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

    @property
    def cv(self) -> float:
        """Coefficient of variation: stddev ÷ mean (0 when the mean is 0)."""
        return self.stddev_ms / self.mean_ms if self.mean_ms > 0 else 0.0

    def supported(self, percentile: float) -> bool:
        """Whether there are enough samples to report ``percentile`` (see :func:`min_samples`)."""
        return self.count >= min_samples(percentile)

    def percentile_ms(self, percentile: float) -> float | None:
        """One of :data:`PERCENTILES` in ms, ``None`` with too few samples for it."""
        if not self.supported(percentile):
            return None
        return float(getattr(self, _key(percentile) + "_ms"))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``nnperf.bench/2``): ``n``, ``min``, ``mean``, ``p50`` … ``p99_9``, ``max``,
        ``stddev``; a percentile is ``null`` with too few samples for it (the coefficient of
        variation is reported with the stability windows)."""
        out: dict[str, Any] = {
            "n": self.count,
            "min": round(self.min_ms, 6),
            "mean": round(self.mean_ms, 6),
        }
        for p in PERCENTILES:
            value = self.percentile_ms(p)
            out[_key(p)] = None if value is None else round(value, 6)
        out.update(max=round(self.max_ms, 6), stddev=round(self.stddev_ms, 6))
        return out

    def render_percentiles(self) -> str:
        """``p50 0.0312  p90 …  p99.9 n/a (< 1000 samples)`` for the text report."""
        parts = []
        for p in PERCENTILES:
            value = self.percentile_ms(p)
            label = f"p{p:g}"
            parts.append(
                f"{label} {value:.4f}"
                if value is not None
                else f"{label} n/a (< {min_samples(p)} samples)"
            )
        return "  ".join(parts)


@dataclass(frozen=True)
class Stability:
    """The windowed stability check of one run.

    Attributes:
        windows: windows the measured phase was cut into (0 when too few queries).
        window_s: length of each window in seconds.
        qps: completed queries per second in each window.
        spread: (max - min) ÷ median of ``qps`` (0 with fewer than two windows).
        tolerance: the largest spread still called stable.
        stable: whether the run is stable.
        reason: why not (empty when stable).
    """

    windows: int
    window_s: float
    qps: tuple[float, ...]
    spread: float
    tolerance: float
    stable: bool
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "windows": self.windows,
            "window_s": round(self.window_s, 6),
            "qps": [round(q, 3) for q in self.qps],
            "spread": round(self.spread, 6),
            "tolerance": self.tolerance,
            "stable": self.stable,
        }


MIN_PER_WINDOW = 10
"""Queries a window must hold on average for its rate to mean anything."""


def stability(
    end_ns: np.ndarray, *, start_ns: int, wall_ns: int, windows: int = 5, tolerance: float = 0.10
) -> Stability:
    """Cut ``[start_ns, start_ns + wall_ns)`` into ``windows`` equal windows and compare the
    completed-query rate of each (perf_analyzer's stability windows).

    Fewer windows are used when the run has fewer than :data:`MIN_PER_WINDOW` queries per window;
    with fewer than 3 windows the run cannot be judged stable.
    """
    n = int(end_ns.size)
    k = min(windows, n // MIN_PER_WINDOW)
    if k < 3 or wall_ns <= 0:
        return Stability(
            windows=0,
            window_s=0.0,
            qps=(),
            spread=0.0,
            tolerance=tolerance,
            stable=False,
            reason=f"{n} queries are too few to judge stability (need {3 * MIN_PER_WINDOW} for "
            "3 windows; raise --duration or --queries)",
        )
    width = wall_ns / k
    index = np.clip(((end_ns - start_ns) / width).astype(np.int64), 0, k - 1)
    counts = np.bincount(index, minlength=k)
    qps = tuple(float(c) / (width / 1e9) for c in counts)
    med = float(np.median(qps))
    spread = (max(qps) - min(qps)) / med if med > 0 else math.inf
    stable = spread <= tolerance
    reason = (
        ""
        if stable
        else f"unstable: completed queries/s over {k} windows of {width / 1e9:.3g} s ranged "
        f"{min(qps):,.1f}-{max(qps):,.1f} (spread {100 * spread:.1f} % > {100 * tolerance:g} %); "
        "something else may have used the cores, or the system had not reached a steady state"
    )
    return Stability(
        windows=k,
        window_s=width / 1e9,
        qps=qps,
        spread=spread,
        tolerance=tolerance,
        stable=stable,
        reason=reason,
    )


@dataclass(frozen=True)
class Validity:
    """MLPerf LoadGen's VALID / INVALID verdict, with every reason.

    Attributes:
        valid: no reason found.
        reasons: one sentence each (measured too briefly, unstable, failed queries, did not
            keep up with the offered load, over the latency bound, interrupted).
    """

    valid: bool
    reasons: tuple[str, ...] = ()

    @classmethod
    def of(cls, reasons: Sequence[str]) -> Validity:
        """VALID when ``reasons`` is empty."""
        return cls(valid=not reasons, reasons=tuple(reasons))

    def to_dict(self) -> dict[str, Any]:
        """``{"valid": bool, "reasons": [...]}``."""
        return {"valid": self.valid, "reasons": list(self.reasons)}


def thin_samples(latency_ns: np.ndarray, cap: int) -> tuple[list[int], int]:
    """At most ``cap`` latencies, evenly thinned in completion order, and the stride used
    (1: every sample kept)."""
    n = int(latency_ns.size)
    if n <= cap:
        return [int(x) for x in latency_ns], 1
    stride = math.ceil(n / cap)
    return [int(x) for x in latency_ns[::stride]], stride
