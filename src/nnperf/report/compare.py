"""``nnperf compare``: run B against run A, metric by metric, with a noise-aware verdict.

For each metric (latency p50, p90, p99, mean; throughput) the table gives A, B, Δ % and a verdict
judged from the raw per-query samples, not from a fixed threshold on the two figures:

* **latency statistics**: a bootstrap 95 % confidence interval of the ratio B ÷ A of that
  statistic (each run resampled on its own, ``n_boot`` times; percentile interval). The verdict
  is *faster* / *slower* when the interval excludes 1 and the change is at least
  ``min_effect``; otherwise *within noise*.
* **the latency distribution as a whole**: a two-sided Mann-Whitney U test (``scipy``); its
  p-value is shown with the probability that a query of B is faster than one of A. The headline
  verdict says *faster* / *slower* when p < ``alpha`` and the p50 changed by at least
  ``min_effect``.
* **throughput** (closed loop: ``workers × batch ÷ mean latency``): the interval of the mean
  latency's ratio, inverted.

``min_effect`` (default 5 %) is there because samples of one run cannot see the noise *between*
runs (another process, frequency, memory placement of a second session): two loads of the same
model measured interleaved in one process differed by 1–3 % in p50 on the development machine,
with thousands of samples that make such a difference "significant". Runs without raw samples (``nnperf.bench/1``, tune candidates) get
"no raw samples: cannot judge noise" and the bare figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from nnperf.errors import InvalidInputError, MissingDependencyError
from nnperf.report.documents import Run
from nnperf.table import Column, Table

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MIN_EFFECT",
    "Comparison",
    "MetricComparison",
    "Verdict",
    "compare_runs",
    "comparison_tables",
    "pair_runs",
]

DEFAULT_ALPHA = 0.01
DEFAULT_MIN_EFFECT = 0.05
#: Samples per run kept for the bootstrap (a random subset of longer runs; the U test uses all).
BOOTSTRAP_MAX_SAMPLES = 20_000
_CHUNK = 100
NO_SAMPLES = "no raw samples: cannot judge noise"


class Verdict(str, Enum):
    """How B compares with A on one metric."""

    FASTER = "faster"
    SLOWER = "slower"
    WITHIN_NOISE = "within noise"
    NO_SAMPLES = NO_SAMPLES
    NOT_COMPARABLE = "not comparable"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class MetricComparison:
    """One metric of B against A.

    Attributes:
        metric: ``p50``, ``p90``, ``p99``, ``mean``, ``throughput``.
        unit: ``ms`` or ``samples/s``.
        a / b: the figures (``None``: the document does not have it).
        ratio: B ÷ A.
        ci_low / ci_high: 95 % interval of the ratio (``None`` without samples).
        verdict: see :class:`Verdict`; for latency "faster" means B's figure is lower.
        higher_is_better: throughput yes, latency no.
    """

    metric: str
    unit: str
    a: float | None
    b: float | None
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: Verdict
    higher_is_better: bool = False

    @property
    def delta_pct(self) -> float | None:
        """(B − A) ÷ A in %."""
        return None if self.ratio is None else 100.0 * (self.ratio - 1.0)


@dataclass(frozen=True)
class Comparison:
    """Run B against run A.

    Attributes:
        a / b: the runs.
        metrics: one :class:`MetricComparison` per metric.
        p_value: two-sided Mann-Whitney U p-value of the latency distributions (``None``
            without samples).
        prob_b_faster: P(a query of B is faster than one of A) (U ÷ (n_A n_B)); 0.5 = same.
        verdict: the headline (from the U test and the p50 change).
        speedup: A's p50 ÷ B's p50 (> 1: B is faster).
        alpha / min_effect: what the verdict used.
        notes: caveats (different models' machines, invalid runs, drift).
    """

    a: Run
    b: Run
    metrics: tuple[MetricComparison, ...]
    p_value: float | None
    prob_b_faster: float | None
    verdict: Verdict
    speedup: float | None
    alpha: float
    min_effect: float
    notes: tuple[str, ...] = ()

    def headline(self) -> str:
        """One sentence: ``B vs A: 1.84x faster (p50 0.0520 → 0.0283 ms; Mann-Whitney p < 0.001)``."""
        p50 = next((m for m in self.metrics if m.metric == "p50"), None)
        figures = ""
        if p50 is not None and p50.a is not None and p50.b is not None:
            figures = f"p50 {p50.a:.4f} → {p50.b:.4f} ms"
        test = "" if self.p_value is None else f"; Mann-Whitney {_p_text(self.p_value)}"
        who = f"{self.b.label} vs {self.a.label}"
        if self.verdict is Verdict.FASTER and self.speedup:
            return f"{who}: {self.speedup:.2f}x faster ({figures}{test})"
        if self.verdict is Verdict.SLOWER and self.speedup:
            return f"{who}: {1 / self.speedup:.2f}x slower ({figures}{test})"
        if self.verdict is Verdict.WITHIN_NOISE and p50 is not None and p50.delta_pct is not None:
            ci = ""
            if p50.ci_low is not None and p50.ci_high is not None:
                ci = f", 95 % CI {100 * (p50.ci_low - 1):+.1f} % … {100 * (p50.ci_high - 1):+.1f} %"
            return f"{who}: within noise (p50 {p50.delta_pct:+.1f} %{ci}{test})"
        return f"{who}: {self.verdict.value} ({figures})"

    def table(self) -> Table:
        """The per-metric table: A, B, Δ %, 95 % interval of Δ, verdict."""
        rows = []
        for m in self.metrics:
            ci = (
                f"{100 * (m.ci_low - 1):+.1f} … {100 * (m.ci_high - 1):+.1f}"
                if m.ci_low is not None and m.ci_high is not None
                else None
            )
            rows.append((m.metric, m.unit, m.a, m.b, m.delta_pct, ci, m.verdict.value))
        if self.p_value is not None:
            rows.append(
                (
                    "distribution",
                    "Mann-Whitney U",
                    None,
                    None,
                    None,
                    f"p={_p_short(self.p_value)}, P(B faster)={self.prob_b_faster:.2f}",
                    self.verdict.value,
                )
            )
        cols = (
            Column("metric"),
            Column("unit"),
            Column("a", "A"),
            Column("b", "B"),
            Column("delta_pct", "Δ", "%", 1),
            Column("ci_pct", "95 % CI of Δ (%)"),
            Column("verdict"),
        )
        notes = (
            f"A = {self.a.label} ({self.a.source or self.a.kind}), "
            f"B = {self.b.label} ({self.b.source or self.b.kind})",
            self.headline(),
            *self.notes,
        )
        return Table(f"{self.b.label} vs {self.a.label}", cols, rows, notes=notes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``nnperf.compare/1`` entries)."""
        return {
            "a": {"label": self.a.label, "source": self.a.source, "schema": self.a.schema},
            "b": {"label": self.b.label, "source": self.b.source, "schema": self.b.schema},
            "verdict": self.verdict.value,
            "headline": self.headline(),
            "speedup": self.speedup,
            "p_value": self.p_value,
            "prob_b_faster": self.prob_b_faster,
            "alpha": self.alpha,
            "min_effect": self.min_effect,
            "metrics": [
                {
                    "metric": m.metric,
                    "unit": m.unit,
                    "a": m.a,
                    "b": m.b,
                    "ratio": m.ratio,
                    "delta_pct": m.delta_pct,
                    "ci_low": m.ci_low,
                    "ci_high": m.ci_high,
                    "verdict": m.verdict.value,
                }
                for m in self.metrics
            ],
            "notes": list(self.notes),
        }


def _p_short(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _bootstrap_ratio(
    a: np.ndarray, b: np.ndarray, stat: str, n_boot: int, rng: np.random.Generator
) -> tuple[float, float]:
    """95 % percentile interval of stat(B) ÷ stat(A), each resampled independently."""

    def dist(x: np.ndarray) -> np.ndarray:
        out = np.empty(n_boot, dtype=np.float64)
        for start in range(0, n_boot, _CHUNK):
            k = min(_CHUNK, n_boot - start)
            idx = rng.integers(0, x.size, size=(k, x.size))
            draw = x[idx]
            if stat == "mean":
                out[start : start + k] = draw.mean(axis=1)
            else:
                out[start : start + k] = np.percentile(draw, float(stat[1:]), axis=1)
        return out

    da, db = dist(a), dist(b)
    ratios = db / np.where(da > 0, da, np.nan)
    lo, hi = np.nanpercentile(ratios, [2.5, 97.5])
    return float(lo), float(hi)


def _subset(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if x.size <= BOOTSTRAP_MAX_SAMPLES:
        return x
    return rng.choice(x, size=BOOTSTRAP_MAX_SAMPLES, replace=False)


def _judge(
    ratio: float, lo: float, hi: float, min_effect: float, *, higher_is_better: bool
) -> Verdict:
    if lo <= 1.0 <= hi or abs(ratio - 1.0) < min_effect:
        return Verdict.WITHIN_NOISE
    better = ratio > 1.0 if higher_is_better else ratio < 1.0
    return Verdict.FASTER if better else Verdict.SLOWER


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a <= 0 or not math.isfinite(a) or not math.isfinite(b):
        return None
    return b / a


def compare_runs(
    a: Run,
    b: Run,
    *,
    alpha: float = DEFAULT_ALPHA,
    min_effect: float = DEFAULT_MIN_EFFECT,
    n_boot: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Compare run ``b`` with run ``a`` (see the module docstring for the statistics).

    Args:
        a: the baseline.
        b: the contender.
        alpha: significance level of the Mann-Whitney U test (default 0.01).
        min_effect: smallest relative change called a difference (default 0.05 = 5 %).
        n_boot: bootstrap resamples per interval (default 1000).
        seed: the bootstrap's random seed.

    Raises:
        InvalidInputError: alpha, min_effect or n_boot out of range.
        MissingDependencyError: both runs have samples and scipy is not installed.
    """
    if not 0 < alpha < 1:
        raise InvalidInputError(f"alpha: got {alpha}, expected 0 < alpha < 1 (e.g. 0.01)")
    if not 0 <= min_effect < 1:
        raise InvalidInputError(f"min_effect: got {min_effect}, expected 0 <= x < 1 (e.g. 0.02)")
    if n_boot < 100:
        raise InvalidInputError(f"n_boot: got {n_boot}, expected >= 100")
    rng = np.random.default_rng(seed)
    sampled = a.has_samples and b.has_samples
    notes: list[str] = []
    for run in (a, b):
        if not run.valid:
            notes.append(f"{run.label} is marked invalid: {'; '.join(run.reasons) or 'no reason'}")
        if not run.has_samples:
            notes.append(f"{run.label}: {NO_SAMPLES} ({run.schema or run.kind} has no raw samples)")
    if sampled and min_effect > 0:
        notes.append(
            f"changes under {100 * min_effect:g} % count as within noise (--min-effect): one "
            "run's samples cannot see session-to-session variation"
        )
    if a.model and b.model and a.model != b.model:
        notes.append(f"different models: {a.model} vs {b.model}")
    if sampled and a.source and b.source and a.source != b.source:
        notes.append(
            "A and B come from separate runs: load drift between them is not in the samples "
            "(measure both interleaved with `nnperf bench A.onnx B.onnx`)"
        )
    sa = sb = None
    if sampled and a.samples_ns is not None and b.samples_ns is not None:
        sa = _subset(a.samples_ns, rng) / 1e6
        sb = _subset(b.samples_ns, rng) / 1e6

    metrics: list[MetricComparison] = []
    intervals: dict[str, tuple[float, float]] = {}
    for stat in ("p50", "p90", "p99", "mean"):
        va, vb = a.latency_ms.get(stat), b.latency_ms.get(stat)
        ratio = _ratio(va, vb)
        if ratio is None:
            verdict, lo, hi = Verdict.NOT_COMPARABLE, None, None
        elif sa is None or sb is None:
            verdict, lo, hi = Verdict.NO_SAMPLES, None, None
        else:
            lo, hi = _bootstrap_ratio(sa, sb, stat, n_boot, rng)
            intervals[stat] = (lo, hi)
            verdict = _judge(ratio, lo, hi, min_effect, higher_is_better=False)
        metrics.append(MetricComparison(stat, "ms", va, vb, ratio, lo, hi, verdict))

    ta, tb = a.throughput, b.throughput
    ratio = _ratio(ta, tb)
    if ratio is None:
        metrics.append(
            MetricComparison("throughput", "samples/s", ta, tb, None, None, None,
                             Verdict.NOT_COMPARABLE, True)
        )  # fmt: skip
    elif "mean" in intervals and _closed_loop(a, b):
        lo_m, hi_m = intervals["mean"]
        mean_ratio = _ratio(a.latency_ms.get("mean"), b.latency_ms.get("mean")) or 1.0
        # Closed loop: throughput ∝ 1 / mean latency, so the relative interval carries over.
        lo, hi = ratio * mean_ratio / hi_m, ratio * mean_ratio / lo_m
        verdict = _judge(ratio, lo, hi, min_effect, higher_is_better=True)
        metrics.append(
            MetricComparison("throughput", "samples/s", ta, tb, ratio, lo, hi, verdict, True)
        )
    else:
        why = Verdict.NO_SAMPLES
        if sampled:
            notes.append(
                "throughput: open-loop or different workers/batch, judged by its figure only"
            )
        metrics.append(
            MetricComparison("throughput", "samples/s", ta, tb, ratio, None, None, why, True)
        )

    p_value = prob = None
    speedup = None
    p50 = metrics[0]
    if p50.ratio:
        speedup = 1.0 / p50.ratio
    if sa is not None and sb is not None:
        try:
            from scipy.stats import mannwhitneyu
        except ImportError:
            raise MissingDependencyError("scipy", "report", "nnperf compare's noise test") from None
        # U of B: the number of (b, a) pairs with b > a; P(B faster) = pairs with b < a.
        assert a.samples_ns is not None and b.samples_ns is not None
        res = mannwhitneyu(b.samples_ns, a.samples_ns, alternative="two-sided")
        p_value = float(res.pvalue)
        prob = 1.0 - float(res.statistic) / (a.samples_ns.size * b.samples_ns.size)
        if p_value < alpha and p50.ratio is not None and abs(p50.ratio - 1.0) >= min_effect:
            verdict = Verdict.FASTER if p50.ratio < 1.0 else Verdict.SLOWER
        else:
            verdict = Verdict.WITHIN_NOISE
    elif p50.ratio is None:
        verdict = Verdict.NOT_COMPARABLE
    else:
        verdict = Verdict.NO_SAMPLES
    return Comparison(
        a=a,
        b=b,
        metrics=tuple(metrics),
        p_value=p_value,
        prob_b_faster=prob,
        verdict=verdict,
        speedup=speedup,
        alpha=alpha,
        min_effect=min_effect,
        notes=tuple(notes),
    )


def _closed_loop(a: Run, b: Run) -> bool:
    """Whether throughput follows 1 / mean latency for both (same scenario, workers, batch)."""
    if a.scenario == "server" or b.scenario == "server":
        return False
    return (a.workers, a.batch_size) == (b.workers, b.batch_size)


def pair_runs(groups: Sequence[Sequence[Run]]) -> list[tuple[Run, Run]]:
    """What to compare: two sweeps point by point (same axis value); otherwise every run
    against the first run of the first document."""
    if len(groups) == 2 and groups[0] and all(r.kind == "sweep point" for g in groups for r in g):
        by_value = {r.label.rpartition("=")[2]: r for r in groups[1]}
        pairs = [
            (r, by_value[v]) for r in groups[0] if (v := r.label.rpartition("=")[2]) in by_value
        ]
        if pairs:
            return pairs
    runs = [r for g in groups for r in g]
    if len(runs) < 2:
        raise InvalidInputError(
            f"compare: got {len(runs)} run(s), expected two or more (two documents, or one "
            "side-by-side / sweep / tune document with several runs)"
        )
    return [(runs[0], r) for r in runs[1:]]


def comparison_tables(comparisons: Sequence[Comparison]) -> list[Table]:
    """One table per comparison, plus a summary table when there are several."""
    tables = [c.table() for c in comparisons]
    if len(comparisons) > 1:
        rows = [
            (c.b.label, c.a.label, c.speedup, c.metrics[0].delta_pct, c.verdict.value)
            for c in comparisons
        ]
        cols = (
            Column("b", "B"),
            Column("a", "A (baseline)"),
            Column("speedup", "p50 speed-up", "x", 2),
            Column("p50_delta_pct", "p50 Δ", "%", 1),
            Column("verdict"),
        )
        tables.insert(0, Table("Summary", cols, rows))
    return tables
