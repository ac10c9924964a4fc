"""Several run configurations, or several models, measured side by side, interleaved.

``nnperf bench MODEL --engine onnxruntime,openvino`` and ``nnperf bench A.onnx B.onnx`` run this:
every contender (a model with a configuration: an engine, a precision, a device split...) is
loaded once, checked for output agreement with the first on the same feed, then measured in rounds
``A B C, A B C, ...`` so a noisy machine slows every contender alike; each figure is the median
over rounds and each ratio is taken against the first row. Each row also keeps every query's
latency as the runtime observed it (``samples.latency_ns``), so ``nnperf compare`` can judge
whether a difference is more than noise.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnperf.bench.inputs import make_feeds
from nnperf.bench.machine import machine_info
from nnperf.bench.scenarios import BenchResult, Scenario, run_benchmark
from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError
from nnperf.model import ModelBlob, ModelSource, load_model
from nnperf.runtime.observers import RunEvent
from nnperf.runtime.session import Session
from nnperf.types import Progress, ProgressFn

__all__ = ["SIDE_BY_SIDE_SCHEMA", "SideBySide", "SideBySideRow", "run_side_by_side"]

SIDE_BY_SIDE_SCHEMA = "nnperf.sidebyside/1"


@dataclass(frozen=True)
class SideBySideRow:
    """One configuration's results.

    Attributes:
        label: a short name (``openvino bf16``).
        config: what ran.
        rounds: one benchmark result per round.
        max_abs_err / cosine: output agreement with the first row on the same feed (the first
            row: 0 and 1).
        load_ms / prepare_ms: loading the model and creating every engine instance.
        engine_load: what the engine reported per instance (compile vs cached load...).
        model: name, path and sha256 of the model this row ran.
        latency_ns: every measured query's latency (submission to outputs, as the runtime
            observed it; warm-up excluded), over all rounds.
    """

    label: str
    config: RunConfig
    rounds: tuple[BenchResult, ...]
    max_abs_err: float
    cosine: float
    load_ms: float
    prepare_ms: float
    engine_load: tuple[Mapping[str, Any], ...] = ()
    model: Mapping[str, Any] | None = None
    latency_ns: tuple[int, ...] = ()

    @property
    def throughput_samples_per_s(self) -> float:
        """Median samples/s over rounds."""
        return statistics.median(r.throughput_samples_per_s for r in self.rounds)

    @property
    def p50_ms(self) -> float:
        """Median over rounds of each round's p50 latency."""
        return statistics.median(r.latency.p50_ms for r in self.rounds)

    @property
    def p99_ms(self) -> float:
        """Median over rounds of each round's p99 latency."""
        return statistics.median(r.latency.p99_ms for r in self.rounds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (each round's full bench document included)."""
        return {
            "label": self.label,
            **({"model": dict(self.model)} if self.model is not None else {}),
            "config": self.config.to_dict(),
            "throughput_samples_per_s": round(self.throughput_samples_per_s, 4),
            "p50_ms": round(self.p50_ms, 6),
            "p99_ms": round(self.p99_ms, 6),
            "max_abs_err": self.max_abs_err,
            "cosine": self.cosine,
            "load_ms": round(self.load_ms, 3),
            "prepare_ms": round(self.prepare_ms, 3),
            "engine_load": [dict(e) for e in self.engine_load],
            "rounds": [r.to_dict() for r in self.rounds],
            **({"samples": {"latency_ns": list(self.latency_ns)}} if self.latency_ns else {}),
        }


@dataclass(frozen=True)
class SideBySide:
    """The comparison; ratios are to the first row."""

    model: dict[str, Any]
    scenario: Scenario
    rows: tuple[SideBySideRow, ...]
    machine: dict[str, Any]

    def ratio(self, row: SideBySideRow) -> tuple[float, float]:
        """(throughput ÷ first row's, p50 ÷ first row's)."""
        first = self.rows[0]
        tput = (
            row.throughput_samples_per_s / first.throughput_samples_per_s
            if (first.throughput_samples_per_s)
            else 0.0
        )
        lat = row.p50_ms / first.p50_ms if first.p50_ms else 0.0
        return tput, lat

    def render(self) -> str:
        """The table ``nnperf bench --engine a,b`` prints."""
        width = max(12, *(len(r.label) for r in self.rows))
        rounds = len(self.rows[0].rounds)
        head = (
            f"{'configuration':<{width}}  {'samples/s':>10}  {'p50 ms':>9}  {'p99 ms':>9}  "
            f"{'tput x':>6}  {'p50 x':>6}  {'max abs err':>11}  {'cosine':>9}  {'prepare ms':>10}"
        )
        models = {str((r.model or self.model).get("name")) for r in self.rows}
        name = " vs ".join(r.label for r in self.rows) if len(models) > 1 else self.model["name"]
        lines = [
            "=" * len(head),
            f"nnperf bench: {name} side by side  scenario={self.scenario.value}  "
            f"(medians of {rounds} interleaved round(s); ratios and agreement vs the first row)",
            "-" * len(head),
            head,
        ]
        for row in self.rows:
            tput, lat = self.ratio(row)
            lines.append(
                f"{row.label:<{width}}  {row.throughput_samples_per_s:>10.2f}  "
                f"{row.p50_ms:>9.4f}  {row.p99_ms:>9.4f}  {tput:>6.2f}  {lat:>6.2f}  "
                f"{row.max_abs_err:>11.4g}  {row.cosine:>9.6f}  {row.prepare_ms:>10.1f}"
            )
        m = self.machine
        versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
        lines += [
            "-" * len(head),
            f"Machine: {m['cpu']}, {m['cores_available']} core(s); Versions: {versions}",
            "=" * len(head),
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The ``nnperf.sidebyside/1`` JSON document."""
        return {
            "schema": SIDE_BY_SIDE_SCHEMA,
            "model": self.model,
            "scenario": self.scenario.value,
            "machine": self.machine,
            "rows": [
                {**r.to_dict(), "ratio_throughput": self.ratio(r)[0], "ratio_p50": self.ratio(r)[1]}
                for r in self.rows
            ],
        }


def _agreement(ref: Sequence[np.ndarray], out: Sequence[np.ndarray]) -> tuple[float, float]:
    """(max abs error, smallest cosine over outputs) of ``out`` against ``ref``; NaN when the
    outputs cannot be compared (other counts or shapes: another model's)."""
    # Imported here: bench loads the optimize package only when it compares outputs.
    from nnperf.optimize.verify import compare_outputs

    try:
        agreement = compare_outputs(list(ref), list(out))
    except InvalidInputError:
        return float("nan"), float("nan")
    return agreement.max_abs_err, agreement.cosine


class _Latencies:
    """Run observer keeping each query's latency (ns) while ``on`` is set."""

    def __init__(self) -> None:
        self.on = False
        self.values: list[int] = []
        self._lock = threading.Lock()

    def on_run(self, event: RunEvent) -> None:
        if self.on and event.error is None:
            with self._lock:
                self.values.append(event.end_ns - event.submit_ns)


def run_side_by_side(
    model: ModelSource | Sequence[ModelSource],
    configs: Sequence[RunConfig],
    *,
    labels: Sequence[str] | None = None,
    scenario: Scenario | str = Scenario.SINGLE_STREAM,
    rounds: int = 3,
    queries: int = 100,
    duration_s: float = 1.0,
    warmup_iters: int = 3,
    inputs: Mapping[str, str] | None = None,
    target_qps: float | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
    **bench: Any,
) -> SideBySide:
    """Measure ``configs`` on the same model and inputs, interleaved.

    Args:
        model: path, ``zoo:NAME``, bytes or ``onnx.ModelProto``; or a list of models, one per
            config (``nnperf bench A.onnx B.onnx``: the same config twice). Models whose inputs
            differ get their own synthetic feeds (same seed); agreement with the first row is
            NaN when the outputs differ in count or shape.
        configs: two or more run configurations (the first is the reference for ratios and
            output agreement).
        labels: one short name per row (default: what differs between the configs, or the
            model names).
        scenario: ``single-stream``, ``offline`` or ``server``.
        rounds: interleaved rounds (default 3); figures are medians over rounds.
        queries / duration_s: minimums per round and config (defaults 100 and 1 s).
        warmup_iters: warm-up runs per instance before the first round (default 3).
        inputs: input specs, as ``nnperf bench --input``.
        target_qps: the server scenario's offered load.
        seed: random seed of the synthetic inputs.
        progress: called before each measurement with a :class:`~nnperf.types.Progress` naming
            what is measured next.
        bench: further :func:`~nnperf.bench.scenarios.run_benchmark` arguments (``api``,
            ``concurrency``...).

    Raises:
        InvalidInputError: fewer than two configs, labels of another length, or bad arguments.
    """
    blobs = _models(model, len(configs))
    if len(configs) < 2:
        raise InvalidInputError(
            f"side by side: got {len(configs)} configuration(s), expected two or more"
        )
    if rounds < 1:
        raise InvalidInputError(f"rounds: got {rounds}, expected >= 1")
    several = isinstance(model, (list, tuple))
    names = list(labels) if labels is not None else _labels(configs, blobs if several else None)
    if len(names) != len(configs):
        raise InvalidInputError(
            f"labels: got {len(names)} for {len(configs)} configurations; expected one each"
        )
    scen = Scenario(scenario)
    sessions: list[Session] = []
    watchers = [_Latencies() for _ in configs]
    try:
        for blob, cfg, watch in zip(blobs, configs, watchers):
            sess = Session(blob, config=cfg)
            sess.observers.add(watch)
            sessions.append(sess)
        first = sessions[0].config

        def feed_for(sess: Session) -> dict[str, np.ndarray]:
            return make_feeds(
                sess.inputs,
                batch_size=first.batch_size or 1,
                specs=inputs,
                seed=seed,
                dims=first.dims,
                shapes=first.shapes,
            )

        feed = feed_for(sessions[0])
        feeds = [feed if s.inputs == sessions[0].inputs else feed_for(s) for s in sessions]
        ref = sessions[0].run(feed)
        agreement = [(0.0, 1.0)] + [
            _agreement(ref, s.run(f)) for s, f in zip(sessions[1:], feeds[1:])
        ]
        results: list[list[BenchResult]] = [[] for _ in sessions]
        for r in range(rounds):
            for i, sess in enumerate(sessions):
                if progress is not None:
                    progress(
                        Progress(
                            done=r * len(sessions) + i,
                            total=rounds * len(sessions),
                            what=f"round {r + 1}/{rounds}: {names[i]}",
                        )
                    )
                results[i].append(
                    _measure(
                        watchers[i],
                        blobs[i],
                        scenario=scen,
                        session=sess,
                        config=sess.config,
                        queries=queries,
                        duration_s=duration_s,
                        warmup_iters=warmup_iters if r == 0 else 0,
                        feeds=feeds[i],
                        target_qps=target_qps,
                        seed=seed,
                        **bench,
                    )
                )
        rows = tuple(
            SideBySideRow(
                label=names[i],
                config=sess.config,
                rounds=tuple(results[i]),
                max_abs_err=agreement[i][0],
                cosine=agreement[i][1],
                load_ms=sess.stages.load_ns / 1e6,
                prepare_ms=sess.stages.prepare_ns / 1e6,
                engine_load=sess.stages.engine,
                model={"name": blobs[i].name, "path": blobs[i].path, "sha256": blobs[i].sha256},
                latency_ns=tuple(watchers[i].values),
            )
            for i, sess in enumerate(sessions)
        )
    finally:
        for s in sessions:
            s.close()
    return SideBySide(
        model={"name": blobs[0].name, "path": blobs[0].path, "sha256": blobs[0].sha256},
        scenario=scen,
        rows=rows,
        machine=machine_info(),
    )


def _measure(watch: _Latencies, blob: ModelBlob, **kwargs: Any) -> BenchResult:
    """One round of one row; ``watch`` keeps its queries' latencies (the warm-up runs go to the
    engine instances directly, so the observer does not see them)."""
    watch.on = True
    try:
        return run_benchmark(blob, **kwargs)
    finally:
        watch.on = False


def _models(model: ModelSource | Sequence[ModelSource], count: int) -> list[ModelBlob]:
    """One loaded model per row: the same blob ``count`` times, or one per list item."""
    if isinstance(model, (list, tuple)):
        if len(model) != count:
            raise InvalidInputError(
                f"side by side: got {len(model)} models for {count} configurations; expected one "
                "model per configuration"
            )
        return [load_model(m) for m in model]
    blob = load_model(model)  # type: ignore[arg-type]
    return [blob] * count


def _labels(configs: Sequence[RunConfig], blobs: Sequence[ModelBlob] | None = None) -> list[str]:
    """Short labels: the words of each config's description that are not common to all; with
    several models, the model names (numbered when repeated), plus the config words."""
    if blobs is not None:
        base = _labels(configs) if len({c.describe() for c in configs}) > 1 else None
        names = [b.name for b in blobs]
        out = []
        for i, n in enumerate(names):
            label = n if names.count(n) == 1 else f"{n} #{names[: i + 1].count(n)}"
            out.append(f"{label} {base[i]}" if base else label)
        return out
    words = [c.describe().split(" ") for c in configs]
    common = set(words[0]).intersection(*map(set, words[1:]))
    out = []
    for w in words:
        own = [x for x in w if x not in common] or w[:1]
        out.append(" ".join(own))
    if len(set(out)) < len(out):
        out = [" ".join(w) for w in words]
    return out
