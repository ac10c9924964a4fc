"""The measured search: cheap pruning runs, then successive halving with repeats, noise-aware.

Every number comes from :func:`nnperf.bench.run_benchmark` on the real engine; the tuner owns no
timing loop. The model is loaded once and the same :class:`~nnperf.model.ModelBlob` is handed to
every candidate, so zoo models are not rebuilt per candidate.

The search, within ``time_budget_s``:

1. **Prune**: one short run of every primary point (device split x workers x batch x variant)
   with the engine knobs at their defaults.
2. **Variations**: around the best primary points, one short run per secondary knob moved off its
   default (graph level, prepacking, memory pattern, execution mode; cuDNN search, CUDA graph).
3. **Successive halving**: the best few go through rounds of interleaved repeats (A B C, A B C...),
   each round's runs longer than the last; the better half by median goes on, until at most three
   finalists remain; they, and the simpler neighbour of each (same device split, every other
   knob at its default), are measured with four interleaved repeats.
4. **Decision**: the best finalist wins only if it beats the runner-up by more than the measured
   noise (the robust spread of the side-by-side repeat ratios, at least ``min_noise``);
   otherwise the simplest configuration within noise of the best wins.

On a shared machine the medians of interleaved repeats are what keeps the answer stable; the noise
band is what keeps it honest.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnperf.bench.machine import machine_info
from nnperf.bench.scenarios import BenchResult, run_benchmark
from nnperf.errors import InvalidInputError, NnperfError
from nnperf.model import ModelBlob, ModelSource, load_model
from nnperf.tune.cache import TUNE_SCHEMA, cache_key, read_cache, write_cache
from nnperf.tune.space import BASE_VARIANT, Candidate, SearchSpace, build_space

__all__ = [
    "CandidateResult",
    "Measurement",
    "Objective",
    "ProgressFn",
    "TuneResult",
    "decide",
    "tune",
]

ProgressFn = Callable[[float, float, str], None]
"""progress(elapsed_s, time_budget_s, what is being measured)."""

_MIN_RUN_S = 0.05
_MAX_PRUNE_RUN_S = 1.0
# The Python Poisson load generator issues a few thousand queries/s at most with honest timing;
# offering more only builds a backlog that takes far longer than the run to drain.
_MAX_SERVER_QPS = 2000.0


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


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def _noise(values: Sequence[float]) -> float:
    """Robust relative spread of repeats: 1.4826 x MAD / median (a sigma for normal noise).

    The median absolute deviation ignores a single run hit by another process, which a range
    would not; 0 with fewer than two values.
    """
    if len(values) < 2:
        return 0.0
    med = _median(values)
    if med <= 0:
        return 0.0
    return 1.4826 * _median([abs(v - med) for v in values]) / med


@dataclass(frozen=True)
class CandidateResult:
    """Everything measured for one candidate.

    Attributes:
        candidate: the configuration and model variant.
        measurements: every run, in order (pruning runs first).
        status: ``winner``, ``runner-up``, ``finalist``, ``dropped (round N)``, ``pruned``,
            ``failed``, or ``not measured`` (time budget spent).
        error: the failure message for ``failed`` candidates.
    """

    candidate: Candidate
    measurements: tuple[Measurement, ...] = ()
    status: str = "not measured"
    error: str | None = None

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
        return _median([m.value for m in self.ranked])

    @property
    def noise(self) -> float:
        """Relative half-range of :attr:`ranked` values (0 with a single run)."""
        return _noise([m.value for m in self.ranked])

    def stage_ms(self, name: str) -> float:
        """Median of a stage (``prepare_ms``, ``warmup_ms``, ``p50_ms``...) over all runs."""
        return _median([float(getattr(m, name)) for m in self.measurements])

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

    @property
    def config(self) -> Any:
        """The winning :class:`~nnperf.types.RunConfig`."""
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
            "candidates": [c.to_dict() for c in self.candidates],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, from_cache: bool = True) -> TuneResult:
        """Rebuild from :meth:`to_dict`'s form (a cache hit)."""
        cands = tuple(CandidateResult.from_dict(c) for c in data.get("candidates", []))
        by_label = {c.label: c for c in cands}
        winner = by_label.get(str(data.get("winner")))
        if winner is None:
            from nnperf.engines.config import RunConfig

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
        )


