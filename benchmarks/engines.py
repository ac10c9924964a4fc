"""Engines side by side: nnperf on OpenVINO vs OpenVINO's own tools, and which engine wins where.

Four parts, each measured side by side in this one process (interleaved rounds, medians):

1. **vs benchmark_app.** nnperf on OpenVINO ÷ ``benchmark_app`` (run as a subprocess) on the same
   model file, precision and hint, MobileNetV2 and ResNet-50: throughput (``-hint throughput`` vs
   ``bench --scenario offline`` with the throughput hint and one worker per stream; target
   ≥ 0.98) and p50 latency (``-hint latency`` vs single-stream; target ≤ 1.02×).
2. **Per-call overhead.** ``Session.run`` on OpenVINO ÷ a raw ``InferRequest.infer`` loop on the
   same compiled settings, zoo:identity and zoo:mnist, one thread (target ≤ 1.05).
3. **Who wins where.** fp32 / bf16 / int8 × onnxruntime / OpenVINO × ``cpu(2)`` / ``cpu(1)*2``
   offline throughput for mnist, MobileNetV2, bert-tiny and ResNet-50 (int8 = the model written by
   ``nnperf quantize``; every row's cosine to onnxruntime fp32 on the same inputs); then
   ``nnperf.tune`` over the same grid must pick the fastest row that passes the accuracy guard
   (within noise).
4. **Tune vs benchmark_app.** ``nnperf.tune --objective throughput`` on ResNet-50 fp32 (every
   engine, precision, split, batch and knob) ÷ the best ``benchmark_app`` result on the same file
   over its hints and precisions (target ≥ 1.0, goal 1.1), with the winner's cosine to fp32.

    python benchmarks/engines.py [--quick] [--parts 1,2,3,4] [--seconds 3] [--rounds 3]

``--quick`` is a smoke run (mnist only, short): the test suite runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import header, interleave, median

import nnperf
from nnperf import zoo
from nnperf.bench import run_benchmark
from nnperf.bench.inputs import make_feeds
from nnperf.cli import main as cli
from nnperf.optimize.verify import compare_outputs
from nnperf.tune import SearchSpace, tune
from nnperf.tune.space import BASE_VARIANT

SHAPES = {
    "mnist": "[1,1,28,28]",
    "mobilenetv2": "[1,3,224,224]",
    "resnet50": "[1,3,224,224]",
    "identity": "[1,1000]",
}


def write_model(tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.onnx"
    path.write_bytes(zoo.model_bytes(name))
    return path


def benchmark_app(path: Path, *, hint: str, precision: str, seconds: float) -> tuple[float, float]:
    """(throughput FPS, median latency ms) from OpenVINO's own benchmark_app."""
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    cmd = [exe, "-m", str(path), "-d", "CPU", "-hint", hint, "-t", str(max(1, round(seconds)))]
    cmd += ["-infer_precision", precision]
    shape = SHAPES.get(path.stem)
    if shape is not None:
        cmd += ["-shape", shape]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    fps = re.search(r"Throughput:\s+([0-9.]+)\s+FPS", out)
    med = re.search(r"Median:\s+([0-9.]+)\s+(ms|us)", out)
    if fps is None or med is None:
        raise RuntimeError(f"benchmark_app printed no figures:\n{out[-2000:]}")
    return float(fps.group(1)), float(med.group(1)) / (1000.0 if med.group(2) == "us" else 1.0)


def offline_throughput(path: Path, cfg: nnperf.RunConfig, seconds: float) -> float:
    """nnperf bench's offline samples/s for ``path`` run as ``cfg`` for ``seconds``."""
    return run_benchmark(
        str(path), scenario="offline", config=cfg, queries=1, duration_s=seconds, warmup_iters=2
    ).throughput_samples_per_s


def nnperf_openvino(
    path: Path, *, hint: str, precision: str, seconds: float
) -> tuple[float, float]:
    """(samples/s, p50 ms): latency hint ↔ single-stream, throughput hint ↔ offline with one
    worker per stream the hint chose."""
    cfg = nnperf.RunConfig(
        engine="openvino", precision=precision, batch_size=1, options={"hint": hint}
    )
    with nnperf.Session(str(path), config=cfg) as sess:
        streams = int(sess.stages.engine[0].get("streams", 1))
        r = run_benchmark(
            str(path),
            session=sess,
            config=cfg.replace(workers=streams if hint == "throughput" else None),
            scenario="offline" if hint == "throughput" else "single-stream",
            queries=1,
            duration_s=seconds,
            warmup_iters=2,
        )
    return r.throughput_samples_per_s, r.latency.p50_ms


