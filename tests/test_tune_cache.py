"""The tune cache: hit without measuring, miss on another key, damaged and foreign files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from models import matmul_model

import nnperf
from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError
from nnperf.model import load_model
from nnperf.tune import TUNE_SCHEMA, CacheWarning, TuneResult, cache_key, read_cache, tune


def _tune(cache: Path, **kw: object) -> TuneResult:
    args: dict[str, object] = {
        "objective": "throughput",
        "time_budget_s": 1.5,
        "devices": ["cpu(1)", "cpu(1)*2"],
        "batch_sizes": [1, 2],
        "cache": cache,
    }
    args.update(kw)
    return tune(matmul_model(), **args)  # type: ignore[arg-type]


def test_miss_writes_then_hit_reuses_without_measuring(tmp_path: Path) -> None:
    cache = tmp_path / "tuned.json"
    first = _tune(cache)
    assert not first.from_cache and cache.exists()
    data = json.loads(cache.read_text())
    assert data["schema"] == TUNE_SCHEMA
    assert data["key"]["model_sha256"] == load_model(matmul_model()).sha256
    assert set(data["key"]) >= {"engines", "cpu", "cores", "objective"}
    assert set(data["key"]["engines"]) == {"onnxruntime"}  # keyed by the engines that ran
    t0 = time.perf_counter()
    second = _tune(cache)
    assert time.perf_counter() - t0 < 1.0
    assert second.from_cache
    assert second.config == first.config
    assert second.winner.label == first.winner.label
    assert [c.label for c in second.candidates] == [c.label for c in first.candidates]
    assert json.loads(cache.read_text()) == data  # a hit does not rewrite the file


def test_cache_file_is_a_run_config(tmp_path: Path) -> None:
    cache = tmp_path / "tuned.json"
    result = _tune(cache)
    assert RunConfig.load(cache) == result.config
    with nnperf.create(matmul_model(), config=str(cache)) as sess:
        batch = result.config.batch_size or 1
        out = sess.run(np.ones((batch, 16), np.float32))
    assert out[0].shape == (batch, 8)


def test_another_objective_is_a_miss(tmp_path: Path) -> None:
    cache = tmp_path / "tuned.json"
    _tune(cache)
    lat = _tune(cache, objective="latency")
    assert not lat.from_cache
    assert json.loads(cache.read_text())["objective"]["kind"] == "latency"


def test_foreign_files_are_errors_and_left_untouched(tmp_path: Path) -> None:
    key = cache_key(load_model(matmul_model()), {"kind": "throughput"})
    not_json = tmp_path / "model.onnx"
    not_json.write_bytes(b"\x08\x07binary")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        read_cache(not_json, key)
    assert not_json.read_bytes() == b"\x08\x07binary"
    other = tmp_path / "config.json"
    RunConfig(device="cpu(1)").save(other)
    with pytest.raises(InvalidInputError, match="not a tune cache"):
        _tune(other)
    assert RunConfig.load(other) == RunConfig(device="cpu(1)")


def test_damaged_tune_file_is_rebuilt_with_a_warning(tmp_path: Path) -> None:
    cache = tmp_path / "tuned.json"
    cache.write_text(json.dumps({"schema": TUNE_SCHEMA, "key": {}, "config": {"workers": -1}}))
    with pytest.warns(CacheWarning, match="damaged"):
        result = _tune(cache)
    assert not result.from_cache
    assert RunConfig.load(cache) == result.config


def test_another_search_space_is_a_miss(tmp_path: Path) -> None:
    # The key held only the objective and what differed from the defaults in precisions: a
    # search over other batch sizes, devices or accuracy inputs reused the old winner.
    cache = tmp_path / "tuned.json"
    _tune(cache)
    assert _tune(cache).from_cache
    for change in (
        {"batch_sizes": [1, 4]},
        {"devices": ["cpu(2)"]},
        {"accuracy_inputs": [{"x": np.full((1, 16), 0.5, np.float32)}]},
        {"min_cosine": 0.95},
    ):
        assert not _tune(cache, **change).from_cache, change
        assert _tune(cache, **change).from_cache, change  # and the rewritten file hits
    key = json.loads(cache.read_text())["key"]
    assert key["space"]["devices"] == ["cpu(1)", "cpu(1)*2"]


def test_another_shape_is_a_miss(tmp_path: Path) -> None:
    # tune --dim seq=8 then --dim seq=64: another experiment, never the cached seq=8 winner.
    from models import seq_model

    from nnperf.tune import SearchSpace

    cache = tmp_path / "tuned.json"

    def run(seq: int) -> TuneResult:
        space = SearchSpace(devices=("cpu(1)",), base=RunConfig(dims={"seq": seq}))
        return tune(seq_model(), time_budget_s=1.0, space=space, cache=cache)

    first = run(8)
    assert first.config.dims == {"seq": 8}
    assert run(8).from_cache
    second = run(64)
    assert not second.from_cache
    assert second.config.dims == {"seq": 64}
    assert json.loads(cache.read_text())["key"]["space"]["base"]["dims"] == {"seq": 64}
