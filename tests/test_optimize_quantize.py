"""Calibration methods and QDQ quantization: structure, int8 kernels, numerics."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from models import small_convnet

from nnperf.errors import InvalidInputError
from nnperf.optimize import (
    CalibrationMethod,
    Calibrator,
    choose_quantization,
    compare_models,
    layer_sensitivity,
    optimized_op_counts,
    prepare,
    quantize,
)
from nnperf.runtime import create


def _data(n: int = 6, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"input": rng.random((1, 3, 16, 16), dtype=np.float32)} for _ in range(n)]


@pytest.fixture(scope="module")
def prepared() -> onnx.ModelProto:
    return prepare(small_convnet(width=32))


@pytest.mark.parametrize("method", [m.value for m in CalibrationMethod])
def test_every_method_gives_ranges_and_an_accurate_model(
    prepared: onnx.ModelProto, method: str
) -> None:
    data = _data()
    with Calibrator(prepared, method) as cal:
        assert cal.collect_data(data[:3]) == 3
        assert cal.collect_data(iter(data[3:])) == 3  # callable many times, any iterable
        ranges = cal.compute_range()
    assert "input" in ranges
    for lo, hi in ranges.values():
        assert isinstance(lo, float) and isinstance(hi, float) and lo <= hi
    if method.endswith("_sym"):
        assert ranges["input"][0] == 0.0  # input >= 0: SYM collapses to [0, a] (Furiosa)
        assert all(lo == 0.0 or lo == pytest.approx(-hi) for lo, hi in ranges.values())
    q = quantize(prepared, ranges)
    assert compare_models(prepared, q, data).cosine > 0.99


def test_mse_search_minimises_error() -> None:
    m = prepare(small_convnet(width=32))
    rng = np.random.default_rng(0)
    data = [{"input": rng.standard_t(2, (1, 3, 16, 16)).astype(np.float32)} for _ in range(4)]
    with Calibrator(m, "min_max_asym") as a, Calibrator(m, "mse_asym") as b:
        a.collect_data(data)
        b.collect_data(data)
        mm, mse = a.compute_range()["input"], b.compute_range()["input"]
    # the search never widens the range and never does worse than min-max on the data it saw
    assert mm[0] <= mse[0] <= 0 <= mse[1] <= mm[1]
    values = np.concatenate([d["input"].ravel() for d in data]).astype(np.float64)

    def err(lo: float, hi: float) -> float:
        scale = (hi - lo) / 255
        zp = np.round(-lo / scale)
        q = np.clip(np.round(values / scale) + zp, 0, 255)
        return float(np.mean((values - (q - zp) * scale) ** 2))

    assert err(*mse) <= err(*mm) + 1e-12


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("MIN_MAX_ASYM", "min_max_asym"),  # Furiosa's CalibrationMethod member names
        ("SQNR_SYM", "sqnr_sym"),
        ("CalibrationMethod.ENTROPY_SYM", "entropy_sym"),
        ("min_max", "min_max_asym"),  # no suffix: asymmetric, as Furiosa and onnxruntime
        ("minmax", "min_max_asym"),
        ("MinMax", "min_max_asym"),  # onnxruntime's spelling
        ("Percentile", "percentile_asym"),
        ("mse-sym", "mse_sym"),
        ("entropy_symmetric", "entropy_sym"),
    ],
)
def test_seed_calibration_names_resolve(
    prepared: onnx.ModelProto, name: str, expected: str
) -> None:
    with Calibrator(prepared, name) as cal:
        assert cal.method is CalibrationMethod(expected)


def test_calibrator_errors(prepared: onnx.ModelProto) -> None:
    with pytest.raises(InvalidInputError, match=r"got 'kl', expected one of \['min_max_asym'"):
        Calibrator(prepared, "kl")
    with Calibrator(prepared, "mse_sym") as cal, pytest.raises(InvalidInputError, match="collect"):
        cal.compute_range()
    with pytest.raises(InvalidInputError, match="no ranges"):
        quantize(prepared, {})


def test_quantize_structure_and_int8_kernels(prepared: onnx.ModelProto) -> None:
    with Calibrator(prepared, "min_max_asym") as cal:
        cal.collect_data(_data())
        ranges = cal.compute_range()
    q = quantize(prepared, ranges, per_channel=True)
    onnx.checker.check_model(q)
    ops = Counter(n.op_type for n in q.graph.node)
    assert ops["QuantizeLinear"] >= 3 and ops["DequantizeLinear"] >= 5
    weights = [i for i in q.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert weights  # int8 weights
    per_ch = [i for i in q.graph.initializer if i.name.endswith("_scale") and len(i.dims) == 1]
    assert per_ch  # per-channel scales
    counts = optimized_op_counts(q)
    assert counts["com.microsoft:QLinearConv"] == 2  # onnxruntime runs int8 kernels


def test_precomputed_ranges_are_used(prepared: onnx.ModelProto) -> None:
    with Calibrator(prepared, "min_max_asym") as cal:
        cal.collect_data(_data(2))
        ranges = cal.compute_range()
    ranges["input"] = (0.0, 2.0)  # a range no calibration would give
    q = quantize(prepared, ranges)
    scales = {
        i.name: onnx.numpy_helper.to_array(i)
        for i in q.graph.initializer
        if "input" in i.name and "scale" in i.name
    }
    assert any(np.isclose(float(v), 2.0 / 255) for v in scales.values())


def test_with_quantize_false_and_pixel_outputs() -> None:
    from models import small_fcn

    m = small_fcn(pixel_input=True)
    rng = np.random.default_rng(0)
    pix = [rng.integers(0, 256, (1, 3, 12, 12)).astype(np.float32) for _ in range(4)]
    with Calibrator(m, "min_max_asym") as cal:
        cal.collect_data([{"image": p} for p in pix])
        ranges = cal.compute_range()
    q = quantize(m, ranges, with_quantize=False, normalized_pixel_outputs=[0])
    onnx.checker.check_model(q)
    assert q.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert q.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    with create(m) as a, create(q) as b:
        ref = a.run(pix[0])[0]
        out = b.run(pix[0].astype(np.uint8))[0]
    assert out.dtype == np.uint8
    assert np.max(np.abs(out / 255.0 - ref)) < 0.05
    with pytest.raises(InvalidInputError, match="out of range"):
        quantize(m, ranges, normalized_pixel_outputs=[3])


def test_choose_quantization_explains(prepared: onnx.ModelProto) -> None:
    data = _data(3)
    with Calibrator(prepared, "min_max_asym") as cal:
        cal.collect_data(data)
        ranges = cal.compute_range()
    choice = choose_quantization(
        prepared, ranges, data, iters=3, candidates=[("uint8", True), ("int8", True)]
    )
    assert len(choice.candidates) == 2
    assert choice.chosen in choice.candidates
    assert "chose" in choice.explanation
    assert choice.chosen.meets_target
    assert choice.to_dict()["chosen"]["latency_ms"] > 0


def test_layer_sensitivity_lists_each_layer(prepared: onnx.ModelProto) -> None:
    data = _data(3)
    with Calibrator(prepared, "min_max_asym") as cal:
        cal.collect_data(data)
        ranges = cal.compute_range()
    sens = layer_sensitivity(prepared, ranges, data)
    names = {n.name for n in prepared.graph.node if n.op_type in ("Conv", "Gemm")}
    assert {s.node for s in sens} == names
    assert [s.cosine for s in sens] == sorted(s.cosine for s in sens)
    kept = quantize(prepared, ranges, nodes_to_exclude=[sens[0].node])
    assert (
        compare_models(prepared, kept, data).cosine
        >= compare_models(prepared, quantize(prepared, ranges), data).cosine - 1e-6
    )


def _int8_graph(model: onnx.ModelProto) -> Counter[str]:
    """Op counts of the graph onnxruntime runs, without the layout nodes it adds."""
    counts = optimized_op_counts(model)
    return Counter({k: v for k, v in counts.items() if k != "Transpose"})


def test_api_defaults_prepare_like_the_cli(tmp_path) -> None:
    """The seed's recipe, Calibrator(model) + quantize(model, ranges), on an unfolded-BatchNorm
    model: the API prepares by default, as the CLI does, so both give the same int8 graph (no
    float BatchNorm between Q/DQ pairs) and the same numbers."""
    from models import bn_convnet

    from nnperf.cli import main

    model = bn_convnet()
    data = [{"input": d["input"] * 2 - 1} for d in _data(6)]
    with Calibrator(model) as cal:  # seed recipe, defaults only
        cal.collect_data(data)
        ranges = cal.compute_range()
        assert any(p.key == "nnperf.prepared" for p in cal.model.metadata_props)
    api = quantize(model, ranges)
    ops = _int8_graph(api)
    assert ops["BatchNormalization"] == 0
    assert ops["com.microsoft:QLinearConv"] == 2  # both convs stay int8
    # only the input's QuantizeLinear: the logits leave the int8 Gemm (QGemm) in float
    assert ops["QuantizeLinear"] == 1 and ops["DequantizeLinear"] == 0
    assert ops["com.microsoft:QGemm"] == 1
    assert compare_models(model, api, data).cosine > 0.999

    # the old behaviour, for contrast: without prepare, each BatchNorm runs in float
    with Calibrator(model, prepare=False) as cal:
        cal.collect_data(data)
        raw = quantize(model, cal.compute_range(), prepare=False)
    assert _int8_graph(raw)["BatchNormalization"] == 2

    src, calib, out = tmp_path / "m.onnx", tmp_path / "calib", tmp_path / "q.onnx"
    onnx.save(model, str(src))
    calib.mkdir()
    for i, d in enumerate(data):
        np.save(calib / f"{i}.npy", d["input"])
    argv = ["quantize", str(src), "-o", str(out), "--calibration", str(calib), "--iters", "3"]
    assert main([*argv, "--activation-type", "uint8"]) == 0
    cli = onnx.load(str(out))
    assert _int8_graph(cli) == ops
    with create(api) as a, create(cli) as b:
        for d in data:
            np.testing.assert_allclose(a.run(d)[0], b.run(d)[0], atol=1e-6)
    assert main(argv) == 0  # --activation-type auto (the CLI default): int8 kernels all the same
    auto = _int8_graph(onnx.load(str(out)))
    assert auto["BatchNormalization"] == 0 and auto["com.microsoft:QLinearConv"] == 2


def test_prepare_is_idempotent_and_ranges_must_match_the_graph() -> None:
    from models import bn_convnet

    model = bn_convnet()
    once = prepare(model)
    assert prepare(once).SerializeToString() == once.SerializeToString()
    with Calibrator(model, prepare=False) as cal:
        cal.collect_data(_data(2))
        ranges = cal.compute_range()
    del ranges["r1"]  # the tensor conv2 reads
    with pytest.raises(InvalidInputError, match=r"missing \['r1'\].*prepare=False"):
        quantize(model, ranges)


@pytest.mark.parametrize("act", ["uint8", "int8"])
def test_with_quantize_false_seed_recipe_float_calibration(act: str) -> None:
    """Furiosa's recipe: calibrate on the float data the model was trained on, quantize with
    with_quantize=False, feed the quantized tensor. The input takes the calibrated scale and zero
    point (exposed through get_quant_params), the first conv stays int8, and the numbers are
    those of the with_quantize=True model."""
    from nnperf.optimize import get_quant_params

    model = small_convnet(width=32)
    rng = np.random.default_rng(0)
    data = [
        {"input": (rng.random((1, 3, 16, 16), dtype=np.float32) - 0.45) / 0.226} for _ in range(6)
    ]
    with Calibrator(model) as cal:
        cal.collect_data(data)
        ranges = cal.compute_range()
    q = quantize(model, ranges, activation_type=act, with_quantize=False)
    ref_q = quantize(model, ranges, activation_type=act)
    onnx.checker.check_model(q)
    # the seed feeds uint8 whatever the activation type (int8: the same grid, zero point + 128)
    assert q.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    readers = [n.op_type for n in q.graph.node if "input" in n.input]
    assert readers == ["DequantizeLinear"]  # no leading QuantizeLinear
    ops = optimized_op_counts(q)
    assert ops["com.microsoft:QLinearConv"] == 2 and ops["Conv"] == 0  # first conv still int8
    assert ops["DequantizeLinear"] == 0  # the Gemm writes its float logits itself (QGemm)

    params = get_quant_params(q, "input")
    lo, hi = ranges["input"]
    assert params.dtype == "uint8"
    assert params.scale == pytest.approx((hi - lo) / 255, rel=1e-5)  # the calibrated scale
    assert params.scale < 0.05  # not 1.0: the inputs were normalised floats, not pixels
    with create(model) as f, create(q) as a, create(ref_q) as b:
        for d in data:
            out = a.run(params.quantize(d["input"]))[0]
            np.testing.assert_allclose(out, b.run(d)[0], atol=1e-6)
            ref = f.run(d)[0]
            assert (
                np.dot(out.ravel(), ref.ravel()) / (np.linalg.norm(out) * np.linalg.norm(ref))
                > 0.99
            )
    with pytest.raises(InvalidInputError, match="no recorded quantization"):
        get_quant_params(ref_q, "input")
