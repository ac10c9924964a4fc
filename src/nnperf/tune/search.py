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

import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnperf.bench.machine import machine_info
from nnperf.bench.scenarios import BenchResult, run_benchmark
from nnperf.errors import InvalidInputError, NnperfError
from nnperf.model import ModelBlob, ModelSource, load_model
from nnperf.tune.cache import cache_key, read_cache, write_cache
from nnperf.tune.decide import decide
from nnperf.tune.guard import DEFAULT_MIN_COSINE, AccuracyCheck, AccuracyGuard, guard_feeds
from nnperf.tune.objective import Objective
from nnperf.tune.results import CandidateResult, Measurement, TuneResult, median
from nnperf.tune.space import BASE_VARIANT, Candidate, SearchSpace, build_space
from nnperf.types import Progress, ProgressFn

__all__ = [
    "CandidateResult",
    "Measurement",
    "Objective",
    "TuneResult",
    "decide",
    "tune",
]


_MIN_RUN_S = 0.05
_MAX_PRUNE_RUN_S = 1.0
# The Python Poisson load generator issues a few thousand queries/s at most with honest timing;
# offering more only builds a backlog that takes far longer than the run to drain.
_MAX_SERVER_QPS = 2000.0


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
        guard: AccuracyGuard | None = None,
    ) -> None:
        self.blobs = blobs
        self.guard = guard
        self.accuracy: dict[str, AccuracyCheck] = {}
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
        return median(self.overheads) if self.overheads else 0.5

    def add(self, cand: Candidate) -> None:
        if cand.label not in self.cands:
            self.cands[cand.label] = cand
            self.runs[cand.label] = []
            self.status[cand.label] = "not measured"

    # -- measuring ----------------------------------------------------------------------------
    def _bench(self, cand: Candidate, scenario: str, duration_s: float, **kw: Any) -> BenchResult:
        instances = cand.instances
        workers = cand.config.workers or instances
        if cand.config.max_batch_size is not None and scenario == "offline":
            # merge batching needs many single-row queries outstanding: asyncio clients (64
            # coroutines) reach them without a thread each
            kw.setdefault("api", "async")
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
            self.progress(
                Progress(
                    done=sum(len(runs) for runs in self.runs.values()),
                    elapsed_s=self.now() - self.start,
                    duration_s=self.budget_s,
                    what=f"{phase}: {label}",
                )
            )
        if self.guard is not None and label not in self.accuracy:
            try:
                check = self.guard.check(cand)
            except NnperfError as exc:
                self.errors[label] = str(exc)
                self.status[label] = "failed"
                return None
            self.accuracy[label] = check
            if not check.passed:
                self.errors[label] = self.guard.describe(check)
                self.status[label] = "rejected"
                return None
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
        return median([m.value for m in runs])

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


def _searched(
    sp: SearchSpace,
    min_cosine: float,
    accuracy_inputs: Sequence[Mapping[str, np.ndarray]] | None,
) -> dict[str, Any]:
    """What the search covered, for the cache key: every axis of the space, the settings each
    candidate inherits (shapes and dims included), the accuracy guard's threshold and inputs.
    Another batch-size list, device list or ``--shape`` is another experiment, never a hit."""
    out: dict[str, Any] = {
        **sp.to_dict(),
        "throughput": sp.throughput,
        "merge": sp.merge,
        "base": sp.base.to_dict(),
        "min_cosine": min_cosine,
    }
    if accuracy_inputs:
        digest = hashlib.sha256()
        for feed in accuracy_inputs:
            for name in sorted(feed):
                arr = np.ascontiguousarray(feed[name])
                digest.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
                digest.update(arr.tobytes())
        out["accuracy_inputs_sha256"] = digest.hexdigest()
    return out


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
    min_cosine: float = DEFAULT_MIN_COSINE,
    accuracy_inputs: Sequence[Mapping[str, np.ndarray]] | None = None,
    calibration: Sequence[Mapping[str, np.ndarray]] | None = None,
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
            (model sha256, engine and version, CPU, cores, objective, and the search space:
            devices, batch sizes, precisions, shapes/dims, accuracy threshold and inputs), else
            written after the search. Default: no cache.
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
        min_cosine: the accuracy guard: a candidate whose outputs have a cosine similarity below
            this to the reference (the base model on onnxruntime CPU at f32, same inputs) is
            rejected, never chosen (default 0.99).
        accuracy_inputs: the inputs the guard compares on (default: four seeded random inputs;
            pass held-out real samples for a meaningful check).
        calibration: samples (``{input: array}``, batch 1) to build an ``int8`` variant from,
            with ``nnperf.optimize``'s defaults (pre-processing, min-max, u8 activations,
            per-channel weights): the first three quarters calibrate, the held-out rest is what
            the accuracy guard compares on (unless ``accuracy_inputs`` is given).
        seed: seed for synthetic inputs and Poisson arrivals (default 0).
        progress: called with a :class:`~nnperf.types.Progress` (seconds elapsed of the time
            budget, candidates measured, what is measured next) before each run.

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
    if calibration is not None:
        if "int8" in var_blobs:
            raise InvalidInputError(
                "calibration builds the 'int8' variant; a variant of that name was given too. "
                "Rename it or drop calibration"
            )
        held_out, int8 = _int8_variant(blob, calibration)
        var_blobs["int8"] = int8
        if accuracy_inputs is None:
            accuracy_inputs = held_out
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
    key = cache_key(
        blob,
        obj.to_dict(),
        variants=list(var_blobs.values()),
        engines=sp.engines,
        space=_searched(sp, min_cosine, accuracy_inputs),
    )
    if cache is not None:
        hit = read_cache(cache, key)
        if hit is not None:
            return TuneResult.from_dict(hit, from_cache=True)
    models = {BASE_VARIANT: blob, **var_blobs}
    guard = AccuracyGuard(
        models,
        (
            accuracy_inputs
            if accuracy_inputs
            else guard_feeds(blob, seed=seed, dims=sp.base.dims, shapes=sp.base.shapes)
        ),
        min_cosine=min_cosine,
    )
    result = _search(
        models,
        obj,
        sp,
        time_budget_s=time_budget_s,
        warmup_iters=warmup_iters,
        min_noise=min_noise,
        seed=seed,
        progress=progress,
        key=key,
        guard=guard,
    )
    result = TuneResult(
        **{
            **{f: getattr(result, f) for f in result.__dataclass_fields__},
            "model": {"name": blob.name, "path": blob.path, "sha256": blob.sha256},
            "min_cosine": min_cosine,
            "variants": {
                **{
                    name: (src if isinstance(src, str) else var_blobs[name].name)
                    for name, src in (variants or {}).items()
                },
                **({"int8": "built from the calibration samples"} if calibration else {}),
            },
        }
    )
    if cache is not None:
        write_cache(cache, result.to_dict())
    return result


