"""Text rendering of a :class:`~nnperf.tune.search.TuneResult`: the candidates in MegEngine's
three-stage form (prepare / warm-up / inference), the winner marked, and why it won."""

from __future__ import annotations

import math

from nnperf.table import Column, Table
from nnperf.tune.search import CandidateResult, TuneResult

__all__ = ["candidates_table", "render_tune_report"]

_STATUS_ORDER = (
    "winner",
    "runner-up",
    "finalist",
    "dropped",
    "pruned",
    "rejected",
    "failed",
    "not measured",
)


def _status_rank(c: CandidateResult) -> int:
    for i, prefix in enumerate(_STATUS_ORDER):
        if c.status.startswith(prefix):
            return i
    return len(_STATUS_ORDER)


def _num(value: float) -> float | None:
    return None if math.isnan(value) else value


def candidates_table(result: TuneResult) -> Table:
    """Every candidate in MegEngine's three-stage form, winner first; ``*`` marks the winner.

    Columns: prepare and warm-up (ms, medians over runs), inference p50 (ms), the objective's
    value (samples/s or the objective percentile in ms) and its noise (robust relative spread of
    the repeats, %) and the cosine similarity of its outputs to the f32 reference (the accuracy
    guard's measure; rejected candidates fall below ``--min-cosine``).
    """
    obj = result.objective
    throughput = obj.kind == "throughput"
    value = (
        Column("value", "QPS", "samples/s", 1)
        if throughput
        else Column("value", f"p{obj.percentile}", "ms", 3)
    )
    ordered = sorted(
        result.candidates,
        key=lambda c: (
            _status_rank(c),
            -(c.median if not math.isnan(c.median) else -math.inf)
            if obj.higher_is_better
            else (c.median if not math.isnan(c.median) else math.inf),
        ),
    )
    rows = [
        (
            "*" if c.status == "winner" else "",
            c.label,
            c.status,
            len(c.measurements),
            _num(c.stage_ms("prepare_ms")),
            _num(c.stage_ms("warmup_ms")),
            _num(c.stage_ms("p50_ms")),
            _num(c.median),
            100 * c.noise if len(c.ranked) > 1 else None,
            c.accuracy.cosine if c.accuracy is not None else None,
            _num(c.stage_ms("cpu_percent")),
            _num(c.stage_ms("peak_rss_mib")),
            c.error or "",
        )
        for c in ordered
    ]
    cols = (
        Column("mark", " ", align="left"),
        Column("candidate"),
        Column("status"),
        Column("runs"),
        Column("prepare_ms", "prepare", "ms", 2),
        Column("warmup_ms", "warm-up", "ms", 2),
        Column("p50_ms", "infer p50", "ms", 4),
        value,
        Column("noise_pct", "noise ±", "%", 1),
        Column("cosine", "cosine", "", 5),
        Column("cpu_percent", "cpu", "%", 0),
        Column("peak_rss_mib", "peak", "MiB", 1),
        Column("error"),
    )
    return Table("Candidates", cols, rows)


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
        engines = ", ".join(f"{k} {v}" for k, v in dict(r.key.get("engines", {})).items())
        lines.append(
            f"cache hit: {cache_path} (same model, {engines}, {r.key.get('cpu')}, "
            f"{r.key.get('cores')} core(s), objective) -- nothing measured; the table is from "
            f"the original search ({r.elapsed_s:.1f} s)"
        )
    else:
        n_runs = sum(len(c.measurements) for c in r.candidates)
        measured = sum(1 for c in r.candidates if c.measurements)
        lines.append(
            f"searched {measured} of {r.space.get('size', '?')} configurations in the space with "
            f"{n_runs} runs in {r.elapsed_s:.1f} s (budget {r.time_budget_s:g} s)"
        )
    lines.append("-" * 116)
    table = candidates_table(r)
    shown = Table(
        "",
        table.columns[:-1],
        [(*row[:1], str(row[1])[:38], str(row[2])[:18], *row[3:-1]) for row in table.rows],
    )
    lines.append(shown.to_text())
    for row in table.rows:
        if row[-1]:
            lines.append(f"  error ({str(row[1])[:38]}): {str(row[-1])[:150]}")
    lines.append("-" * 116)
    lines.append(f"winner: {r.winner.label}")
    lines.append(f"why: {r.reason}")
    acc = r.winner.accuracy
    if acc is not None:
        bound = f" (guard: cosine >= {r.min_cosine:g})" if r.min_cosine is not None else ""
        lines.append(
            f"accuracy: cosine {acc.cosine:.6f} to the f32 reference (onnxruntime CPU, base model), "
            f"max abs error {acc.max_abs_err:.3g} over {acc.samples} input(s){bound}"
        )
    rejected = [c for c in r.candidates if c.status == "rejected"]
    if rejected:
        lines.append(f"rejected by the accuracy guard: {', '.join(c.label for c in rejected)}")
    variant = r.winner.candidate.variant
    if variant != "base":
        lines.append(f"model variant: {variant} ({r.variants.get(variant, '?')})")
    if cache_path:
        scenario = obj.scenario
        extra = " --target-qps Q" if scenario == "server" else ""
        lines.append(
            f"config: {cache_path}  (nnperf bench MODEL --config {cache_path} "
            f"--scenario {scenario}{extra}; nnperf.create_executor(MODEL, config={cache_path!r}))"
        )
    if m:
        versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
        lines.append(f"machine: {m.get('cpu')}, {m.get('cores_available')} core(s); {versions}")
    lines.append("=" * 116)
    return "\n".join(lines)
