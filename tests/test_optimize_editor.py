"""ModelEditor: structure (op counts, onnx.checker) and numerics (real onnxruntime) per edit."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from models import small_convnet

from nnperf.errors import InvalidInputError
from nnperf.optimize import (
    Calibrator,
    ModelEditor,
    assert_equivalent,
    compare_models,
    get_output_names,
    get_pure_input_names,
    optimized_op_counts,
    quantize,
)
from nnperf.runtime import create

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def _ops(model: onnx.ModelProto) -> Counter[str]:
    return Counter(n.op_type for n in model.graph.node)


def _pixels(seed: int = 0, shape: tuple[int, ...] = (2, 3, 16, 16)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _normalise(pix: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    m = np.asarray(mean).reshape(1, -1, 1, 1)
    s = np.asarray(std).reshape(1, -1, 1, 1)
    return ((pix / 255.0 - m) / s).astype(np.float32)


def _quantized(
    model: onnx.ModelProto, calib_pixels: bool = True, float_outputs: bool = True
) -> onnx.ModelProto:
    rng = np.random.default_rng(3)
    data = [{"input": _normalise(_pixels(i), [0.0], [1.0])} for i in range(4)]
    if not calib_pixels:
        data = [{"input": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)}]
    with Calibrator(model, "min_max_asym") as cal:
        cal.collect_data(data)
        ranges = cal.compute_range()
    return quantize(model, ranges, float_outputs=float_outputs)


def test_io_names() -> None:
    m = small_convnet()
    assert get_pure_input_names(m) == ["input"]
    assert get_output_names(m) == ["logits"]
    assert ModelEditor(m).get_pure_input_names() == ["input"]


def test_convert_input_type_per_channel_structure_and_numerics() -> None:
    m = small_convnet()
    edited = ModelEditor(m).convert_input_type("input", "uint8", mean=MEAN, std=STD)
    onnx.checker.check_model(edited)
    ops = _ops(edited)
    assert ops["DequantizeLinear"] == 1 and ops["Add"] == 1
    assert ops["Conv"] == 2
    assert edited.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert edited.graph.input[0].name == "input"
    pix = _pixels()
    agreement = assert_equivalent(
        m,
        edited,
        [{"input": _normalise(pix, MEAN, STD)}],
        candidate_feeds=[{"input": pix}],
        atol=1e-4,
    )
    assert agreement.top1_agreement == 1.0
    with create(edited) as sess:
        assert sess.inputs[0].dtype == "uint8"


def test_convert_input_type_scalar_has_no_add() -> None:
    m = small_convnet()
    edited = ModelEditor(m).convert_input_type("input", "uint8")
    assert _ops(edited)["Add"] == 0 and _ops(edited)["DequantizeLinear"] == 1
    pix = _pixels(1)
    assert_equivalent(
        m, edited, [{"input": _normalise(pix, [0.0], [1.0])}], candidate_feeds=[{"input": pix}]
    )


def test_convert_input_type_quantized_drops_leading_quantize() -> None:
    q = _quantized(small_convnet())
    before = _ops(q)
    edited = ModelEditor(q).convert_input_type("input", "uint8")
    onnx.checker.check_model(edited)
    after = _ops(edited)
    # the leading float QuantizeLinear is gone; no float op between the pixels and the first Conv
    assert after["QuantizeLinear"] == before["QuantizeLinear"] - 1
    assert after["Add"] == 0 and after["Cast"] == 0
    first_dq = next(n for n in edited.graph.node if "input" in n.input)
    assert first_dq.op_type == "DequantizeLinear"
    # in the engine-optimised graph the float QuantizeLinear is gone too: the first int8 conv
    # reads the uint8 pixels
    assert optimized_op_counts(q)["QuantizeLinear"] == 1
    counts = optimized_op_counts(edited)
    assert counts["QuantizeLinear"] == 0
    assert counts["com.microsoft:QLinearConv"] == 2
    pix = _pixels(2)
    agreement = compare_models(
        q, edited, [{"input": _normalise(pix, [0.0], [1.0])}], candidate_feeds=[{"input": pix}]
    )
    assert agreement.cosine > 0.999


def test_convert_input_type_quantized_per_channel_keeps_quantize() -> None:
    q = _quantized(small_convnet())
    edited = ModelEditor(q).convert_input_type("input", "uint8", mean=MEAN, std=STD)
    ops = _ops(edited)
    assert ops["QuantizeLinear"] == _ops(q)["QuantizeLinear"]
    pix = _pixels(4)
    agreement = compare_models(
        q, edited, [{"input": _normalise(pix, MEAN, STD)}], candidate_feeds=[{"input": pix}]
    )
    assert agreement.max_abs_err < 1e-4


def test_convert_input_type_errors() -> None:
    editor = ModelEditor(small_convnet())
    with pytest.raises(InvalidInputError, match="not found"):
        editor.convert_input_type("nope", "uint8")
    with pytest.raises(InvalidInputError, match="got dtype 'float16', expected 'uint8' or 'int8'"):
        editor.convert_input_type("input", "float16")
    with pytest.raises(InvalidInputError, match="std"):
        editor.convert_input_type("input", "uint8", mean=[0, 0, 0], std=[1, 1])


def test_convert_input_type_accepts_seed_spellings_and_int8() -> None:
    """Ported calls: the seed's TensorType.UINT8 is 'UINT8' here, any case; int8 data (e.g.
    pixels centred as pixel - 128) is accepted, with the normalisation folded in as for uint8."""
    m = small_convnet()
    lower = ModelEditor(m).convert_input_type("input", "uint8", mean=MEAN, std=STD)
    upper = ModelEditor(m).convert_input_type("input", "UINT8", mean=MEAN, std=STD)
    assert upper.SerializeToString() == lower.SerializeToString()

    mean, std, scale = [0.1, 0.0, -0.1], [0.5, 0.5, 0.5], 1 / 128
    s8 = ModelEditor(m).convert_input_type("input", "Int8", mean=mean, std=std, pixel_scale=scale)
    onnx.checker.check_model(s8)
    assert s8.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT8
    assert _ops(s8)["DequantizeLinear"] == 1 and _ops(s8)["Add"] == 1  # per-channel shift
    v = np.random.default_rng(5).integers(-128, 128, (2, 3, 16, 16)).astype(np.int8)
    m_ = np.asarray(mean).reshape(1, 3, 1, 1)
    x = ((v * scale - m_) / np.asarray(std).reshape(1, 3, 1, 1)).astype(np.float32)
    assert_equivalent(m, s8, [{"input": x}], candidate_feeds=[{"input": v}], atol=1e-5)

    # on a quantized model int8 takes the float path (a DequantizeLinear before the
    # QuantizeLinear), the numbers still those of the quantized model on the float input
    q = _quantized(m)
    qs8 = ModelEditor(q).convert_input_type("input", "int8", pixel_scale=1 / 255)
    assert _ops(qs8)["QuantizeLinear"] == _ops(q)["QuantizeLinear"]
    v = np.random.default_rng(6).integers(0, 128, (1, 3, 16, 16)).astype(np.int8)
    got = compare_models(
        q, qs8, [{"input": (v / 255.0).astype(np.float32)}], candidate_feeds=[{"input": v}]
    )
    assert got.max_abs_err < 1e-5


def test_convert_output_type_drops_trailing_dequantize() -> None:
    q = _quantized(small_convnet(), float_outputs=False)
    edited = ModelEditor(q).convert_output_type("logits", "uint8")
    onnx.checker.check_model(edited)
    assert _ops(edited)["DequantizeLinear"] == _ops(q)["DequantizeLinear"] - 1
    assert edited.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    props = {p.key: p.value for p in edited.metadata_props}
    scale = float(props["nnperf.output.logits.scale"])
    zp = int(props["nnperf.output.logits.zero_point"])
    x = _normalise(_pixels(5), [0.0], [1.0])
    with create(q) as a, create(edited) as b:
        ref = a.run(x)[0]
        out = b.run(x)[0]
    assert out.dtype == np.uint8
    np.testing.assert_allclose((out.astype(np.float32) - zp) * scale, ref, atol=1e-6)
    with pytest.raises(InvalidInputError, match="int8"):
        ModelEditor(q).convert_output_type("logits", "int8")


def test_convert_output_type_restores_the_calibrated_quantization_of_a_float_output() -> None:
    # quantize() leaves the logits in float by default (their 8-bit rounding flips near-tied
    # classes) and records how they were quantized: the seed's 8-bit outputs still work.
    q = _quantized(small_convnet())
    assert (
        _ops(q)["DequantizeLinear"]
        == _ops(_quantized(small_convnet(), float_outputs=False))["DequantizeLinear"] - 1
    )
    props = {p.key: p.value for p in q.metadata_props}
    scale = float(props["nnperf.float_output.logits.scale"])
    zp = int(props["nnperf.float_output.logits.zero_point"])
    assert props["nnperf.float_output.logits.dtype"] == "uint8" and scale > 0
    edited = ModelEditor(q).convert_output_type("logits", "uint8")
    onnx.checker.check_model(edited)
    assert edited.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    rec = {p.key: p.value for p in edited.metadata_props}
    assert float(rec["nnperf.output.logits.scale"]) == scale
    assert int(rec["nnperf.output.logits.zero_point"]) == zp
    x = _normalise(_pixels(5), [0.0], [1.0])
    with create(q) as a, create(edited) as b:
        ref = a.run(x)[0]
        out = b.run(x)[0]
    assert out.dtype == np.uint8
    # the float logits, rounded to the calibrated 8-bit grid (clipped at its ends)
    expect = np.clip(np.round(ref / scale) + zp, 0, 255)
    np.testing.assert_allclose(out.astype(np.float32), expect, atol=1.0)
    with pytest.raises(InvalidInputError, match="was quantized as uint8"):
        ModelEditor(q).convert_output_type("logits", "int8")


def test_convert_output_type_range_on_float_model() -> None:
    m = small_convnet()
    with pytest.raises(InvalidInputError, match="range"):
        ModelEditor(m).convert_output_type("logits", "uint8")
    edited = ModelEditor(m).convert_output_type("logits", "int8", range=(-4.0, 4.0))
    assert _ops(edited)["QuantizeLinear"] == 1
    x = _normalise(_pixels(6), [0.0], [1.0])
    with create(m) as a, create(edited) as b:
        ref = a.run(x)[0]
        out = b.run(x)[0]
    assert out.dtype == np.int8
    props = {p.key: p.value for p in edited.metadata_props}
    scale = float(props["nnperf.output.logits.scale"])
    zp = int(props["nnperf.output.logits.zero_point"])
    np.testing.assert_allclose(
        (out.astype(np.float32) - zp) * scale, np.clip(ref, -4, 4), atol=scale / 2 + 1e-6
    )


def test_permute_input_structure_numerics_and_reorder_fold() -> None:
    m = small_convnet(channels=16, width=32)
    edited = ModelEditor(m).permute_input("input", [0, 3, 1, 2])
    onnx.checker.check_model(edited)
    assert _ops(edited)["Transpose"] == 1
    dims = edited.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param for d in dims] == ["batch", 16, 16, 16]
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 16)).astype(np.float32)
    assert_equivalent(
        m,
        edited,
        [{"input": x}],
        candidate_feeds=[{"input": np.ascontiguousarray(x.transpose(0, 2, 3, 1))}],
    )
    # at level ALL onnxruntime folds the Transpose into ReorderInput(channels_last=1)
    from nnperf.optimize.graph import optimized_graph

    g = optimized_graph(edited, level="all")
    assert not any(n.op_type == "Transpose" for n in g.graph.node)
    reorder = [n for n in g.graph.node if n.op_type == "ReorderInput"]
    assert reorder and onnx.helper.get_attribute_value(reorder[0].attribute[0]) == 1


def test_permute_input_nhwc_is_0_3_1_2_in_code_help_and_docs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The permutation follows torch.permute / Furiosa's permute_input: the model's original
    input is ``new_input.transpose(perm)``. On a non-square image, NHWC (N, H, W, C) input into
    an NCHW model is perm 0,3,1,2; the old help's 0,2,3,1 gives (N, W, C, H)."""
    from models import small_fcn

    from nnperf.cli import main

    m = small_fcn()  # image [batch, 3, h, w], symbolic h and w
    nhwc = ModelEditor(m).permute_input("image", [0, 3, 1, 2])
    dims = [d.dim_value or d.dim_param for d in nhwc.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "h", "w", 3]
    other = ModelEditor(m).permute_input("image", [0, 2, 3, 1])
    dims = [d.dim_value or d.dim_param for d in other.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "w", 3, "h"]
    x = np.random.default_rng(0).random((1, 3, 8, 12), dtype=np.float32)  # H 8, W 12
    image_hwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # how a camera delivers it
    assert image_hwc.shape == (1, 8, 12, 3)
    assert_equivalent(m, nhwc, [{"image": x}], candidate_feeds=[{"image": image_hwc}])

    assert "(0, 3, 1, 2)" in (ModelEditor.permute_input.__doc__ or "")
    with pytest.raises(SystemExit):
        main(["optimize", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "0,3,1,2 for NHWC" in help_text and "0,2,3,1" not in help_text
    assert "new_input.transpose(PERM)" in help_text


def test_permute_input_rejects_bad_perm() -> None:
    with pytest.raises(InvalidInputError, match="permutation"):
        ModelEditor(small_convnet()).permute_input("input", [0, 1, 1, 2])


def test_set_batch_size_fixed_and_free() -> None:
    m = small_convnet()
    fixed = ModelEditor(m).set_batch_size(4)
    onnx.checker.check_model(fixed)
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    assert fixed.graph.output[0].type.tensor_type.shape.dim[0].dim_value == 4
    assert _ops(fixed) == _ops(m)
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    assert_equivalent(m, fixed, [{"input": x}])
    with create(fixed) as sess:
        assert sess.inputs[0].shape[0] == 4
    free = ModelEditor(fixed).set_batch_size(None)
    assert free.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert_equivalent(m, free, [{"input": x[:1]}])
    with pytest.raises(InvalidInputError):
        ModelEditor(m).set_batch_size(0)


def test_editor_does_not_touch_original() -> None:
    m = small_convnet()
    ModelEditor(m).convert_input_type("input", "uint8")
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def _static_flatten_model(shape_from_constant_node: bool) -> onnx.ModelProto:
    """A static batch-1 export: Conv -> Reshape to the baked [1, -1] -> MatMul."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.2
    fc = rng.standard_normal((4 * 8 * 8, 10)).astype(np.float32) * 0.05
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(fc, "fc")]
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1])]
    target = np.array([1, -1], np.int64)
    if shape_from_constant_node:
        nodes.append(
            helper.make_node(
                "Constant", [], ["flat_shape"], value=numpy_helper.from_array(target, "v")
            )
        )
    else:
        inits.append(numpy_helper.from_array(target, "flat_shape"))
    nodes += [
        helper.make_node("Reshape", ["c", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "static_flatten",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("constant_node", [False, True])
def test_set_batch_size_frees_batch_baked_into_reshape(constant_node: bool) -> None:
    m = _static_flatten_model(constant_node)
    x = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    with create(m) as sess:
        per_row = np.concatenate([sess.run([x[i : i + 1]])[0] for i in range(4)])
    # Before: the baked [1, -1] makes a batch of 4 a (4, 256) matmul input -> shape error.
    fixed = ModelEditor(m).set_batch_size(4)
    targets = [_init_list(fixed, n.input[1]) for n in fixed.graph.node if n.op_type == "Reshape"]
    assert targets == [[0, -1]]
    with create(fixed) as sess:
        got = sess.run([x])[0]
    np.testing.assert_allclose(got, per_row, rtol=1e-5, atol=1e-5)


def test_set_batch_size_leaves_reshapes_that_move_the_batch() -> None:
    from onnx import TensorProto, helper, numpy_helper

    # [2, 6] -> [3, 4]: the target's dim 0 is not the input's, so it is not the batch: kept.
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "s"], ["y"])],
        "moves_batch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])],
        initializer=[numpy_helper.from_array(np.array([3, 4], np.int64), "s")],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    editor = ModelEditor(m)
    assert editor._free_reshape_batches() == 0
    assert _init_list(editor.model, "s") == [3, 4]


def _init_list(model: onnx.ModelProto, name: str) -> list[int]:
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name == name:
            return [int(v) for v in numpy_helper.to_array(init)]
    raise AssertionError(f"{name} is not an initializer")
