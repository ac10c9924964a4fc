"""What a tuning run measured and decided: one record per run, per candidate, per search."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nnperf.engines.config import RunConfig
from nnperf.tune.cache import TUNE_SCHEMA
from nnperf.tune.guard import AccuracyCheck
from nnperf.tune.objective import Objective
from nnperf.tune.space import Candidate

__all__ = ["CandidateResult", "Measurement", "TuneResult", "median", "noise"]


@dataclass(frozen=True)
class Measurement:
    """One benchmark run of one candidate, in the seed's three-stage form.

    Attributes:
        value: the objective value (samples/s or ms).
        prepare_ms: engine session creation (graph optimisation, prepacking), all instances.
        warmup_ms: the first warm-up pass over every instance.
        p50_ms: median query latency.
        p99_ms: 99th-percentile query latency.
        samples_per_s: throughput in samples (rows) per second.
        duration_s: measured time of the run.
        wall_s: wall time of the whole run including load and warm-up.
        phase: which search phase took it (``prune``, ``variation``, ``round 1``...).
        peak_rss_mib: peak resident memory of the run, MiB (NaN in caches written before it).
        cpu_percent: process CPU over the measured phase, % of one core (NaN likewise).
    """

    value: float
    prepare_ms: float
    warmup_ms: float
    p50_ms: float
    p99_ms: float
    samples_per_s: float
    duration_s: float
    wall_s: float
    phase: str
    peak_rss_mib: float = math.nan
    cpu_percent: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "value": round(self.value, 6),
            "prepare_ms": round(self.prepare_ms, 3),
            "warmup_ms": round(self.warmup_ms, 3),
            "p50_ms": round(self.p50_ms, 4),
            "p99_ms": round(self.p99_ms, 4),
            "samples_per_s": round(self.samples_per_s, 4),
            "duration_s": round(self.duration_s, 4),
            "wall_s": round(self.wall_s, 4),
            "phase": self.phase,
            "peak_rss_mib": None if math.isnan(self.peak_rss_mib) else round(self.peak_rss_mib, 1),
            "cpu_percent": None if math.isnan(self.cpu_percent) else round(self.cpu_percent, 1),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        """Inverse of :meth:`to_dict` (memory and CPU may be absent or null)."""
        optional = {"peak_rss_mib", "cpu_percent"}
        values = {k: data[k] for k in cls.__dataclass_fields__ if k not in optional}
        for k in optional:
            values[k] = math.nan if data.get(k) is None else float(data[k])
        return cls(**values)


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return float(statistics.median(values)) if values else math.nan


def noise(values: Sequence[float]) -> float:
    """Robust relative spread of repeats: 1.4826 x MAD / median (a sigma for normal noise).

    The median absolute deviation ignores a single run hit by another process, which a range
    would not; 0 with fewer than two values.
    """
    if len(values) < 2:
        return 0.0
    med = median(values)
    if med <= 0:
        return 0.0
    return 1.4826 * median([abs(v - med) for v in values]) / med


@dataclass(frozen=True)
class CandidateResult:
    """Everything measured for one candidate.

    Attributes:
        candidate: the configuration and model variant.
        measurements: every run, in order (pruning runs first).
        status: ``winner``, ``runner-up``, ``finalist``, ``dropped (round N)``, ``pruned``,
            ``failed``, ``rejected`` (below the accuracy guard), or ``not measured`` (time budget
            spent).
        error: the failure message for ``failed`` candidates, the reason for ``rejected`` ones.
        accuracy: its outputs against the f32 reference, when checked.
    """

    candidate: Candidate
    measurements: tuple[Measurement, ...] = ()
    status: str = "not measured"
    error: str | None = None
    accuracy: AccuracyCheck | None = None

    @property
    def label(self) -> str:
        """The candidate's label."""
        return self.candidate.label

    @property
    def ranked(self) -> tuple[Measurement, ...]:
        """The runs that rank it: the halving repeats if it reached halving, else all runs."""
        later = tuple(m for m in self.measurements if m.phase.startswith("round"))
        return later or self.measurements

    @property
    def median(self) -> float:
        """Median objective value over :attr:`ranked` (NaN when unmeasured)."""
        return median([m.value for m in self.ranked])

    @property
    def noise(self) -> float:
        """Relative half-range of :attr:`ranked` values (0 with a single run)."""
        return noise([m.value for m in self.ranked])

    def stage_ms(self, name: str) -> float:
        """Median of a stage (``prepare_ms``, ``warmup_ms``, ``p50_ms``...) over all runs."""
        return median([float(getattr(m, name)) for m in self.measurements])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = self.candidate.to_dict()
        out.update(
            status=self.status,
            error=self.error,
            median=None if math.isnan(self.median) else round(self.median, 6),
            noise=round(self.noise, 6),
            runs=len(self.measurements),
            measurements=[m.to_dict() for m in self.measurements],
            accuracy=self.accuracy.to_dict() if self.accuracy else None,
        )
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            candidate=Candidate.from_dict(data),
            measurements=tuple(Measurement.from_dict(m) for m in data.get("measurements", [])),
            status=str(data.get("status", "not measured")),
            error=data.get("error"),
            accuracy=AccuracyCheck(**data["accuracy"]) if data.get("accuracy") else None,
        )


