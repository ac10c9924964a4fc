"""``nnperf compare A.json B.json [...]``: B against A per metric, with a noise-aware verdict."""

from __future__ import annotations

import argparse
import json
from typing import Any

from nnperf.cli.args import positive_int

__all__ = ["register", "run"]


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected a number such as 0.05") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"got {value}, expected 0 <= x < 1")
    return value


def register(sub: Any) -> None:
    """Add the ``compare`` subcommand."""
    from nnperf.report.compare import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT

    p = sub.add_parser(
        "compare",
        help="compare bench/tune/profile documents: A, B, delta and a noise-aware verdict",
        description="Compare runs metric by metric (latency p50/p90/p99/mean, throughput). "
        "Verdicts come from the raw per-query samples: bootstrap 95%% intervals per statistic "
        "and a Mann-Whitney U test of the distributions; documents without samples (bench/1) "
        "are compared by their figures and say they cannot judge noise. With two sweeps, points "
        "are paired by axis value; otherwise every run is compared with the first one (a "
        "side-by-side document's rows count as runs).",
    )
    p.add_argument("documents", nargs="+", metavar="FILE", help="nnperf JSON documents")
    p.add_argument(
        "--format",
        choices=("text", "markdown", "csv", "json"),
        default="text",
        help="output format (default text)",
    )
    p.add_argument(
        "--alpha",
        type=_fraction,
        default=DEFAULT_ALPHA,
        help=f"significance level of the Mann-Whitney U test (default {DEFAULT_ALPHA})",
    )
    p.add_argument(
        "--min-effect",
        type=_fraction,
        default=DEFAULT_MIN_EFFECT,
        help="smallest relative change reported as faster/slower, as a fraction "
        f"(default {DEFAULT_MIN_EFFECT} = {100 * DEFAULT_MIN_EFFECT:g} %%)",
    )
    p.add_argument(
        "--bootstrap",
        type=positive_int,
        default=1000,
        metavar="N",
        help="bootstrap resamples per interval (default 1000)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap random seed (default 0)")
    p.add_argument(
        "--fail-if-slower",
        action="store_true",
        help="exit 1 when any B is slower than its A (for CI; default: exit 0)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compare the documents; print the tables; 1 with --fail-if-slower and a slower B."""
    from nnperf.report.compare import Verdict, compare_runs, comparison_tables, pair_runs
    from nnperf.report.documents import load_document, runs_of
    from nnperf.table import render_tables

    groups = [runs_of(load_document(path), source=path) for path in args.documents]
    comparisons = [
        compare_runs(
            a, b, alpha=args.alpha, min_effect=args.min_effect, n_boot=args.bootstrap,
            seed=args.seed,
        )
        for a, b in pair_runs(groups)
    ]  # fmt: skip
    if args.format == "json":
        doc = {"schema": "nnperf.compare/1", "comparisons": [c.to_dict() for c in comparisons]}
        print(json.dumps(doc, indent=2))
    else:
        print(render_tables(comparison_tables(comparisons), args.format))
    slower = any(c.verdict is Verdict.SLOWER for c in comparisons)
    return 1 if args.fail_if_slower and slower else 0
