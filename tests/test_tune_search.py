"""The measured search on tiny real models: structure, invariants and the noise-aware decision."""

from __future__ import annotations

import json
import math

import pytest
from models import fixed_batch_model, matmul_model

from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError
from nnperf.model import load_model
from nnperf.tune import (
    Candidate,
    CandidateResult,
    Measurement,
    Objective,
    SearchSpace,
    decide,
    tune,
)
from nnperf.types import Progress


def _m(value: float) -> Measurement:
    return Measurement(
        value=value,
        prepare_ms=1.0,
        warmup_ms=0.5,
        p50_ms=1.0,
        p99_ms=2.0,
        samples_per_s=value,
        duration_s=0.1,
        wall_s=0.2,
        phase="round 1",
    )


def _cand(values: list[float], **cfg: object) -> CandidateResult:
    return CandidateResult(
        Candidate(RunConfig(**cfg)),
        measurements=tuple(_m(v) for v in values),  # type: ignore[arg-type]
    )


def test_decide_clear_winner_beats_noise() -> None:
    fast = _cand([200, 202, 198], device="cpu(1)*2")
    slow = _cand([100, 101, 99], device="cpu(2)")
    winner, runner, ratio, noise, reason = decide([slow, fast], Objective("throughput"))
    assert winner is fast and runner is slow
    assert ratio == pytest.approx(2.0)
    assert noise >= 0.01 and "beats" in reason


def test_decide_prefers_simpler_within_noise() -> None:
    complex_ = _cand([105, 90, 120], device="cpu(1)*2", batch_size=8)  # median 105, ±14 %
    simple = _cand([100, 99, 101], device="cpu(2)")
    winner, runner, ratio, _, reason = decide([complex_, simple], Objective("throughput"))
    assert winner is simple and runner is complex_
    assert ratio < 1.0 and "simpler" in reason


def test_decide_latency_lower_wins() -> None:
    a = _cand([5.0, 5.1, 4.9], device="cpu(2)")
    b = _cand([9.0, 9.1, 8.9], device="cpu(1)")
    winner, _, ratio, _, _ = decide([b, a], Objective("latency"))
    assert winner is a and ratio == pytest.approx(9.0 / 5.0)


def test_decide_needs_a_measurement() -> None:
    with pytest.raises(InvalidInputError, match="no candidate"):
        decide([CandidateResult(Candidate(RunConfig()))], Objective("throughput"))


def test_objective_validation() -> None:
    assert Objective("latency").scenario == "single-stream"
    assert Objective("throughput").scenario == "offline"
    assert Objective("throughput", latency_budget_ms=5).scenario == "server"
    with pytest.raises(InvalidInputError):
        Objective("speed")
    with pytest.raises(InvalidInputError):
        Objective("latency", latency_budget_ms=5)
    with pytest.raises(InvalidInputError):
        Objective("throughput", latency_budget_ms=-1)
    with pytest.raises(InvalidInputError):
        Objective("latency", percentile=90)


def test_tune_throughput_structure_and_round_trip(tmp_path: object) -> None:
    calls: list[Progress] = []
    result = tune(
        matmul_model(),
        objective="throughput",
        time_budget_s=2.5,
        batch_sizes=[1, 2],
        progress=calls.append,
    )
    statuses = [c.status for c in result.candidates]
    assert statuses.count("winner") == 1
    assert result.winner.status == "winner" and result.winner.measurements
    assert isinstance(result.config, RunConfig)
    assert result.winner.candidate.instances >= 1
    # every measured candidate has the three stages and a positive objective value
    for c in result.candidates:
        for m in c.measurements:
            assert m.prepare_ms >= 0 and m.warmup_ms >= 0 and m.value > 0
            assert m.p50_ms <= m.p99_ms
    # the budget is honoured (one in-flight run may overshoot a little)
    assert result.elapsed_s < 2.5 + 3.0
    assert calls and calls[-1].what == "done" and calls[-1].duration_s == 2.5
    elapsed = [p.elapsed_s for p in calls]
    assert elapsed == sorted(elapsed) and calls[-1].done == sum(
        len(c.measurements) for c in result.candidates
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["schema"] == "nnperf.tune/1" and data["winner"] == result.winner.label
    assert RunConfig.from_dict(data["config"]) == result.config


def test_tune_latency_objective_single_stream() -> None:
    result = tune(matmul_model(), objective="latency", percentile=99, time_budget_s=1.5)
    assert result.objective.kind == "latency"
    assert all(c.candidate.config.batch_size is None for c in result.candidates)
    assert result.winner.median > 0 and math.isfinite(result.winner.median)


def test_tune_server_objective_within_budget() -> None:
    result = tune(
        matmul_model(),
        objective="throughput",
        latency_budget_ms=1000.0,
        time_budget_s=2.0,
        devices=["cpu(1)"],
        batch_sizes=[1],
    )
    assert result.objective.scenario == "server"
    assert result.winner.median > 0
    assert all(m.p99_ms <= 1000.0 for m in result.winner.measurements)


def test_failed_candidates_are_reported_not_fatal() -> None:
    # batch 2 cannot be set on a model whose batch axis is fixed at 1: that candidate fails.
    space = SearchSpace(devices=("cpu(1)",), batch_sizes=(1, 2))
    result = tune(fixed_batch_model(), objective="throughput", space=space, time_budget_s=1.5)
    failed = [c for c in result.candidates if c.status == "failed"]
    assert len(failed) == 1 and "fixed leading dimension" in (failed[0].error or "")
    assert result.config.batch_size is None


def test_variants_are_a_primary_axis() -> None:
    result = tune(
        matmul_model(),
        objective="throughput",
        time_budget_s=2.0,
        devices=["cpu(1)"],
        batch_sizes=[1],
        variants={"wide": matmul_model(k=64, n=64)},
    )
    assert {c.candidate.variant for c in result.candidates} >= {"base", "wide"}
    with pytest.raises(InvalidInputError, match="reserved"):
        tune(matmul_model(), time_budget_s=1, variants={"base": matmul_model()})


def test_bad_arguments() -> None:
    blob = load_model(matmul_model())
    with pytest.raises(InvalidInputError, match="time_budget_s"):
        tune(blob, time_budget_s=0)
    with pytest.raises(InvalidInputError, match="objective"):
        tune(blob, objective="fast")
