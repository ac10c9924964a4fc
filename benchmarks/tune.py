"""How good is ``nnperf tune``? Side by side, in one process, on the zoo models.

For each model (offline throughput objective, samples/s):

1. ``tune`` with a time budget (default 120 s);
2. the exhaustive grid of primary points (every device split x workers x batch size, engine knobs
   at their defaults), each measured for ``--grid-run-s``;
3. the tuned config, the grid's best three and onnxruntime's defaults (one session, default
   threads: ``RunConfig()``) re-measured in interleaved repeats (A B C D, A B C D...), medians.

Prints ``tuned / grid best`` (goal >= 0.97) and ``tuned / defaults``. OpenVINO's benchmark_app is
compared only where the ``openvino`` package is importable (it is optional; skipped otherwise).

    python benchmarks/tune.py            # the four zoo models, 120 s budget each (long)
    python benchmarks/tune.py --quick    # mnist, 6 s budget: a smoke run
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time

from nnperf.bench import run_benchmark
from nnperf.bench.machine import machine_info
from nnperf.engines.config import RunConfig
from nnperf.model import ModelBlob, load_model
from nnperf.tune import Candidate, build_space, tune


def measure(blob: ModelBlob, cand: Candidate, duration_s: float) -> float:
    """Offline samples/s of one run."""
    workers = cand.config.workers or cand.instances
    r = run_benchmark(
        blob,
        scenario="offline",
        config=cand.config,
        queries=2 * workers,
        duration_s=duration_s,
        warmup_iters=1,
    )
    return r.throughput_samples_per_s


def one_model(name: str, budget_s: float, grid_run_s: float, repeats: int) -> dict[str, float]:
    blob = load_model(f"zoo:{name}")
    t0 = time.perf_counter()
    result = tune(blob, objective="throughput", time_budget_s=budget_s)
    tune_s = time.perf_counter() - t0
    print(f"\n[{name}] tuned in {tune_s:.1f} s: {result.winner.label}  ({result.reason})")

    space = build_space(blob, throughput=True)
    grid = space.primary()
    t0 = time.perf_counter()
    grid_values = {}
    for cand in grid:
        try:
            grid_values[cand.label] = (cand, measure(blob, cand, grid_run_s))
        except Exception as exc:  # a grid point may fail (e.g. memory); report and go on
            print(f"  grid {cand.label}: failed: {exc}")
    grid_s = time.perf_counter() - t0
    top = sorted(grid_values.values(), key=lambda cv: -cv[1])[:3]
    print(
        f"  exhaustive grid: {len(grid)} points x {grid_run_s:g} s in {grid_s:.1f} s; best "
        + ", ".join(f"{c.label} {v:,.1f}/s" for c, v in top)
    )

    tuned = result.winner.candidate
    contenders: dict[str, Candidate] = {"tuned": tuned, "defaults": Candidate(RunConfig())}
    for i, (c, _) in enumerate(top):
        contenders[f"grid#{i + 1}"] = c
    samples: dict[str, list[float]] = {k: [] for k in contenders}
    run_s = max(grid_run_s, 1.0)
    for _ in range(repeats):
        for key, cand in contenders.items():
            samples[key].append(measure(blob, cand, run_s))
    med = {k: statistics.median(v) for k, v in samples.items()}
    grid_best = max(v for k, v in med.items() if k.startswith("grid#"))
    for key, cand in contenders.items():
        spread = (max(samples[key]) - min(samples[key])) / 2 / med[key] if med[key] else 0.0
        print(f"  {key:<9} {cand.label:<32} {med[key]:>10,.1f} samples/s  ±{100 * spread:.1f} %")
    ratios = {
        "tuned/grid_best": med["tuned"] / grid_best,
        "tuned/defaults": med["tuned"] / med["defaults"],
    }
    print(
        f"  RATIO tuned / grid best = {ratios['tuned/grid_best']:.3f} (goal >= 0.97);  "
        f"tuned / onnxruntime defaults = {ratios['tuned/defaults']:.3f}"
    )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: mnist, short budgets")
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="zoo models (default mobilenetv2 resnet50 bert-tiny mnist; quick: mnist)",
    )
    parser.add_argument(
        "--budget-s", type=float, default=None, help="tune budget per model (default 120; quick 6)"
    )
    parser.add_argument(
        "--grid-run-s",
        type=float,
        default=None,
        help="measured seconds per grid point (default 2; quick 0.2)",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="side-by-side repeats (default 5; quick 2)"
    )
    args = parser.parse_args()
    models = args.models or (
        ["mnist"] if args.quick else ["mobilenetv2", "resnet50", "bert-tiny", "mnist"]
    )
    budget = args.budget_s or (6.0 if args.quick else 120.0)
    grid_run_s = args.grid_run_s or (0.2 if args.quick else 2.0)
    repeats = args.repeats or (2 if args.quick else 5)
    m = machine_info()
    print(f"machine: {m['cpu']}, {m['cores_available']} core(s); {m['platform']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    print(f"tune budget {budget:g} s per model; grid runs {grid_run_s:g} s; {repeats} repeats")
    all_ratios = {name: one_model(name, budget, grid_run_s, repeats) for name in models}
    print("\nsummary (medians of side-by-side repeats):")
    for name, r in all_ratios.items():
        print(
            f"  {name:<12} tuned/grid_best {r['tuned/grid_best']:.3f}   "
            f"tuned/defaults {r['tuned/defaults']:.3f}"
        )
    if importlib.util.find_spec("openvino") is None:
        print("OpenVINO: not installed; comparison skipped (pip install openvino to add it)")
    else:
        print("OpenVINO: installed, but the benchmark_app comparison is not automated here")


if __name__ == "__main__":
    main()
