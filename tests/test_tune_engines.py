"""Tune across engines and precisions, guarded by agreement with the f32 reference."""

from __future__ import annotations

import json

import pytest
from models import small_convnet

import nnperf
from nnperf.bench import run_benchmark
from nnperf.cli import main
from nnperf.model import load_model
from nnperf.tune import tune
from nnperf.tune.guard import AccuracyGuard, guard_feeds
from nnperf.tune.report import render_tune_report
from nnperf.tune.space import Candidate


def test_guard_rejects_what_disagrees_with_the_reference():
    blob = load_model(small_convnet())
    guard = AccuracyGuard({"base": blob}, guard_feeds(blob, count=2), min_cosine=0.999999)
    ref = guard.check(Candidate(nnperf.RunConfig()))
    assert ref.passed and ref.cosine == 1.0
    ov = guard.check(Candidate(nnperf.RunConfig(engine="openvino")))
    assert ov.passed and ov.cosine > 0.999999  # same precision: same numbers
    bf16 = guard.check(Candidate(nnperf.RunConfig(engine="openvino", precision="bf16")))
    assert not bf16.passed and bf16.cosine < 0.999999
    assert "below --min-cosine" in guard.describe(bf16)
    with pytest.raises(nnperf.InvalidInputError, match=r"min_cosine: got 5"):
        AccuracyGuard({"base": blob}, guard_feeds(blob), min_cosine=5)


def test_tune_searches_engines_and_precisions_and_never_picks_a_rejected_one(tmp_path):
    cache = tmp_path / "tuned.json"
    result = tune(
        small_convnet(),
        objective="latency",
        engines=["onnxruntime", "openvino"],
        precisions=["f32", "bf16"],
        min_cosine=0.999999,  # bf16 cannot pass this: it is rejected, never measured
        time_budget_s=6,
        cache=cache,
    )
    by_status = {c.label: c.status for c in result.candidates}
    rejected = [c for c in result.candidates if c.status == "rejected"]
    assert rejected and all(c.candidate.config.precision == "bf16" for c in rejected)
    assert all(not c.measurements for c in rejected)
    assert result.config.precision == "f32"
    assert result.winner.accuracy is not None and result.winner.accuracy.passed
    assert any(lab.startswith("openvino") for lab in by_status)
    doc = json.loads(cache.read_text())
    assert set(doc["key"]["engines"]) == {"onnxruntime", "openvino"}
    assert doc["key"]["space"]["min_cosine"] == 0.999999
    assert doc["config"]["engine"] == result.config.engine
    # the cache is a RunConfig file naming its engine
    with nnperf.create(small_convnet(), config=str(cache)) as sess:
        assert sess.engine.name == result.config.engine


def test_tune_cli_takes_engines_precisions_and_min_cosine(tmp_path, capsys):
    path = str(tmp_path / "m.onnx")
    import onnx

    onnx.save(small_convnet(), path)
    code = main(
        [
            "tune", path, "--engine", "onnxruntime,openvino", "--precision", "all",
            "--objective", "latency", "--time-budget-s", "5", "--min-cosine", "0.99",
        ]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "cosine" in out and "accuracy: cosine" in out and "openvino" in out
    with pytest.raises(SystemExit) as exc:
        main(["tune", path, "--min-cosine", "5"])
    assert exc.value.code == 2 and "(0, 1]" in capsys.readouterr().err
    assert main(["tune", path, "--precision", "int4"]) == 2
    assert "expected 'all' or names" in capsys.readouterr().err


def test_calibration_adds_an_int8_candidate_guarded_on_held_out_samples(tmp_path, capsys):
    import numpy as np

    folder = tmp_path / "cal"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        np.save(folder / f"{i}.npy", rng.standard_normal((1, 3, 16, 16)).astype(np.float32))
    path = str(tmp_path / "m.onnx")
    import onnx

    onnx.save(small_convnet(), path)
    out = tmp_path / "t.json"
    code = main(
        ["tune", path, "--calibration", str(folder), "--objective", "latency",
         "--time-budget-s", "5", "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out.read_text())
    int8 = [c for c in doc["candidates"] if c["variant"] == "int8"]
    assert int8 and all(c["label"].endswith("[int8]") for c in int8)
    checked = [c for c in int8 if c["accuracy"]]
    assert checked and checked[0]["accuracy"]["samples"] == 2  # a quarter of 8, held out
    assert "int8" in doc["variants"]
    assert "[int8]" in capsys.readouterr().out


def test_tune_searches_runtime_techniques_and_names_the_winner_under_a_latency_budget(tmp_path):
    # Neuron's latency-bounded throughput objective: every candidate, the runtime techniques
    # (more workers, a pipeline, merge batching) included, is measured in the server scenario
    # within the p99 budget; the winner is named with why.
    cache = tmp_path / "t.json"
    result = tune(
        "zoo:mnist",
        objective="throughput",
        latency_budget_ms=50.0,
        batch_sizes=[1, 2],
        time_budget_s=12,
        cache=cache,
    )
    labels = {c.label for c in result.candidates if c.measurements}
    assert any("merge<=" in lab for lab in labels), labels
    assert any("pipeline" in lab for lab in labels) or any(" w" in lab for lab in labels)
    assert result.winner.median > 0  # feasible: some load met the budget
    assert result.winner.label in result.reason or result.reason
    text = render_tune_report(result)
    assert f"winner: {result.winner.label}" in text and "within p99 <= 50 ms" in text
    # the winner's config reruns as measured, technique included
    cfg = nnperf.RunConfig.load(cache)
    r = run_benchmark("zoo:mnist", config=cfg, scenario="offline", queries=50, duration_s=0.2)
    assert r.config.describe() == cfg.describe()


def test_tune_latency_of_multi_row_queries_tries_split_batching():
    result = tune(
        "zoo:mobilenetv2",
        objective="latency",
        batch_sizes=[4],
        devices=["cpu(1)*2"],
        time_budget_s=8,
    )
    split = [c for c in result.candidates if c.candidate.config.split_batch == 2]
    assert split and split[0].measurements, [c.label for c in result.candidates]
    assert all((c.candidate.config.batch_size or 1) == 4 for c in result.candidates)


def test_bench_and_serve_apply_a_configs_runtime_technique():
    from nnperf.serve.model import ServedModel
    from nnperf.serve.settings import ModelSettings

    merge = nnperf.RunConfig(device="cpu(1)*2", max_batch_size=4, max_delay_ms=2.0)
    r = run_benchmark("zoo:mnist", config=merge, scenario="offline", api="async", queries=200,
                      duration_s=0.2)  # fmt: skip
    assert r.extra["batching"]["max_batch_size"] == 4 and r.config.max_batch_size == 4
    served = ServedModel(ModelSettings(name="m", model="zoo:mnist", config=merge))
    runner = served._build()
    try:
        from nnperf.runtime.batching import DynamicBatcher

        assert isinstance(runner.backend, DynamicBatcher)
        assert runner.backend.max_batch_size == 4 and runner.backend.max_delay_ms == 2.0
    finally:
        runner.close_sync()
    split = nnperf.RunConfig(device="cpu(1)*2", batch_size=8, split_batch=4)
    with pytest.raises(nnperf.UnsupportedError, match="split batching"):
        ServedModel(ModelSettings(name="s", model="zoo:mnist", config=split))._build()