def decide(
    finalists: Sequence[CandidateResult], objective: Objective, *, min_noise: float = 0.02
) -> tuple[CandidateResult, CandidateResult | None, float, float, str]:
    """Pick the winner among measured finalists, noise-aware.

    The best median wins outright only if it beats the runner-up by more than the noise (the larger
    robust spread of their side-by-side repeat ratios, at least ``min_noise``). Otherwise every finalist within
    noise of the best is a tie and the simplest of them (fewest knobs off their defaults) wins.

    Returns:
        ``(winner, runner_up, ratio, noise, reason)``; ``ratio`` is the best median over the
        runner-up's in "times better".

    Raises:
        InvalidInputError: no finalist has a measurement.
    """
    measured = [c for c in finalists if c.ranked and not math.isnan(c.median)]
    if not measured:
        raise InvalidInputError(
            "no candidate could be measured; expected at least one successful run (see the "
            "failed candidates' errors, or raise --time-budget-s)"
        )
    sign = -1.0 if objective.higher_is_better else 1.0
    order = sorted(measured, key=lambda c: (sign * c.median, c.candidate.complexity))
    best = order[0]
    unit = objective.unit
    if len(order) == 1:
        return best, None, math.inf, best.noise, "the only candidate measured"
    runner = order[1]
    ratio, noise = _compare(best, runner, objective, min_noise)
    if ratio - 1.0 > noise:
        reason = (
            f"{best.label} ({best.median:,.4g} {unit}) beats the runner-up {runner.label} "
            f"({runner.median:,.4g} {unit}) by {ratio:.3f}x, more than the measured noise "
            f"(±{100 * noise:.1f} %)"
        )
        return best, runner, ratio, noise, reason
    ties = [best]
    for c in order[1:]:
        r_c, n_c = _compare(best, c, objective, min_noise)
        if r_c - 1.0 <= n_c:
            ties.append(c)
    simplest = min(ties, key=lambda c: (c.candidate.complexity, sign * c.median))
    if simplest is best:
        reason = (
            f"{best.label} ({best.median:,.4g} {unit}) is within noise (±{100 * noise:.1f} %) of "
            f"{runner.label} ({ratio:.3f}x) and is the simplest of the tied configurations"
        )
        return best, runner, ratio, noise, reason
    r, n = _compare(best, simplest, objective, min_noise)
    reason = (
        f"the best median, {best.label} ({best.median:,.4g} {unit}), measured {r:.3f}x "
        f"{simplest.label} ({simplest.median:,.4g} {unit}) side by side, within the measured "
        f"noise (±{100 * n:.1f} %); the simpler configuration wins"
    )
    return simplest, best, 1.0 / r if r > 0 else 0.0, n, reason


def _paired(c: CandidateResult, phase: str) -> list[float]:
    return [m.value for m in c.measurements if m.phase == phase]


def _compare(
    best: CandidateResult, other: CandidateResult, objective: Objective, min_noise: float
) -> tuple[float, float]:
    """How many times better ``best`` is than ``other``, and the relative noise of that ratio.

    When both were measured in the same interleaved round (A B A B...), the ratio is the median
    of the per-repeat ratios and the noise their robust spread: runs taken side by side share the
    machine's load at that moment, so a neighbour's burst cancels out. Otherwise: the ratio of
    medians, and the larger of the two candidates' noise.
    """
    phase = best.ranked[-1].phase if best.ranked else ""
    a, b = _paired(best, phase), _paired(other, phase)
    n = min(len(a), len(b))
    if phase.startswith("round") and n >= 2:
        ratios = [objective.ratio(x, y) for x, y in zip(a[:n], b[:n])]
        return _median(ratios), max(_noise(ratios), min_noise)
    ratio = objective.ratio(best.median, other.median)
    return ratio, max(best.noise, other.noise, min_noise)


