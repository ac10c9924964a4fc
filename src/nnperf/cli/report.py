"""``nnperf report RUN.json [...] -o report.html``: one self-contained HTML report."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``report`` subcommand."""
    p = sub.add_parser(
        "report",
        help="write one self-contained HTML report (plots) of bench/sweep/tune/profile documents",
        description="Latency histograms and CDFs, throughput vs p99 for sweeps, stage bars, "
        "tune's candidates, the profiler's operator breakdown and advice, side-by-side "
        "comparisons, machine and versions, in one HTML file that opens without network "
        "(plotly's JavaScript is inlined; about 5 MB). Needs nnperf[report].",
    )
    p.add_argument("documents", nargs="+", metavar="FILE", help="nnperf JSON documents")
    p.add_argument("-o", "--output", required=True, help="the HTML file to write")
    p.add_argument("--title", default=None, help="page title (default: nnperf report: MODELS)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the report; returns 0."""
    from nnperf.report.html import write_report

    path = write_report(args.documents, args.output, title=args.title)
    print(f"wrote HTML report {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained)")
    return 0
