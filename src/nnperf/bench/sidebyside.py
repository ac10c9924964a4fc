"""Several run configurations measured side by side on the same inputs, interleaved.

``nnperf bench MODEL --engine onnxruntime,openvino`` runs this: every configuration (an engine, a
precision, a device split...) is loaded once, checked for output agreement with the first on the
same feed, then measured in rounds ``A B C, A B C, ...`` so a noisy machine slows every contender
alike; each figure is the median over rounds and each ratio is taken against the first row.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnperf.bench.inputs import make_feeds
from nnperf.bench.machine import machine_info
from nnperf.bench.scenarios import BenchResult, Scenario, run_benchmark
from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError
from nnperf.model import ModelSource, load_model
from nnperf.runtime.session import Session

__all__ = ["SIDE_BY_SIDE_SCHEMA", "SideBySide", "SideBySideRow", "run_side_by_side"]

SIDE_BY_SIDE_SCHEMA = "nnperf.sidebyside/1"
ProgressFn = Callable[[str], None]


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
    """

    label: str
    config: RunConfig
    rounds: tuple[BenchResult, ...]
    max_abs_err: float
    cosine: float
    load_ms: float
    prepare_ms: float
    engine_load: tuple[Mapping[str, Any], ...] = ()

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
        """JSON-ready form (each round's full ``nnperf.bench/1`` document included)."""
        return {
            "label": self.label,
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
        lines = [
            "=" * len(head),
            f"nnperf bench: {self.model['name']} side by side  scenario={self.scenario.value}  "
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
    """(max abs error, smallest cosine over outputs) of ``out`` against ``ref``."""
    # Imported here: bench loads the optimize package only when it compares outputs.
    from nnperf.optimize.verify import compare_outputs

    agreement = compare_outputs(list(ref), list(out))
    return agreement.max_abs_err, agreement.cosine


def run_side_by_side(
    model: ModelSource,
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
        model: path, ``zoo:NAME``, bytes or ``onnx.ModelProto``.
        configs: two or more run configurations (the first is the reference for ratios and
            output agreement).
        labels: one short name per config (default: what differs between them).
        scenario: ``single-stream``, ``offline`` or ``server``.
        rounds: interleaved rounds (default 3); figures are medians over rounds.
        queries / duration_s: minimums per round and config (defaults 100 and 1 s).
        warmup_iters: warm-up runs per instance before the first round (default 3).
        inputs: input specs, as ``nnperf bench --input``.
        target_qps: the server scenario's offered load.
        seed: random seed of the synthetic inputs.
        progress: called with a line naming what is being measured.
        bench: further :func:`~nnperf.bench.scenarios.run_benchmark` arguments (``api``,
            ``concurrency``...).

    Raises:
        InvalidInputError: fewer than two configs, labels of another length, or bad arguments.
    """
    if len(configs) < 2:
        raise InvalidInputError(
            f"side by side: got {len(configs)} configuration(s), expected two or more"
        )
    if rounds < 1:
        raise InvalidInputError(f"rounds: got {rounds}, expected >= 1")
    names = list(labels) if labels is not None else _labels(configs)
    if len(names) != len(configs):
        raise InvalidInputError(
            f"labels: got {len(names)} for {len(configs)} configurations; expected one each"
        )
    blob = load_model(model)
    scen = Scenario(scenario)
    sessions: list[Session] = []
    try:
        for cfg in configs:
            sessions.append(Session(blob, config=cfg))
        first = sessions[0].config
        feed = make_feeds(
            sessions[0].inputs,
            batch_size=first.batch_size or 1,
            specs=inputs,
            seed=seed,
            dims=first.dims,
            shapes=first.shapes,
        )
        ref = sessions[0].run(feed)
        agreement = [(0.0, 1.0)] + [_agreement(ref, s.run(feed)) for s in sessions[1:]]
        results: list[list[BenchResult]] = [[] for _ in sessions]
        for r in range(rounds):
            for i, sess in enumerate(sessions):
                if progress is not None:
                    progress(f"round {r + 1}/{rounds}: {names[i]}")
                results[i].append(
                    run_benchmark(
                        blob,
                        scenario=scen,
                        session=sess,
                        config=sess.config,
                        queries=queries,
                        duration_s=duration_s,
                        warmup_iters=warmup_iters if r == 0 else 0,
                        feeds=feed,
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
            )
            for i, sess in enumerate(sessions)
        )
    finally:
        for s in sessions:
            s.close()
    return SideBySide(
        model={"name": blob.name, "path": blob.path, "sha256": blob.sha256},
        scenario=scen,
        rows=rows,
        machine=machine_info(),
    )


def _labels(configs: Sequence[RunConfig]) -> list[str]:
    """Short labels: the words of each config's description that are not common to all."""
    words = [c.describe().split(" ") for c in configs]
    common = set(words[0]).intersection(*map(set, words[1:]))
    out = []
    for w in words:
        own = [x for x in w if x not in common] or w[:1]
        out.append(" ".join(own))
    if len(set(out)) < len(out):
        out = [" ".join(w) for w in words]
    return out