class _Search:
    """Mutable state of one search (tracks, clock, budget)."""

    def __init__(
        self,
        blobs: Mapping[str, ModelBlob],
        objective: Objective,
        *,
        time_budget_s: float,
        warmup_iters: int,
        progress: ProgressFn | None,
        seed: int,
    ) -> None:
        self.blobs = blobs
        self.objective = objective
        self.budget_s = time_budget_s
        self.warmup_iters = warmup_iters
        self.progress = progress
        self.seed = seed
        self.start = time.perf_counter()
        self.deadline = self.start + time_budget_s
        self.runs: dict[str, list[Measurement]] = {}
        self.errors: dict[str, str] = {}
        self.cands: dict[str, Candidate] = {}
        self.status: dict[str, str] = {}
        self.overheads: list[float] = []
        self.capacity: dict[str, float] = {}

    # -- clock --------------------------------------------------------------------------------
    def now(self) -> float:
        return time.perf_counter()

    def left_s(self) -> float:
        return self.deadline - self.now()

    def overhead_s(self) -> float:
        """Typical per-run cost beyond the measured time (load, prepare, warm-up)."""
        return _median(self.overheads) if self.overheads else 0.5

    def add(self, cand: Candidate) -> None:
        if cand.label not in self.cands:
            self.cands[cand.label] = cand
            self.runs[cand.label] = []
            self.status[cand.label] = "not measured"

    # -- measuring ----------------------------------------------------------------------------
    def _bench(self, cand: Candidate, scenario: str, duration_s: float, **kw: Any) -> BenchResult:
        instances = cand.instances
        workers = cand.config.workers or instances
        return run_benchmark(
            self.blobs[cand.variant],
            scenario=scenario,
            config=cand.config,
            queries=max(2, 2 * workers) if scenario != "single-stream" else 3,
            duration_s=duration_s,
            warmup_iters=self.warmup_iters,
            seed=self.seed,
            **kw,
        )

    def measure(self, cand: Candidate, duration_s: float, phase: str) -> Measurement | None:
        """One run of ``cand`` (objective scenario); ``None`` if it failed (recorded)."""
        self.add(cand)
        label = cand.label
        if label in self.errors:
            return None
        if self.progress is not None:
            self.progress(self.now() - self.start, self.budget_s, f"{phase}: {label}")
        t0 = self.now()
        try:
            if self.objective.scenario == "server":
                m = self._measure_server(cand, duration_s, phase)
            else:
                r = self._bench(cand, self.objective.scenario, duration_s)
                m = self._measurement(r, self.objective.value(r), t0, phase)
        except NnperfError as exc:
            self.errors[label] = str(exc)
            self.status[label] = "failed"
            return None
        self.runs[label].append(m)
        self.overheads.append(max(0.0, m.wall_s - m.duration_s))
        return m

    def _measurement(self, r: BenchResult, value: float, t0: float, phase: str) -> Measurement:
        warm = r.stages_ms.get("warmup_ms") or [0.0]
        return Measurement(
            value=value,
            prepare_ms=float(r.stages_ms.get("prepare_ms", 0.0)),
            warmup_ms=float(warm[0]),
            p50_ms=r.latency.p50_ms,
            p99_ms=r.latency.p99_ms,
            samples_per_s=r.throughput_samples_per_s,
            duration_s=r.duration_s,
            wall_s=self.now() - t0,
            phase=phase,
            peak_rss_mib=r.memory.peak_rss_mib,
            cpu_percent=r.cpu_percent,
        )

    def _measure_server(self, cand: Candidate, duration_s: float, phase: str) -> Measurement:
        """Highest throughput whose server-scenario p99 stays within the budget.

        An offline run gives the capacity; server runs at fractions of it (bisection, three
        steps) find the highest offered load that meets the p99 budget. Value 0: never met.
        """
        budget = self.objective.latency_budget_ms
        assert budget is not None  # scenario is server only with a budget
        t0 = self.now()
        cap = self._bench(cand, "offline", duration_s / 2)
        if cap.latency.p50_ms > budget:
            # Even a lone query misses the budget: infeasible whatever the load.
            return self._measurement(cap, 0.0, t0, phase)
        lo, hi, frac = 0.0, 1.0, 0.85
        best: BenchResult | None = None
        last = cap
        for _ in range(3):
            target = min(frac * cap.throughput_qps, _MAX_SERVER_QPS)
            r = self._bench(cand, "server", duration_s / 2, target_qps=target)
            last = r
            if r.latency.p99_ms <= budget:
                lo = frac
                if best is None or r.throughput_samples_per_s > best.throughput_samples_per_s:
                    best = r
            else:
                hi = frac
            frac = (lo + hi) / 2
        shown = best or last
        m = self._measurement(shown, best.throughput_samples_per_s if best else 0.0, t0, phase)
        # Keep the capacity run's stages (the server runs reuse nothing, but report one set).
        return Measurement(
            value=m.value,
            prepare_ms=float(cap.stages_ms.get("prepare_ms", 0.0)),
            warmup_ms=float((cap.stages_ms.get("warmup_ms") or [0.0])[0]),
            p50_ms=m.p50_ms,
            p99_ms=m.p99_ms,
            samples_per_s=m.samples_per_s,
            duration_s=cap.duration_s + m.duration_s,
            wall_s=m.wall_s,
            phase=phase,
            peak_rss_mib=max(cap.memory.peak_rss_mib, m.peak_rss_mib),
            cpu_percent=m.cpu_percent,
        )

    def median(self, label: str, *, halving_only: bool = False) -> float:
        runs = self.runs.get(label, [])
        if halving_only:
            runs = [m for m in runs if m.phase.startswith("round")] or runs
        return _median([m.value for m in runs])

    def rank(self, labels: Sequence[str], *, halving_only: bool = False) -> list[str]:
        """Measured labels, best first (failed and unmeasured ones dropped)."""
        sign = -1.0 if self.objective.higher_is_better else 1.0
        ok = [lab for lab in labels if self.runs.get(lab) and lab not in self.errors]
        return sorted(
            ok,
            key=lambda lab: (
                sign * self.median(lab, halving_only=halving_only),
                self.cands[lab].complexity,
            ),
        )

    def run_duration(self, phase_left_s: float, runs_left: int, floor_s: float) -> float:
        """Measured time per run so the remaining runs fit the phase's share of the budget."""
        if runs_left <= 0:
            return floor_s
        per_run = phase_left_s / runs_left - self.overhead_s()
        return max(floor_s, per_run)


