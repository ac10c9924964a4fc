"""Tune across engines and precisions, guarded by agreement with the f32 reference."""

from __future__ import annotations

import json

import pytest
from models import small_convnet

import nnperf
from nnperf.cli import main
from nnperf.model import load_model
from nnperf.tune import tune
from nnperf.tune.guard import AccuracyGuard, guard_feeds
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