def part_benchmark_app(tmp: Path, models: list[str], seconds: float, rounds: int) -> None:
    print("\n## 1. nnperf on OpenVINO vs benchmark_app (same file, precision and hint)")
    print(
        f"{'model':<12} {'hint':<10} {'prec':<5} {'nnperf':>10} {'bench_app':>10} "
        f"{'ratio':>6}  target"
    )
    for name in models:
        path = write_model(tmp, name)
        for hint in ("throughput", "latency"):
            for precision in ("f32", "bf16"):
                res = interleave(
                    {
                        "ours": lambda: nnperf_openvino(
                            path, hint=hint, precision=precision, seconds=seconds
                        ),
                        "theirs": lambda: benchmark_app(
                            path, hint=hint, precision=precision, seconds=seconds
                        ),
                    },
                    rounds,
                )
                if hint == "throughput":
                    ours = median([r[0] for r in res["ours"]])
                    theirs = median([r[0] for r in res["theirs"]])
                    unit, target = "/s", "throughput >= 0.98"
                else:
                    ours = median([r[1] for r in res["ours"]])
                    theirs = median([r[1] for r in res["theirs"]])
                    unit, target = " ms", "p50 <= 1.02x"
                print(
                    f"{name:<12} {hint:<10} {precision:<5} {ours:>8.2f}{unit:<2} "
                    f"{theirs:>8.2f}{unit:<2} {ours / theirs:>6.3f}  {target}"
                )


def part_overhead(tmp: Path, calls: int, rounds: int) -> None:
    import openvino as ov

    print("\n## 2. Session.run on OpenVINO / raw InferRequest.infer, 1 thread (target <= 1.05)")
    print(f"{'model':<10} {'nnperf us':>10} {'raw us':>10} {'ratio':>7}")
    for name in ("identity", "mnist"):
        path = write_model(tmp, name)
        sess = nnperf.create(str(path), engine="openvino", device="cpu(1)", batch_size=1)
        x = make_feeds(sess.inputs, batch_size=1, seed=0)
        first = next(iter(x.values()))
        core = ov.Core()
        model = core.read_model(str(path))
        model.reshape({0: list(first.shape)})
        compiled = core.compile_model(
            model,
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": "f32",
                "NUM_STREAMS": 1,
                "INFERENCE_NUM_THREADS": 1,
                "ENABLE_CPU_PINNING": False,
            },
        )
        request = compiled.create_infer_request()

        def loop(fn) -> float:
            for _ in range(100):
                fn()
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                fn()
            return (time.perf_counter_ns() - t0) / calls / 1e3

        res = interleave(
            {
                "nnperf": lambda: loop(lambda: sess.run(x)),
                "raw": lambda: loop(lambda: request.infer({0: first})),
            },
            rounds,
        )
        ours, raw = median(res["nnperf"]), median(res["raw"])
        print(f"{name:<10} {ours:>10.2f} {raw:>10.2f} {ours / raw:>7.3f}")
        sess.close()


def quantized(tmp: Path, name: str) -> Path:
    out = tmp / f"{name}_int8.onnx"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli(
            [
                "quantize",
                f"zoo:{name}",
                "-o",
                str(out),
                "--calibration",
                "random:16",
                "--activation-type",
                "uint8",
                "--per-channel",
                "--iters",
                "3",
            ]
        )
    if code != 0:
        raise RuntimeError(f"nnperf quantize zoo:{name} failed ({code})")
    return out