def _int8_variant(
    model: ModelBlob, samples: Sequence[Mapping[str, np.ndarray]]
) -> tuple[list[dict[str, np.ndarray]], ModelBlob]:
    """(held-out samples, int8 model): ``nnperf.optimize``'s defaults on the first three
    quarters of ``samples``.

    Raises:
        InvalidInputError: fewer than two samples (one to calibrate, one to hold out).
    """
    if len(samples) < 2:
        raise InvalidInputError(
            f"calibration: got {len(samples)} sample(s), expected at least 2 (three quarters "
            "calibrate the int8 variant, the rest check its accuracy)"
        )
    # Imported here: quantization tooling loads only when int8 candidates are asked for.
    from nnperf.optimize.calibrate import Calibrator
    from nnperf.optimize.quantize import quantize

    holdout = max(1, len(samples) // 4)
    fit = [dict(s) for s in samples[:-holdout]]
    with Calibrator(model) as cal:
        cal.collect_data(fit)
        ranges = cal.compute_range()
    int8 = quantize(model, ranges)
    blob = load_model(int8)
    blob = ModelBlob(data=blob.data, name=f"{model.name}.int8", path=None, sha256=blob.sha256)
    return [dict(s) for s in samples[-holdout:]], blob


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
    guard: AccuracyGuard | None = None,
) -> TuneResult:
    s = _Search(
        blobs,
        objective,
        time_budget_s=time_budget_s,
        warmup_iters=warmup_iters,
        progress=progress,
        seed=seed,
        guard=guard,
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

    # 2. variations around the best primary points: the runtime techniques first (the seeds'
    #    main runtime decisions), then each engine's knobs. Merge batching and pipelines apply to
    #    single-row queries, so the best single-row point is an anchor too.
    var_ref: dict[str, str] = {}
    around: list[tuple[str, list[Candidate]]] = []
    for point_label in ranked[:n_var_points]:
        point = s.cands[point_label]
        techniques = space.techniques(point)
        knobs = [c for c in space.variations(point) if c not in techniques]
        around.append((point_label, [*techniques, *knobs]))
    single_row = [lab for lab in ranked if (s.cands[lab].config.batch_size or 1) == 1]
    if single_row and single_row[0] not in ranked[:n_var_points]:
        around.append((single_row[0], space.techniques(s.cands[single_row[0]])))
    n_variations = max(n_variations, sum(len(c) for _, c in around))
    for point_label, cands in around:
        for cand in cands:
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
        median([m.duration_s for lab in pool for m in s.runs[lab]]) if pool else _MIN_RUN_S,
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
            accuracy=s.accuracy.get(lab),
        )
        for lab in s.cands
    }
    # Nothing ranked: decide() reports why from every candidate (their errors).
    finalists = [results[lab] for lab in pool] or list(results.values())
    winner, runner, ratio, noise, reason = decide(finalists, objective, min_noise=min_noise)
    for lab in pool:
        s.status[lab] = "finalist"
    s.status[winner.label] = "winner"
    if runner is not None:
        s.status[runner.label] = "runner-up"
    final_results = tuple(
        CandidateResult(
            candidate=r.candidate,
            measurements=r.measurements,
            status=s.status[lab],
            error=r.error,
            accuracy=r.accuracy,
        )
        for lab, r in results.items()
    )
    by_label = {r.label: r for r in final_results}
    if progress is not None:
        runs = sum(len(r) for r in s.runs.values())
        progress(Progress(runs, 0, s.now() - s.start, time_budget_s, "done"))
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