def _feasible(s: _Search, label: str) -> bool:
    """Throughput within a latency budget: a value of 0 means the budget was never met."""
    return not (s.objective.scenario == "server" and s.median(label) <= 0)


def tune(
    model: ModelSource,
    *,
    objective: Objective | str = "throughput",
    latency_budget_ms: float | None = None,
    percentile: int = 50,
    time_budget_s: float = 120.0,
    cache: str | Path | None = None,
    devices: Sequence[str] | None = None,
    batch_sizes: Sequence[int] | None = None,
    variants: Mapping[str, ModelSource] | None = None,
    engines: Sequence[str] | None = None,
    precisions: Sequence[str] | None = None,
    space: SearchSpace | None = None,
    warmup_iters: int = 1,
    min_noise: float = 0.02,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> TuneResult:
    """Search run configurations for ``model`` and return the best, reusing a cache when it matches.

    Args:
        model: path, ``zoo:NAME``, bytes, ``onnx.ModelProto`` or a loaded ``ModelBlob``.
        objective: an :class:`Objective`, or ``"latency"`` / ``"throughput"`` (default
            ``throughput``).
        latency_budget_ms: with ``throughput``: the server-scenario p99 budget in ms (default none:
            offline throughput).
        percentile: with ``latency``: minimise p50 (default) or p99.
        time_budget_s: wall-clock budget of the search in seconds (default 120). The search
            returns the best it found when the budget is spent.
        cache: a ``nnperf.tune/1`` JSON file: reused without measuring when its key matches
            (model sha256, engine and version, CPU, cores, objective), else written after the
            search. Default: no cache.
        devices: device candidates (default: every ``cpu(T)*N`` split of the available cores).
        batch_sizes: batch sizes to try when the batch axis is free (default 1, 2, 4, 8).
        variants: extra model variants ``{name: model}`` (e.g. fp16 or int8 files) searched as
            another primary axis.
        engines: engines to compare (default onnxruntime; e.g. ``["onnxruntime", "openvino"]``).
        precisions: inference precisions to try where an engine offers them (default ``f32``;
            ``["f32", "bf16", "f16"]`` searches every one offered).
        space: an explicit search space (overrides ``devices`` and ``batch_sizes``).
        warmup_iters: warm-up runs per instance before each measurement (default 1).
        min_noise: the smallest relative noise assumed when comparing (default 0.02 = 2 %).
        seed: seed for synthetic inputs and Poisson arrivals (default 0).
        progress: called with ``(elapsed_s, time_budget_s, what)`` before each run.

    Returns:
        The :class:`TuneResult`; ``result.config`` is the winning RunConfig.

    Raises:
        InvalidInputError: bad arguments, a cache file that is not a tune cache, or no candidate
            could be measured.
    """
    obj = (
        objective
        if isinstance(objective, Objective)
        else Objective(kind=objective, percentile=percentile, latency_budget_ms=latency_budget_ms)
    )
    if not (time_budget_s > 0 and math.isfinite(time_budget_s)):
        raise InvalidInputError(f"time_budget_s: got {time_budget_s!r}, expected a number > 0")
    if warmup_iters < 0:
        raise InvalidInputError(f"warmup_iters: got {warmup_iters}, expected >= 0")
    blob = load_model(model)
    var_blobs = {name: load_model(src) for name, src in (variants or {}).items()}
    if BASE_VARIANT in var_blobs:
        raise InvalidInputError(
            f"variants: the name {BASE_VARIANT!r} is reserved for the tuned model; rename it"
        )
    sp = space or build_space(
        blob,
        throughput=obj.kind == "throughput",
        devices=devices,
        batch_sizes=batch_sizes,
        variants=tuple(var_blobs),
        engines=engines,
        precisions=precisions,
    )
    searched = {"precisions": {e: list(p) for e, p in sp.precisions.items()}}
    key = cache_key(
        blob,
        obj.to_dict(),
        variants=list(var_blobs.values()),
        engines=sp.engines,
        space=searched if any(p != ("f32",) for p in sp.precisions.values()) else None,
    )
    if cache is not None:
        hit = read_cache(cache, key)
        if hit is not None:
            return TuneResult.from_dict(hit, from_cache=True)
    result = _search(
        {BASE_VARIANT: blob, **var_blobs},
        obj,
        sp,
        time_budget_s=time_budget_s,
        warmup_iters=warmup_iters,
        min_noise=min_noise,
        seed=seed,
        progress=progress,
        key=key,
    )
    result = TuneResult(
        **{
            **{f: getattr(result, f) for f in result.__dataclass_fields__},
            "model": {"name": blob.name, "path": blob.path, "sha256": blob.sha256},
            "variants": {
                name: (src if isinstance(src, str) else var_blobs[name].name)
                for name, src in (variants or {}).items()
            },
        }
    )
    if cache is not None:
        write_cache(cache, result.to_dict())
    return result


def _search(
    blobs: Mapping[str, ModelBlob],
    objective: Objective,
    space: SearchSpace,
    *,
    time_budget_s: float,
    warmup_iters: int,
    min_noise: float,
    seed: int,
    progress: ProgressFn | None,
    key: dict[str, Any],
) -> TuneResult:
    s = _Search(
        blobs,
        objective,
        time_budget_s=time_budget_s,
        warmup_iters=warmup_iters,
        progress=progress,
        seed=seed,
    )
    primary = space.primary()
    n_var_points = 2 if len(primary) > 1 else 1
    n_variations = len(space.variations(primary[0])) * n_var_points if primary else 0
    for c in primary:
        s.add(c)

    # 1. prune: one short run of every primary point (35 % of the budget, variations included;
    #    never more than 60 %, so the halving rounds keep their share).
    cheap_end = s.start + 0.35 * time_budget_s
    prune_stop = s.start + 0.6 * time_budget_s
    planned = len(primary) + n_variations
    for i, cand in enumerate(primary):
        if i > 0 and s.now() >= prune_stop:
            break
        d = s.run_duration(cheap_end - s.now(), planned - i, _MIN_RUN_S)
        s.measure(cand, min(d, _MAX_PRUNE_RUN_S), "prune")
    ranked = s.rank([c.label for c in primary])

    # 2. variations of the engine knobs around the best primary points.
    var_ref: dict[str, str] = {}
    for point_label in ranked[:n_var_points]:
        for cand in space.variations(s.cands[point_label]):
            if s.now() >= prune_stop:
                break
            s.add(cand)
            var_ref[cand.label] = point_label
            runs_left = max(1, n_variations - len(var_ref) + 1)
            d = s.run_duration(cheap_end - s.now(), runs_left, _MIN_RUN_S)
            s.measure(cand, min(d, _MAX_PRUNE_RUN_S), "variation")
    # Pool: the best third of the primary points (at least 3) plus variations that did at least
    # about as well as the point they vary (within 3 %), at most 8 in all.
    k = max(3, math.ceil(len(ranked) / 3))
    pool = ranked[:k]
    for lab in s.rank(list(var_ref)):
        if objective.ratio(s.median(lab), s.median(var_ref[lab])) >= 0.97:
            pool.append(lab)
    pool = s.rank(list(dict.fromkeys(pool)))[:8]
    pool = [lab for lab in pool if _feasible(s, lab)] or pool[:1]
    for lab in s.runs:
        if s.runs[lab] and lab not in pool and s.status[lab] != "failed":
            s.status[lab] = "pruned"

    # 3. successive halving: rounds of interleaved repeats, longer each round.
    round_no = 0
    floor = max(
        _MIN_RUN_S,
        _median([m.duration_s for lab in pool for m in s.runs[lab]]) if pool else _MIN_RUN_S,
    )
    while pool and s.left_s() > 0:
        round_no += 1
        final = len(pool) <= 3
        repeats = 4 if final else 2
        if final:
            # The simpler neighbour of each finalist (same device split and variant, every other
            # knob at its default) runs in the final too, so a knob that only won by noise loses
            # the tie-break to the configuration without it.
            for lab in list(pool):
                simple = space.simpler(s.cands[lab])
                if simple.label not in pool and simple.label not in s.errors:
                    s.add(simple)
                    pool.append(simple.label)
        rounds_left = (0 if final else math.ceil(math.log2(len(pool) / 3))) + 1
        round_budget = s.left_s() / rounds_left
        d = s.run_duration(round_budget, len(pool) * repeats, floor)
        floor = d  # rounds never get shorter runs than the last
        for _rep in range(repeats):
            for lab in list(pool):
                if s.left_s() <= 0 and _rep > 0:
                    break
                s.measure(s.cands[lab], d, f"round {round_no}")
        alive = [lab for lab in pool if lab not in s.errors]
        ranked_pool = s.rank(alive, halving_only=True)
        if final or not ranked_pool:
            pool = ranked_pool
            break
        keep = max(3, math.ceil(len(ranked_pool) / 2))
        for lab in ranked_pool[keep:]:
            s.status[lab] = f"dropped (round {round_no})"
        pool = ranked_pool[:keep]
    if not pool:
        pool = s.rank(list(s.runs))[:3]

    results = {
        lab: CandidateResult(
            candidate=s.cands[lab],
            measurements=tuple(s.runs[lab]),
            status=s.status[lab],
            error=s.errors.get(lab),
        )
        for lab in s.cands
    }
    finalists = [results[lab] for lab in pool]
    winner, runner, ratio, noise, reason = decide(finalists, objective, min_noise=min_noise)
    for lab in pool:
        s.status[lab] = "finalist"
    s.status[winner.label] = "winner"
    if runner is not None:
        s.status[runner.label] = "runner-up"
    final_results = tuple(
        CandidateResult(
            candidate=r.candidate, measurements=r.measurements, status=s.status[lab], error=r.error
        )
        for lab, r in results.items()
    )
    by_label = {r.label: r for r in final_results}
    if progress is not None:
        progress(s.now() - s.start, time_budget_s, "done")
    return TuneResult(
        objective=objective,
        winner=by_label[winner.label],
        runner_up=by_label[runner.label] if runner is not None else None,
        ratio=ratio,
        noise=noise,
        reason=reason,
        candidates=final_results,
        key=key,
        elapsed_s=s.now() - s.start,
        time_budget_s=time_budget_s,
        space=space.to_dict(),
        machine=machine_info(),
    )