def part_table(tmp: Path, models: list[str], seconds: float, rounds: int, budget_s: float) -> None:
    print(
        "\n## 3. Who wins where: offline samples/s, batch 1 (medians of interleaved rounds; "
        "cosine vs onnxruntime fp32)"
    )
    for name in models:
        fp32 = write_model(tmp, name)
        int8 = quantized(tmp, name)
        grid: list[tuple[str, nnperf.RunConfig, Path]] = []
        for device in ("cpu(2)", "cpu(1)*2"):
            for engine, precision, variant, path in (
                ("onnxruntime", "f32", "fp32", fp32),
                ("onnxruntime", "f32", "int8", int8),
                ("openvino", "f32", "fp32", fp32),
                ("openvino", "bf16", "fp32", fp32),
                ("openvino", "f32", "int8", int8),
            ):
                label = f"{engine} {precision if variant == 'fp32' else 'int8'} {device}"
                cfg = nnperf.RunConfig(engine=engine, precision=precision, device=device)
                grid.append((label, cfg, path))
        # accuracy: each row's outputs vs onnxruntime fp32 on the same inputs
        with nnperf.create(str(fp32), device="cpu(1)") as ref:
            feeds = [make_feeds(ref.inputs, batch_size=1, seed=i) for i in range(4)]
            ref_out = [ref.run(f) for f in feeds]
        cosine = {}
        for label, cfg, path in grid:
            if label in cosine:
                continue
            with nnperf.create(str(path), config=cfg.replace(device="cpu(1)")) as s:
                cosine[label] = compare_outputs(ref_out, [s.run(f) for f in feeds]).cosine
        res = interleave(
            {
                label: lambda cfg=cfg, path=path: offline_throughput(path, cfg, seconds)
                for label, cfg, path in grid
            },
            rounds,
        )
        rows = sorted(((median(v), k) for k, v in res.items()), reverse=True)
        ok = [(v, k) for v, k in rows if cosine[k] >= 0.99]
        best_v, best = ok[0]
        print(f"\n### {name}")
        for v, k in rows:
            flag = (
                " <- fastest passing"
                if k == best
                else ("  (rejected: cosine)" if cosine[k] < 0.99 else "")
            )
            print(f"  {k:<28} {v:>10.2f}/s  x{v / best_v:5.2f}  cosine {cosine[k]:.5f}{flag}")
        # tune over the same grid (batch 1, one worker per instance, engine knobs at defaults)
        space = SearchSpace(
            devices=("cpu(2)", "cpu(1)*2"),
            engines=("onnxruntime", "openvino"),
            precisions={"onnxruntime": ("f32",), "openvino": ("f32", "bf16")},
            variants=(BASE_VARIANT, "int8"),
            knobs=False,
        )
        result = tune(
            str(fp32),
            objective="throughput",
            variants={"int8": str(int8)},
            space=space,
            time_budget_s=budget_s,
        )
        cfg = result.config
        picked = (
            f"{cfg.engine} {cfg.precision if result.winner.candidate.variant == BASE_VARIANT else 'int8'} "
            f"{cfg.device}"
        )
        got = median(res[picked]) if picked in res else float("nan")
        verdict = (
            "same as the table's fastest" if picked == best else f"{got / best_v:.3f}x the fastest"
        )
        print(f"  tune picked: {result.winner.label} -> {picked}: {verdict} ({result.reason})")


def part_tune_vs_bapp(tmp: Path, seconds: float, rounds: int, budget_s: float) -> None:
    print(
        "\n## 4. nnperf tune (every engine, precision, split, batch, knob) vs benchmark_app, resnet50"
    )
    path = write_model(tmp, "resnet50")
    result = tune(
        str(path),
        objective="throughput",
        engines=["onnxruntime", "openvino"],
        precisions=["f32", "bf16", "f16"],
        time_budget_s=budget_s,
    )
    cfg = result.config
    acc = result.winner.accuracy
    print(f"tuned: {result.winner.label}; cosine to fp32 {acc.cosine if acc else float('nan'):.5f}")
    best_name, best_fps = "", 0.0
    for hint in ("throughput", "latency"):
        for precision in ("f32", "bf16"):
            fps, _ = benchmark_app(path, hint=hint, precision=precision, seconds=seconds)
            if fps > best_fps:
                best_name, best_fps = f"-hint {hint} -infer_precision {precision}", fps
    res = interleave(
        {
            "tuned": lambda: offline_throughput(path, cfg, seconds),
            "bapp": lambda: benchmark_app(
                path, hint=best_name.split()[1], precision=best_name.split()[3], seconds=seconds
            )[0],
        },
        rounds,
    )
    ours, theirs = median(res["tuned"]), median(res["bapp"])
    print(
        f"tuned {ours:.2f} samples/s vs benchmark_app best ({best_name}) {theirs:.2f} FPS: "
        f"ratio {ours / theirs:.3f} (target >= 1.0, goal 1.1)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smoke run: mnist only, short")
    ap.add_argument("--parts", default="1,2,3,4", help="which parts to run (default all)")
    ap.add_argument(
        "--seconds", type=float, default=3.0, help="seconds per measurement (default 3)"
    )
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--tune-budget-s", type=float, default=90.0, help="tune budget (default 90)")
    args = ap.parse_args()
    parts = {int(p) for p in args.parts.split(",")}
    models = ["mnist", "mobilenetv2", "bert-tiny", "resnet50"]
    app_models = ["mobilenetv2", "resnet50"]
    calls = 3000
    if args.quick:
        models, app_models, calls = ["mnist"], ["mnist"], 300
        args.seconds, args.rounds, args.tune_budget_s = 1.0, 1, 8.0
        parts.discard(4)
    print(header("engines side by side: onnxruntime vs OpenVINO"))
    if "openvino" not in nnperf.installed_engines():
        print("OpenVINO: not installed (pip install 'nnperf[openvino]'); skipped")
        return
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        if 1 in parts:
            part_benchmark_app(tmp, app_models, args.seconds, args.rounds)
        if 2 in parts:
            part_overhead(tmp, calls, max(args.rounds, 3))
        if 3 in parts:
            part_table(tmp, models, args.seconds, args.rounds, args.tune_budget_s)
        if 4 in parts:
            part_tune_vs_bapp(tmp, args.seconds, args.rounds, args.tune_budget_s)
    np.random.default_rng(0)  # nothing random above is unseeded


if __name__ == "__main__":
    main()
