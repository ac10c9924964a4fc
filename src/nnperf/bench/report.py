"""Text and CSV renderings of a :class:`~nnperf.bench.scenarios.BenchResult`."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from nnperf.bench.scenarios import BenchResult, Scenario

__all__ = ["CSV_COLUMNS", "csv_row", "render_csv", "render_report"]

_DESCRIPTIONS = {
    Scenario.SINGLE_STREAM: "one query in flight at a time (latency)",
    Scenario.OFFLINE: "queries kept outstanding, closed loop (throughput)",
    Scenario.SERVER: "Poisson arrivals; latency from each query's scheduled arrival",
}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _ran_on(r: BenchResult) -> str:
    """``device=cpu(1)*2 (2 instances x 1 thread)``."""
    device = r.device or (r.config.device if r.config else "") or "?"
    threads = sorted(set(r.threads_per_instance))
    if not r.instances:
        return f"server={r.server_url}"
    if len(threads) == 1:
        shape = f"{_plural(r.instances, 'instance')} x {_plural(threads[0], 'thread')}"
    else:
        shape = f"{_plural(r.instances, 'instance')}, threads {r.threads_per_instance}"
    return f"device={device} ({shape})"


def render_report(result: BenchResult) -> str:
    """The report ``nnperf bench`` prints: what ran, inputs, stages, latency, throughput,
    utilisation, CPU, memory, the validity verdict, machine."""
    r = result
    m = r.machine
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
    stages = r.stages_ms
    engine = (
        f"engine={r.engine['name']} {r.engine['version']} [{', '.join(r.engine['providers'])}]"
        if r.engine
        else ""
    )
    running = [
        _ran_on(r),
        f"sut={r.sut}",
        f"workers={r.workers}",
        *([f"concurrency={r.concurrency}"] if r.concurrency is not None else []),
        f"batch={r.batch_size}",
    ]
    lines = [
        "=" * 72,
        f"nnperf bench: {r.model['name']}  scenario={r.scenario.value} "
        f"({_DESCRIPTIONS[r.scenario]})"
        + ("  [partial: interrupted by Ctrl-C]" if r.partial else ""),
        "  ".join(running) + (f"  {engine}" if engine else ""),
        "-" * 72,
        f"Inputs (batch {r.batch_size}: rows per query, from the shapes fed)",
    ]
    width = max((len(i.name) for i in r.inputs), default=4)
    for fed in r.inputs:
        lines.append(f"  {fed.name:<{width}}  {fed.dtype} {list(fed.shape)}  {fed.spec}")
    lines += [
        "Stages",
        f"  load model        : {stages['load_ms']:10.3f} ms",
        f"  prepare (engine)  : {stages['prepare_ms']:10.3f} ms",
    ]
    for i, info in enumerate((r.engine or {}).get("load", [])):
        parts = [
            f"{k.removesuffix('_ms')} {v:.1f} ms" for k, v in info.items() if k.endswith("_ms")
        ]
        parts += [f"{k} {v}" for k, v in info.items() if not k.endswith("_ms")]
        if parts:
            lines.append(f"  engine, instance {i}: " + ", ".join(parts))
    if stages.get("fake_first_ms") is not None:
        lines.append(
            f"  fake first        : {stages['fake_first_ms']:10.3f} ms  (a run on zeros: full "
            "compute on this engine)"
        )
    for i, w in enumerate(stages["warmup_ms"]):
        lines.append(f"  warm up {i:<10}: {w:10.3f} ms")
    extra = r.extra
    parts = [f"api={extra.get('api', 'sync')}"]
    if extra.get("batching"):
        b = extra["batching"]
        parts.append(
            f"merged batches: {b['batches']} of mean size {b['mean_batch_size']:.1f} "
            f"(max {b['max_batch_size']}, {100 * b['full_fraction']:.0f} % full)"
        )
    if extra.get("pipeline"):
        parts.append(f"pipeline: {len(extra['pipeline'])} stages")
    if len(parts) > 1 or parts[0] != "api=sync":
        lines.append("Runtime: " + "  ".join(parts))
    for st in extra.get("pipeline", []):
        lines.append(
            f"  stage {st['index']}: {st['nodes']} nodes, {st['flops'] / 1e9:.3f} GFLOPs, "
            f"on {st['device']}, cut after {', '.join(st['outputs'])}"
        )
    lat = r.latency
    lines += [
        f"Latency over {r.queries} queries ({r.errors} failed), ms",
        f"  min {lat.min_ms:.4f}  mean {lat.mean_ms:.4f}  stddev {lat.stddev_ms:.4f}  "
        f"max {lat.max_ms:.4f}  cv {lat.cv:.3f}",
        "  " + lat.render_percentiles(),
        f"Throughput: {r.throughput_qps:,.2f} queries/s = {r.throughput_samples_per_s:,.2f} "
        f"samples/s over {r.duration_s:.3f} s",
    ]
    for sample in r.error_samples[:3]:
        lines.append(f"  failed: {sample[:200]}")
    if r.server is not None:
        s = r.server
        lines.append(
            f"  offered {s['offered_qps']:,.2f} queries/s (Poisson at {s['target_qps']:,.2f}); "
            f"issued {s['issued_qps']:,.2f}/s; achieved {s['achieved_qps']:,.2f}/s = "
            f"{s['achieved_ratio']:.3f} of offered"
        )
        if s["latency_bound_ms"] is not None:
            met = {True: "met", False: "MISSED", None: "not checked (< 100 samples)"}
            lines.append(
                f"  latency bound p99 <= {s['latency_bound_ms']:g} ms: "
                f"{met[s['latency_bound_met']]}"
            )
    if r.utilization is not None:
        lines.append(
            f"Utilisation: {100 * r.utilization:.1f} % (engine-busy time / (wall x "
            f"{_plural(r.instances_driven, 'instance')} driven))"
        )
    cores = m.get("cores_available", "?")
    lines.append(
        f"CPU: {r.cpu_percent:.0f} % of one core (this process, {cores} core(s) available)"
    )
    mem = r.memory
    per = ", ".join(f"+{x:.1f}" for x in mem.per_instance_mib)
    lines.append(
        f"Memory: peak RSS {mem.peak_rss_mib:.1f} MiB"
        + (" (process lifetime)" if mem.peak_scope == "process" else "")
        + (f"; load +{mem.load_mib:.1f} MiB" if mem.load_mib is not None else "")
        + (f"; per instance {per} MiB (load + first run)" if per else "")
    )
    if r.stability is not None and r.stability.windows:
        st = r.stability
        window = (
            f"{st.windows} windows of {st.window_s:.3g} s, throughput spread "
            f"{100 * st.spread:.1f} % (<= {100 * st.tolerance:g} % is stable)"
        )
    else:
        window = "too few queries for stability windows"
    if r.validity.valid:
        lines.append(f"Validity: VALID ({window})")
    else:
        lines.append(f"Validity: INVALID ({window})")
        lines += [f"  - {reason}" for reason in r.validity.reasons]
    for note in r.warnings:
        lines.append(f"Warning: {note}")
    lines += [
        f"Machine: {m['cpu']}, {cores} core(s)"
        + (f" [{' '.join(m['cpu_features'])}]" if m.get("cpu_features") else "")
        + f"; {m['platform']}; Python {m['python']}",
        f"Versions: {versions}",
        "=" * 72,
    ]
    return "\n".join(lines)


CSV_COLUMNS = (
    "scenario",
    "device",
    "instances",
    "workers",
    "concurrency",
    "batch_size",
    "target_qps",
    "queries",
    "errors",
    "duration_s",
    "throughput_qps",
    "throughput_samples_per_s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p99_9_ms",
    "utilization",
    "cpu_percent",
    "peak_rss_mib",
    "valid",
)


def csv_row(r: BenchResult) -> dict[str, object]:
    """One result as a CSV row (:data:`CSV_COLUMNS`); a percentile without enough samples is
    empty."""
    lat = r.latency

    def pct(p: float) -> object:
        value = lat.percentile_ms(p)
        return "" if value is None else round(value, 6)

    return {
        "scenario": r.scenario.value,
        "device": r.device,
        "instances": r.instances,
        "workers": r.workers,
        "concurrency": "" if r.concurrency is None else r.concurrency,
        "batch_size": r.batch_size,
        "target_qps": "" if r.target_qps is None else r.target_qps,
        "queries": r.queries,
        "errors": r.errors,
        "duration_s": round(r.duration_s, 6),
        "throughput_qps": round(r.throughput_qps, 4),
        "throughput_samples_per_s": round(r.throughput_samples_per_s, 4),
        "p50_ms": pct(50.0),
        "p90_ms": pct(90.0),
        "p99_ms": pct(99.0),
        "p99_9_ms": pct(99.9),
        "utilization": "" if r.utilization is None else round(r.utilization, 4),
        "cpu_percent": round(r.cpu_percent, 1),
        "peak_rss_mib": round(r.memory.peak_rss_mib, 1),
        "valid": r.validity.valid,
    }


def render_csv(results: Sequence[BenchResult], *, first: Sequence[str] = ()) -> str:
    """Results as CSV with a header; ``first`` columns (a sweep's axis) lead."""
    columns = [*first, *(c for c in CSV_COLUMNS if c not in first)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for r in results:
        row = csv_row(r)
        writer.writerow({c: row.get(c, "") for c in columns})
    return buf.getvalue()
