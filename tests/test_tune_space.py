"""Search-space construction: device splits, batch axis detection, grids and labels."""

from __future__ import annotations

import pytest
from models import fixed_batch_model, matmul_model

from nnperf.engines.config import RunConfig
from nnperf.engines.onnxruntime_options import OrtOptions
from nnperf.errors import InvalidInputError
from nnperf.model import load_model
from nnperf.tune import Candidate, SearchSpace, batch_axis_free, build_space, device_splits


def test_device_splits_cover_every_factorisation() -> None:
    assert device_splits(1) == ("cpu(1)",)
    assert device_splits(2) == ("cpu(2)", "cpu(1)*2")
    assert device_splits(6) == ("cpu(6)", "cpu(3)*2", "cpu(2)*3", "cpu(1)*6")
    assert device_splits(2, kind="cuda") == ("cuda:0", "cuda:0*2")
    with pytest.raises(InvalidInputError):
        device_splits(0)


def test_batch_axis_free_detects_symbolic_leading_dim() -> None:
    assert batch_axis_free(load_model(matmul_model()))
    assert not batch_axis_free(load_model(fixed_batch_model()))


def test_throughput_space_searches_workers_and_batches_when_free() -> None:
    space = build_space(load_model(matmul_model()), throughput=True, cores=2)
    assert space.devices == ("cpu(2)", "cpu(1)*2")
    assert space.batch_sizes == (1, 2, 4, 8)
    assert space.workers_per_instance == (1, 2)
    primary = space.primary()
    assert len(primary) == 2 * 2 * 4
    assert all(c.config.engine_options == OrtOptions() for c in primary)
    labels = [c.label for c in space.grid()]
    assert len(labels) == space.size == len(set(labels))
    # workers are per instance: cpu(1)*2 with 2 workers per instance -> 4 host threads.
    assert any(c.config.device == "cpu(1)*2" and c.config.workers == 4 for c in primary)


def test_fixed_batch_and_latency_spaces_keep_batch_one() -> None:
    fixed = build_space(load_model(fixed_batch_model()), throughput=True, cores=2)
    assert fixed.batch_sizes == (1,)
    lat = build_space(load_model(matmul_model()), throughput=False, cores=4)
    assert lat.batch_sizes == (1,) and lat.workers_per_instance == (1,)
    assert lat.devices == ("cpu(4)", "cpu(2)*2", "cpu(1)*4")


def test_variations_move_one_knob_at_a_time() -> None:
    space = build_space(load_model(matmul_model()), throughput=True, cores=2)
    point = space.primary()[0]
    assert point.complexity == 0 and point.config == RunConfig(device="cpu(2)")
    knobs = SearchSpace(**{**space.__dict__, "runtime": False}).variations(point)
    # extended, basic, no prepack, no mem pattern, parallel
    assert len(knobs) == 5
    assert all(v.complexity == 1 for v in knobs)
    # and the runtime techniques that apply to a one-instance point: more workers, merge
    techniques = space.techniques(point)
    assert [t.label for t in techniques] == ["cpu(2) w4", "cpu(2) merge<=8/1ms"]
    assert space.variations(point) == knobs + techniques


def test_cuda_space_has_cudnn_search_and_cuda_graph() -> None:
    space = build_space(load_model(matmul_model()), throughput=False, devices=["cuda:0"])
    point = space.primary()[0]
    assert point.config.device == "cuda:0" and point.config.engine_options == OrtOptions()
    labels = {v.label for v in space.variations(point)}
    assert any("cudnn_conv_algo_search=HEURISTIC" in lab for lab in labels)
    assert any("cuda-graph" in lab for lab in labels)


def test_bad_spaces_are_clear_errors() -> None:
    blob = load_model(matmul_model())
    with pytest.raises(InvalidInputError, match="mix"):
        build_space(blob, throughput=True, devices=["cpu(1)", "cuda:0"])
    with pytest.raises(InvalidInputError):
        build_space(blob, throughput=True, devices=["gpu"])
    with pytest.raises(InvalidInputError, match="batch_sizes"):
        SearchSpace(devices=("cpu(1)",), batch_sizes=(0,))


def test_candidate_round_trips() -> None:
    c = Candidate(
        RunConfig(device="cpu(1)*2", batch_size=4).with_options(prepack=False), variant="int8"
    )
    again = Candidate.from_dict(c.to_dict())
    assert again == c and again.label == "cpu(1)*2 b4 no-prepack [int8]"


def test_engines_and_precisions_are_primary_axes() -> None:
    blob = load_model(matmul_model())
    space = build_space(
        blob,
        throughput=False,
        cores=2,
        engines=["onnxruntime", "openvino"],
        precisions=["f32", "bf16", "f16"],
    )
    # onnxruntime offers only f32; OpenVINO what this CPU offers (f32 first)
    assert space.precisions["onnxruntime"] == ("f32",)
    assert space.precisions["openvino"][0] == "f32"
    labels = [c.label for c in space.primary()]
    assert "cpu(2)" in labels and "openvino cpu(2)" in labels
    assert len(labels) == len(set(labels)) == 2 * (1 + len(space.precisions["openvino"]))
    ov = next(c for c in space.primary() if c.config.engine == "openvino")
    assert ov.complexity == 1  # another engine than the default
    assert {v.label for v in space.variations(ov)} == {
        "openvino cpu(2) hint=throughput",
        "openvino cpu(2) hint=latency",
    }
    simple = space.simpler(space.variations(ov)[0])
    assert simple.config.engine == "openvino" and simple.label == "openvino cpu(2)"


def test_runtime_techniques_around_a_split_device() -> None:
    blob = load_model(matmul_model())
    space = build_space(blob, throughput=True, cores=2)
    split = next(
        c
        for c in space.primary()
        if c.config.device == "cpu(1)*2" and not c.config.batch_size and not c.config.workers
    )
    labels = [t.label for t in space.techniques(split)]
    assert labels == ["cpu(1)*2 w8", "cpu(1)*2 pipeline2", "cpu(1)*2 merge<=8/1ms"]
    assert all(t.complexity == split.complexity + 1 for t in space.techniques(split))
    # latency of 8-row queries: split batching cuts each across the two instances
    lat = build_space(blob, throughput=False, cores=2, batch_sizes=[8])
    point = next(c for c in lat.primary() if c.config.device == "cpu(1)*2")
    (t,) = lat.techniques(point)
    assert t.config.split_batch == 4 and t.label == "cpu(1)*2 b8 split4"
    assert lat.simpler(t).config.batch_size == 8  # like for like: the same rows per query
    # a fixed batch axis: no merge batching
    fixed = build_space(load_model(fixed_batch_model()), throughput=True, cores=2)
    assert all(
        t.config.max_batch_size is None for c in fixed.primary() for t in fixed.techniques(c)
    )


def test_primary_grid_puts_every_engine_precision_and_split_before_batches_and_workers() -> None:
    space = build_space(
        load_model(matmul_model()),
        throughput=True,
        cores=2,
        engines=["onnxruntime", "openvino"],
        precisions=["f32", "bf16"],
    )
    primary = space.primary()
    coarse = [c for c in primary if (c.config.batch_size or 1) == 1 and c.config.workers is None]
    assert primary[: len(coarse)] == coarse  # the coarse level comes first
    seen = {(c.config.engine, c.config.precision, c.config.device) for c in coarse}
    wanted = {(e, p, d) for e in space.engines for p in space.precisions[e] for d in space.devices}
    assert seen == wanted and len(primary) > len(coarse)
