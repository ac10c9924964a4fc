"""Before/after measurement of two models, the same way ``nnperf bench`` measures: load, prepare,
warm-up and steady-state inference on the real engine, plus output agreement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnperf.engines.config import RunConfig
from nnperf.model import ModelSource
from nnperf.optimize.verify import Agreement, compare_outputs

__all__ = ["Comparison", "StageTimes", "compare_before_after", "format_table", "measure_model"]


@dataclass(frozen=True)
class StageTimes:
    """Stage timings of one model (MegEngine ``load_and_run`` stages).

    Attributes:
        load_ms: reading and checking the model.
        prepare_ms: creating the engine session (graph optimisation, weight prepacking).
        warmup_ms: the first run.
        latency_ms: median of the timed runs.
        p90_ms: 90th percentile of the timed runs.
        throughput_qps: queries per second over the timed runs (one caller).
        iters: timed runs.
    """

    load_ms: float
    prepare_ms: float
    warmup_ms: float
    latency_ms: float
    p90_ms: float
    throughput_qps: float
    iters: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def measure_model(
    model: ModelSource,
    feeds: Sequence[Mapping[str, np.ndarray]],
    *,
    config: RunConfig | None = None,
    iters: int = 20,
    return_outputs: bool = False,
) -> tuple[StageTimes, list[list[np.ndarray]]]:
    """Load ``model`` with ``nnperf``'s runtime and time its stages on ``feeds``.

    Args:
        model: the model.
        feeds: queries; the timed runs use the first, outputs of one pass over all are returned.
        config: run configuration (default ``RunConfig(device="cpu(1)")``: one stable thread).
        iters: timed runs (default 20).
        return_outputs: also return the outputs of one pass over ``feeds``.
    """
    from nnperf.bench.scenarios import run_benchmark
    from nnperf.runtime import Session

    cfg = config or RunConfig(device="cpu(1)")
    sess = Session(model, config=cfg)
    try:
        # nnperf bench's single-stream loop on the already loaded session: one warm-up run, then
        # ``iters`` timed queries on the first feed.
        result = run_benchmark(
            sess.model,
            session=sess,
            feeds=dict(feeds[0]),
            queries=max(1, iters),
            duration_s=0.0,  # exactly ``iters`` timed runs, not bench's 1 s minimum
            warmup_iters=1,
        )
        outs = [sess.run(dict(f)) for f in feeds] if return_outputs else []
        stages = sess.stages
    finally:
        sess.close()
    return (
        StageTimes(
            load_ms=stages.load_ns / 1e6,
            prepare_ms=stages.prepare_ns / 1e6,
            warmup_ms=float(result.stages_ms["warmup_ms"][0]),
            latency_ms=result.latency.p50_ms,
            p90_ms=result.latency.p90_ms,
            throughput_qps=result.throughput_qps,
            iters=result.queries,
        ),
        outs,
    )


@dataclass(frozen=True)
class Comparison:
    """A before/after pair and how their outputs agree."""

    before: StageTimes
    after: StageTimes
    agreement: Agreement | None

    @property
    def speedup(self) -> float:
        """before latency ÷ after latency (> 1: faster after)."""
        return self.before.latency_ms / self.after.latency_ms if self.after.latency_ms else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "speedup": self.speedup,
            "agreement": None if self.agreement is None else self.agreement.to_dict(),
        }


def compare_before_after(
    before: ModelSource,
    after: ModelSource,
    feeds: Sequence[Mapping[str, np.ndarray]],
    *,
    after_feeds: Sequence[Mapping[str, np.ndarray]] | None = None,
    config: RunConfig | None = None,
    after_config: RunConfig | None = None,
    iters: int = 20,
    dequantize: Mapping[str, tuple[float, int]] | None = None,
) -> Comparison:
    """Measure both models (interleaved: before, after) and compare outputs.

    Args:
        after_feeds: queries for the edited model when its inputs differ (default: ``feeds``).
        after_config: run configuration for the edited model (default: ``config``).
        dequantize: output name -> (scale, zero_point) to turn 8-bit outputs of the edited model
            back into floats before comparing.
    """
    a_feeds = after_feeds if after_feeds is not None else feeds
    b_stats, b_out = measure_model(before, feeds, config=config, iters=iters, return_outputs=True)
    a_stats, a_out = measure_model(
        after, a_feeds, config=after_config or config, iters=iters, return_outputs=True
    )
    if dequantize:
        from nnperf.runtime import Session

        with Session(after, config=RunConfig(device="cpu(1)")) as s:
            names = [o.name for o in s.outputs]
        a_out = [
            [
                (o.astype(np.float32) - dequantize[n][1]) * dequantize[n][0]
                if n in dequantize
                else o
                for n, o in zip(names, q)
            ]
            for q in a_out
        ]
    try:
        agreement: Agreement | None = compare_outputs(b_out, a_out)
    except Exception:  # different output structure (e.g. a split model): no agreement figure
        agreement = None
    return Comparison(before=b_stats, after=a_stats, agreement=agreement)


def format_table(
    comp: Comparison, *, before_label: str = "before", after_label: str = "after"
) -> str:
    """The before/after table as text (ms, queries/s, agreement)."""
    rows = [
        ("load (ms)", comp.before.load_ms, comp.after.load_ms),
        ("prepare (ms)", comp.before.prepare_ms, comp.after.prepare_ms),
        ("warm-up (ms)", comp.before.warmup_ms, comp.after.warmup_ms),
        ("inference p50 (ms)", comp.before.latency_ms, comp.after.latency_ms),
        ("inference p90 (ms)", comp.before.p90_ms, comp.after.p90_ms),
        ("throughput (q/s)", comp.before.throughput_qps, comp.after.throughput_qps),
    ]
    w = max(len(before_label), len(after_label), 10)
    lines = [f"{'stage':<20} {before_label:>{w}} {after_label:>{w}} {'gain':>8}"]
    for label, b, a in rows:
        # gain > 1: the edited model is better (less time, or more queries per second)
        if label.startswith("throughput"):
            ratio = a / b if b else float("nan")
        else:
            ratio = b / a if a else float("nan")
        lines.append(f"{label:<20} {b:>{w}.3f} {a:>{w}.3f} {ratio:>7.2f}x")
    if comp.agreement is not None:
        ag = comp.agreement
        lines.append(f"{'max abs error':<20} {'':>{w}} {ag.max_abs_err:>{w}.4g}")
        lines.append(f"{'cosine similarity':<20} {'':>{w}} {ag.cosine:>{w}.6f}")
        if ag.top1_agreement is not None:
            lines.append(f"{'top-1 agreement':<20} {'':>{w}} {ag.top1_agreement:>{w}.3f}")
    return "\n".join(lines)
