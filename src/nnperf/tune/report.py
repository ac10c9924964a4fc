"""Text rendering of a :class:`~nnperf.tune.search.TuneResult`: the candidates in MegEngine's
three-stage form (prepare / warm-up / inference), the winner marked, and why it won."""

from __future__ import annotations

import math

from nnperf.tune.search import CandidateResult, TuneResult

__all__ = ["render_tune_report"]

_STATUS_ORDER = ("winner", "runner-up", "finalist", "dropped", "pruned", "failed", "not measured")


def _status_rank(c: CandidateResult) -> int:
    for i, prefix in enumerate(_STATUS_ORDER):
        if c.status.startswith(prefix):
            return i
    return len(_STATUS_ORDER)


def _fmt(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def render_tune_report(result: TuneResult, *, cache_path: str | None = None) -> str:
    """The report ``nnperf tune`` prints.

    Args:
        result: the tuning result (searched or read from the cache).
        cache_path: the cache file, named in the header and the closing hint.
    """
    r = result
    obj = r.objective
    m = r.machine
    lines = [
        "=" * 116,
        f"nnperf tune: {r.model.get('name', '?')} (sha256 {str(r.key.get('model_sha256', ''))[:12]})"
        f"  objective: {obj.describe()}",
    ]
    if r.from_cache:
        lines.append(
            f"cache hit: {cache_path} (same model, {r.key.get('engine')} "
            f"{r.key.get('engine_version')}, {r.key.get('cpu')}, {r.key.get('cores')} core(s), "
            f"objective) -- nothing measured; the table is from the original search "
            f"({r.elapsed_s:.1f} s)"
        )
    else:
        n_runs = sum(len(c.measurements) for c in r.candidates)
        measured = sum(1 for c in r.candidates if c.measurements)
        lines.append(
            f"searched {measured} of {r.space.get('size', '?')} configurations in the space with "
            f"{n_runs} runs in {r.elapsed_s:.1f} s (budget {r.time_budget_s:g} s)"
        )
    lines.append("-" * 116)
    value_head = "QPS (samples/s)" if obj.kind == "throughput" else f"p{obj.percentile} ms"
    lines.append(
        f"   {'candidate':<38} {'status':<18} {'runs':>4} {'prepare ms':>10} {'warm-up ms':>10} "
        f"{'infer p50 ms':>12} {value_head:>16} {'noise':>7} {'cpu %':>6} {'peak MiB':>8}"
    )
    ordered = sorted(
        r.candidates,
        key=lambda c: (
            _status_rank(c),
            -(c.median if not math.isnan(c.median) else -math.inf)
            if obj.higher_is_better
            else (c.median if not math.isnan(c.median) else math.inf),
        ),
    )
    for c in ordered:
        mark = "*" if c.status == "winner" else " "
        noise = f"±{100 * c.noise:.1f}%" if len(c.ranked) > 1 else "-"
        digits = 1 if obj.kind == "throughput" else 3
        lines.append(
            f" {mark} {c.label[:38]:<38} {c.status[:18]:<18} {len(c.measurements):>4} "
            f"{_fmt(c.stage_ms('prepare_ms')):>10} {_fmt(c.stage_ms('warmup_ms')):>10} "
            f"{_fmt(c.stage_ms('p50_ms'), 3):>12} {_fmt(c.median, digits):>16} {noise:>7} "
            f"{_fmt(c.stage_ms('cpu_percent'), 0):>6} {_fmt(c.stage_ms('peak_rss_mib'), 1):>8}"
        )
        if c.error:
            lines.append(f"     error: {c.error[:150]}")
    lines.append("-" * 116)
    lines.append(f"winner: {r.winner.label}")
    lines.append(f"why: {r.reason}")
    variant = r.winner.candidate.variant
    if variant != "base":
        lines.append(f"model variant: {variant} ({r.variants.get(variant, '?')})")
    if cache_path:
        scenario = obj.scenario
        extra = " --target-qps Q" if scenario == "server" else ""
        lines.append(
            f"config: {cache_path}  (nnperf bench MODEL --config {cache_path} "
            f"--scenario {scenario}{extra}; nnperf.create(MODEL, config={cache_path!r}))"
        )
    if m:
        versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
        lines.append(f"machine: {m.get('cpu')}, {m.get('cores_available')} core(s); {versions}")
    lines.append("=" * 116)
    return "\n".join(lines)
