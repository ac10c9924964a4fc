"""Before/after measurement of models on the real engine: load, prepare, warm-up and steady-state
inference (MegEngine ``load_and_run``'s stages), plus output agreement.

This module holds the optimisers' one timing loop (:func:`measure_models`). Contenders are timed
interleaved: every contender runs a share of its queries in each round, rounds repeat, and the
percentiles are taken over all of a contender's queries, so drift on a shared machine falls on
every contender alike. A contender may do host work per query (``host``: normalising uint8
pixels, a layout transpose), which is timed with the engine call, so a pipeline that moves work
into the graph is compared with the pipeline that does it on the host. Percentiles are computed
as ``nnperf bench`` computes them (:class:`nnperf.bench.stats.LatencyStats`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError
from nnperf.model import ModelSource
from nnperf.optimize.config import run_config
from nnperf.optimize.verify import Agreement, compare_outputs
from nnperf.table import Column, Table

__all__ = [
    "Comparison",
    "Contender",
    "HostFn",
    "Measurement",
    "StageTimes",
    "compare_before_after",
    "comparison_table",
    "format_table",
    "measure_model",
    "measure_models",
]

HostFn = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
"""Host-side work of one query: takes the raw feed, returns what the engine is given."""


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


@dataclass(frozen=True)
class Contender:
    """One model to time.

    Attributes:
        model: the model.
        feeds: its queries (cycled through by the timed runs).
        config: run configuration (default ``RunConfig(device="cpu(1)")``).
        host: host work done on each query before the engine call, timed with it (default none).
    """

    model: ModelSource
    feeds: Sequence[Mapping[str, np.ndarray]]
    config: RunConfig | None = None
    host: HostFn | None = None


@dataclass(frozen=True)
class Measurement:
    """What :func:`measure_models` measured for one contender.

    Attributes:
        times: stage timings and latency statistics.
        outputs: outputs of one pass over the contender's feeds (empty unless asked for).
        output_names: the model's output names, in order.
    """

    times: StageTimes
    outputs: list[list[np.ndarray]] = field(repr=False)
    output_names: tuple[str, ...]


def _split(total: int, parts: int) -> list[int]:
    """``total`` queries spread over ``parts`` rounds, as evenly as possible."""
    return [total // parts + (1 if r < total % parts else 0) for r in range(parts)]


def measure_models(
    contenders: Mapping[str, Contender],
    *,
    iters: int = 20,
    rounds: int = 5,
    return_outputs: bool = False,
) -> dict[str, Measurement]:
    """Load every contender, warm each up once, then time them interleaved.

    Args:
        contenders: label -> what to run.
        iters: timed queries per contender (default 20).
        rounds: rounds the queries are spread over (default 5; at most ``iters``); each round
            runs every contender once, starting one contender later than the round before.
        return_outputs: also return each contender's outputs on one pass over its feeds (after
            timing, not timed).

    Raises:
        InvalidInputError: no contenders, a contender without feeds, ``iters`` or ``rounds`` < 1.
    """
    from nnperf.bench.stats import LatencyStats
    from nnperf.runtime import Session

    if not contenders:
        raise InvalidInputError("measure_models: got no contenders; expected at least one")
    if iters < 1 or rounds < 1:
        raise InvalidInputError(
            f"measure_models: got iters={iters}, rounds={rounds}; expected both >= 1"
        )
    for label, c in contenders.items():
        if not c.feeds:
            raise InvalidInputError(f"contender {label!r}: got no feeds; expected at least one")
    labels = list(contenders)
    sessions: dict[str, Any] = {}
    try:
        for label in labels:
            c = contenders[label]
            sessions[label] = Session(c.model, config=run_config(c.config))
        queries = {label: _query(sessions[label], contenders[label]) for label in labels}
        warmup_ns: dict[str, int] = {}
        for label in labels:
            t0 = time.perf_counter_ns()
            queries[label](0)
            warmup_ns[label] = time.perf_counter_ns() - t0
        lat: dict[str, list[int]] = {label: [] for label in labels}
        wall: dict[str, int] = dict.fromkeys(labels, 0)
        done: dict[str, int] = dict.fromkeys(labels, 0)
        clock = time.perf_counter_ns
        for r, share in enumerate(_split(iters, min(rounds, iters))):
            for k in range(len(labels)):
                label = labels[(r + k) % len(labels)]
                call, out = queries[label], lat[label]
                start = clock()
                for i in range(done[label], done[label] + share):
                    t0 = clock()
                    call(i)
                    out.append(clock() - t0)
                wall[label] += clock() - start
                done[label] += share
        result: dict[str, Measurement] = {}
        for label in labels:
            sess, c = sessions[label], contenders[label]
            stats = LatencyStats.from_ns(lat[label])
            outputs = (
                [sess.run(dict(c.host(f) if c.host else f)) for f in c.feeds]
                if return_outputs
                else []
            )
            result[label] = Measurement(
                times=StageTimes(
                    load_ms=sess.stages.load_ns / 1e6,
                    prepare_ms=sess.stages.prepare_ns / 1e6,
                    warmup_ms=warmup_ns[label] / 1e6,
                    latency_ms=stats.p50_ms,
                    p90_ms=stats.p90_ms,
                    throughput_qps=stats.count / (wall[label] / 1e9) if wall[label] else 0.0,
                    iters=stats.count,
                ),
                outputs=outputs,
                output_names=tuple(o.name for o in sess.outputs),
            )
        return result
    finally:
        for sess in sessions.values():
            sess.close()


def _query(sess: Any, contender: Contender) -> Callable[[int], object]:
    """Query ``i`` of ``contender``: its host work (if any) and the engine call."""
    feeds = [dict(f) for f in contender.feeds]
    n = len(feeds)
    run, host = sess.run, contender.host
    if host is None:
        return lambda i: run(feeds[i % n])
    return lambda i: run(dict(host(feeds[i % n])))


def measure_model(
    model: ModelSource,
    feeds: Sequence[Mapping[str, np.ndarray]],
    *,
    config: RunConfig | None = None,
    iters: int = 20,
    return_outputs: bool = False,
    host: HostFn | None = None,
) -> tuple[StageTimes, list[list[np.ndarray]]]:
    """Load ``model`` with ``nnperf``'s runtime and time its stages on ``feeds``.

    Args:
        model: the model.
        feeds: queries, cycled through by the timed runs; outputs of one pass over all are
            returned when asked for.
        config: run configuration (default ``RunConfig(device="cpu(1)")``: one stable thread).
        iters: timed runs (default 20).
        return_outputs: also return the outputs of one pass over ``feeds``.
        host: host work per query, timed with the engine call (default none).
    """
    m = measure_models(
        {"model": Contender(model, feeds, config=config, host=host)},
        iters=iters,
        rounds=1,
        return_outputs=return_outputs,
    )["model"]
    return m.times, m.outputs


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
    before_host: HostFn | None = None,
    config: RunConfig | None = None,
    after_config: RunConfig | None = None,
    iters: int = 20,
    rounds: int = 5,
    dequantize: Mapping[str, tuple[float, int]] | None = None,
) -> Comparison:
    """Measure both models interleaved (before, after, after, before, ... in ``rounds`` rounds)
    and compare their outputs.

    Args:
        before: the original model.
        after: the edited model.
        feeds: queries for ``before`` (given to ``before_host`` first when there is one).
        after_feeds: queries for the edited model when its inputs differ (default: ``feeds``).
        before_host: host work the original pipeline does on each query and the edited model
            does in its graph (e.g. uint8 pixels -> normalised float32); timed with the original
            model's engine call, so the table compares whole pipelines (default none).
        config: run configuration (default ``RunConfig(device="cpu(1)")``).
        after_config: run configuration for the edited model (default: ``config``).
        iters: timed queries per model (default 20).
        rounds: rounds the queries are spread over (default 5).
        dequantize: output name -> (scale, zero_point) to turn 8-bit outputs of the edited model
            back into floats before comparing.
    """
    a_feeds = after_feeds if after_feeds is not None else feeds
    m = measure_models(
        {
            "before": Contender(before, feeds, config=config, host=before_host),
            "after": Contender(after, a_feeds, config=after_config or config),
        },
        iters=iters,
        rounds=rounds,
        return_outputs=True,
    )
    b, a = m["before"], m["after"]
    a_out = a.outputs
    if dequantize:
        a_out = [
            [
                (o.astype(np.float32) - dequantize[n][1]) * dequantize[n][0]
                if n in dequantize
                else o
                for n, o in zip(a.output_names, q)
            ]
            for q in a_out
        ]
    try:
        agreement: Agreement | None = compare_outputs(b.outputs, a_out)
    except Exception:  # different output structure (e.g. a split model): no agreement figure
        agreement = None
    return Comparison(before=b.times, after=a.times, agreement=agreement)


def comparison_table(
    comp: Comparison, *, before_label: str = "before", after_label: str = "after"
) -> Table:
    """The before/after table (ms, queries/s, gain; then output agreement) as a Table."""
    rows: list[tuple[Any, ...]] = []
    for label, b, a in (
        ("load (ms)", comp.before.load_ms, comp.after.load_ms),
        ("prepare (ms)", comp.before.prepare_ms, comp.after.prepare_ms),
        ("warm-up (ms)", comp.before.warmup_ms, comp.after.warmup_ms),
        ("inference p50 (ms)", comp.before.latency_ms, comp.after.latency_ms),
        ("inference p90 (ms)", comp.before.p90_ms, comp.after.p90_ms),
        ("throughput (q/s)", comp.before.throughput_qps, comp.after.throughput_qps),
    ):
        # gain > 1: the edited model is better (less time, or more queries per second)
        if label.startswith("throughput"):
            ratio = a / b if b else float("nan")
        else:
            ratio = b / a if a else float("nan")
        rows.append((label, b, a, ratio))
    cols = (
        Column("stage"),
        Column("before", before_label, digits=3),
        Column("after", after_label, digits=3),
        Column("gain", "gain", "x", 2),
    )
    if comp.agreement is not None:
        ag = comp.agreement
        agree = [("max abs error", None, float(f"{ag.max_abs_err:.4g}"), None),
                 ("cosine similarity", None, round(ag.cosine, 6), None)]  # fmt: skip
        if ag.top1_agreement is not None:
            agree.append(("top-1 agreement", None, ag.top1_agreement, None))
        rows += agree
    return Table("", cols, rows)


def format_table(
    comp: Comparison, *, before_label: str = "before", after_label: str = "after"
) -> str:
    """The before/after table as text (ms, queries/s, agreement)."""
    return comparison_table(comp, before_label=before_label, after_label=after_label).to_text()