@dataclass(frozen=True)
class TuneResult:
    """The outcome of a tuning run (or of a cache hit).

    Attributes:
        objective: what was optimised.
        winner: the chosen candidate.
        runner_up: the best other finalist, or ``None`` when only one was measured.
        ratio: winner vs runner-up, in "times better" (>= 1 unless the simpler one won).
        noise: the relative noise the comparison used.
        reason: one sentence: why the winner won.
        candidates: every candidate considered, in the order measured.
        key: the cache key.
        elapsed_s: search time in seconds (the original search's on a cache hit).
        time_budget_s: the budget it ran under.
        from_cache: whether the result was read from the cache file.
        space: the search space, JSON-ready.
        machine: machine and versions.
        model: model name and sha256; ``variants``: variant name -> path or name.
        min_cosine: the accuracy guard's bound (candidates below it were rejected).
    """

    objective: Objective
    winner: CandidateResult
    runner_up: CandidateResult | None
    ratio: float
    noise: float
    reason: str
    candidates: tuple[CandidateResult, ...]
    key: dict[str, Any]
    elapsed_s: float
    time_budget_s: float
    from_cache: bool = False
    space: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, str] = field(default_factory=dict)
    min_cosine: float | None = None

    @property
    def config(self) -> RunConfig:
        """The winning :class:`~nnperf.engines.config.RunConfig`."""
        return self.winner.candidate.config

    def to_dict(self) -> dict[str, Any]:
        """The ``nnperf.tune/1`` JSON; its ``config`` key makes it a valid run-config file."""
        return {
            "schema": TUNE_SCHEMA,
            "key": self.key,
            "config": self.config.to_dict(),
            "variant": self.winner.candidate.variant,
            "objective": self.objective.to_dict(),
            "winner": self.winner.label,
            "runner_up": self.runner_up.label if self.runner_up else None,
            "ratio": None if math.isinf(self.ratio) else round(self.ratio, 6),
            "noise": round(self.noise, 6),
            "reason": self.reason,
            "elapsed_s": round(self.elapsed_s, 3),
            "time_budget_s": self.time_budget_s,
            "model": self.model,
            "variants": self.variants,
            "space": self.space,
            "machine": self.machine,
            "min_cosine": self.min_cosine,
            "candidates": [c.to_dict() for c in self.candidates],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, from_cache: bool = True) -> TuneResult:
        """Rebuild from :meth:`to_dict`'s form (a cache hit)."""
        cands = tuple(CandidateResult.from_dict(c) for c in data.get("candidates", []))
        by_label = {c.label: c for c in cands}
        winner = by_label.get(str(data.get("winner")))
        if winner is None:
            winner = CandidateResult(
                Candidate(RunConfig.from_dict(data["config"]), str(data.get("variant", "base"))),
                status="winner",
            )
        runner = by_label.get(str(data.get("runner_up"))) if data.get("runner_up") else None
        ratio = data.get("ratio")
        return cls(
            objective=Objective.from_dict(data["objective"]),
            winner=winner,
            runner_up=runner,
            ratio=math.inf if ratio is None else float(ratio),
            noise=float(data.get("noise", 0.0)),
            reason=str(data.get("reason", "")),
            candidates=cands,
            key=dict(data["key"]),
            elapsed_s=float(data.get("elapsed_s", 0.0)),
            time_budget_s=float(data.get("time_budget_s", 0.0)),
            from_cache=from_cache,
            space=dict(data.get("space", {})),
            machine=dict(data.get("machine", {})),
            model=dict(data.get("model", {})),
            variants=dict(data.get("variants", {})),
            min_cosine=data.get("min_cosine"),
        )
