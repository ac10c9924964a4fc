"""Text rendering of a :class:`~nnperf.bench.scenarios.BenchResult`."""

from __future__ import annotations

from nnperf.bench.scenarios import BenchResult, Scenario

__all__ = ["render_report"]

_DESCRIPTIONS = {
    Scenario.SINGLE_STREAM: "one query in flight at a time (latency)",
    Scenario.OFFLINE: "every worker busy (throughput)",
    Scenario.SERVER: "Poisson arrivals; latency from each query's scheduled arrival",
}


def render_report(result: BenchResult) -> str:
    """The report ``nnperf bench`` prints: stages, latency, throughput, utilisation, machine."""
    r = result
    m = r.machine
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
    stages = r.stages_ms
    warm = stages["warmup_ms"]
    lines = [
        "=" * 72,
        f"nnperf bench: {r.model['name']}  scenario={r.scenario.value} "
        f"({_DESCRIPTIONS[r.scenario]})",
        f"device={r.device or r.config.device or 'cpu'} ({r.instances} instance(s))  "
        f"workers={r.workers}  batch={r.batch_size}  "
        f"engine={r.engine['name']} {r.engine['version']} [{', '.join(r.engine['providers'])}]",
        "-" * 72,
        "Stages",
        f"  load model        : {stages['load_ms']:10.3f} ms",
        f"  prepare (engine)  : {stages['prepare_ms']:10.3f} ms",
    ]
    for i, info in enumerate(r.engine.get("load", [])):
        parts = [
            f"{k.removesuffix('_ms')} {v:.1f} ms" for k, v in info.items() if k.endswith("_ms")
        ]
        parts += [f"{k} {v}" for k, v in info.items() if not k.endswith("_ms")]
        if parts:
            lines.append(f"  engine, instance {i}: " + ", ".join(parts))
    if stages.get("fake_first_ms") is not None:
        lines.append(f"  fake first        : {stages['fake_first_ms']:10.3f} ms")
    for i, w in enumerate(warm):
        lines.append(f"  warm up {i:<10}: {w:10.3f} ms")
    extra = r.extra
    if extra.get("api", "sync") != "sync" or len(extra) > 1:
        parts = [f"api={extra.get('api', 'sync')}"]
        if "concurrency" in extra:
            parts.append(f"concurrency={extra['concurrency']}")
        if extra.get("batching"):
            b = extra["batching"]
            parts.append(
                f"merged batches: {b['batches']} of mean size {b['mean_batch_size']:.1f} "
                f"(max {b['max_batch_size']}, {100 * b['full_fraction']:.0f} % full)"
            )
        if extra.get("pipeline"):
            stages = extra["pipeline"]
            parts.append(f"pipeline: {len(stages)} stages")
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
        f"max {lat.max_ms:.4f}",
        f"  p50 {lat.p50_ms:.4f}  p90 {lat.p90_ms:.4f}  p95 {lat.p95_ms:.4f}  "
        f"p99 {lat.p99_ms:.4f}  p99.9 {lat.p99_9_ms:.4f}",
        f"Throughput: {r.throughput_qps:,.2f} queries/s = {r.throughput_samples_per_s:,.2f} "
        f"samples/s over {r.duration_s:.3f} s",
    ]
    if r.target_qps is not None:
        lines.append(f"  offered load: {r.target_qps:,.2f} queries/s (Poisson)")
    lines += [
        f"Utilisation: {100 * r.utilization:.1f} % (engine-busy time / (wall x instances))",
        f"Machine: {m['cpu']}, {m['cores_available']} core(s)"
        + (f" [{' '.join(m['cpu_features'])}]" if m.get("cpu_features") else "")
        + f"; {m['platform']}; Python {m['python']}",
        f"Versions: {versions}",
        "=" * 72,
    ]
    return "\n".join(lines)
