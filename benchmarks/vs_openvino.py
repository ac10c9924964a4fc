"""nnperf tuned fp32 throughput vs OpenVINO ``benchmark_app`` on the same ResNet-50 ONNX file.

Tunes zoo:resnet50 for offline throughput (``nnperf.tune.tune``), then measures the tuned config
and ``benchmark_app -d CPU -hint throughput -infer_precision f32`` alternately, each for the same
time, and prints the ratio of median throughputs (goal >= 1.0). Without ``-infer_precision f32``
OpenVINO silently runs bf16 on CPUs that have it, which is not an fp32 comparison.

Needs ``pip install openvino`` (benchmark-only; not an nnperf dependency); skips otherwise.

    python benchmarks/vs_openvino.py [--quick] [--tune-budget-s 120] [--seconds 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import header, median

from nnperf import zoo
from nnperf.bench import run_benchmark
from nnperf.tune import tune


def openvino_fps(path: Path, seconds: float) -> float:
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    out = subprocess.run(
        [exe, "-m", str(path), "-d", "CPU", "-hint", "throughput", "-infer_precision", "f32",
         "-shape", "input[1,3,224,224]", "-t", str(int(seconds))],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"Throughput:\s+([0-9.]+)\s+FPS", out)
    if match is None:
        raise RuntimeError(f"benchmark_app printed no throughput:\n{out[-2000:]}")
    return float(match.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--tune-budget-s", type=float, default=120.0, help="tune budget (default 120)")
    ap.add_argument(
        "--seconds", type=float, default=20.0, help="seconds per measurement (default 20)"
    )
    ap.add_argument("--repeats", type=int, default=3, help="alternating rounds (default 3)")
    args = ap.parse_args()
    if args.quick:
        args.tune_budget_s, args.seconds, args.repeats = 20.0, 3.0, 1
    print(header("nnperf tuned fp32 vs OpenVINO benchmark_app, zoo:resnet50"))
    try:
        import openvino

        print(f"# openvino {openvino.__version__}")
    except ImportError:
        print("OpenVINO: not installed; comparison skipped (pip install openvino to add it)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet50.onnx"
        path.write_bytes(zoo.model_bytes("resnet50"))
        result = tune(str(path), objective="throughput", time_budget_s=args.tune_budget_s)
        cfg = result.config
        print(f"tuned config: {result.winner.label}  ({result.reason})")
        ours, theirs = [], []
        for _ in range(args.repeats):
            r = run_benchmark(
                str(path), scenario="offline", config=cfg, queries=1, duration_s=args.seconds,
                warmup_iters=1,
            )  # fmt: skip
            ours.append(r.throughput_samples_per_s)
            theirs.append(openvino_fps(path, args.seconds))
        ratio = median(ours) / median(theirs)
        print(f"nnperf tuned   {median(ours):8.2f} samples/s  {[round(x, 2) for x in ours]}")
        print(f"benchmark_app  {median(theirs):8.2f} FPS        {[round(x, 2) for x in theirs]}")
        print(f"ratio nnperf / OpenVINO fp32 = {ratio:.3f} (goal >= 1.0)")


if __name__ == "__main__":
    main()
