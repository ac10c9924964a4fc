"""``nnperf compare-models REF CAND --data DIR``: accuracy of a candidate model on real data."""

from __future__ import annotations

import argparse
import json
from typing import Any

from nnperf.cli.args import non_negative_float, positive_int

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``compare-models`` subcommand."""
    p = sub.add_parser(
        "compare-models",
        help="compare a candidate model's outputs with a reference on real data (exit 1 on a "
        "failed tolerance)",
        description="Run REF and CAND on every query of --data DIR (.npy per query for "
        "single-input models, .npz per query keyed by input name, or images resized to the "
        "input) and report per output the max/mean absolute and relative error, cosine, "
        "top-1/top-k agreement, and with --labels the accuracy of both. Exits 1 when an "
        "element is outside --atol + --rtol x |ref| (or cosine < --min-cosine).",
    )
    p.add_argument("reference", metavar="REF", help="the reference model (.onnx or zoo:NAME)")
    p.add_argument("candidate", metavar="CAND", help="the candidate model (.onnx or zoo:NAME)")
    p.add_argument("--data", required=True, metavar="DIR", help="folder of query files")
    p.add_argument(
        "--labels",
        default=None,
        metavar="FILE",
        help="integer labels: .npy, one per line, or name,label lines (default: none)",
    )
    p.add_argument(
        "--atol", type=non_negative_float, default=1e-3, help="absolute tolerance (default 1e-3)"
    )
    p.add_argument(
        "--rtol", type=non_negative_float, default=1e-2, help="relative tolerance (default 1e-2)"
    )
    p.add_argument(
        "--min-cosine",
        type=float,
        default=None,
        help="also fail when an output's cosine similarity is below this (default: not checked)",
    )
    p.add_argument(
        "--top-k", type=positive_int, default=5, help="k of the top-k agreement (default 5)"
    )
    p.add_argument(
        "--format",
        choices=("text", "markdown", "csv", "json"),
        default="text",
        help="output format (default text)",
    )
    p.add_argument("--device", default=None, help="device spec for both (default: cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compare; 0 when every output is within tolerance, 1 otherwise."""
    from nnperf.optimize.evaldata import load_eval_data, load_labels, query_files
    from nnperf.optimize.verify import label_accuracy, output_accuracy
    from nnperf.runtime import Session, resolve_config
    from nnperf.table import Column, Table, render_tables

    files = query_files(args.data)
    cfg = resolve_config(None, device=args.device)
    with Session(args.reference, config=cfg) as ref, Session(args.candidate, config=cfg) as cand:
        ref_feeds = load_eval_data(args.data, ref.inputs)
        cand_feeds = load_eval_data(args.data, cand.inputs)
        ref_out = [ref.run(f) for f in ref_feeds]
        cand_out = [cand.run(f) for f in cand_feeds]
        names = [d.name for d in ref.outputs]
    results = output_accuracy(
        names, ref_out, cand_out, atol=args.atol, rtol=args.rtol, top_k=args.top_k
    )
    failed = [
        r.name
        for r in results
        if not r.passed or (args.min_cosine is not None and r.cosine < args.min_cosine)
    ]
    k = args.top_k
    rows = [
        (r.name, r.max_abs_err, r.mean_abs_err, r.max_rel_err, r.mean_rel_err, r.cosine,
         r.top1_agreement, r.topk_agreement, f"{r.violations}/{r.elements}",
         "FAIL" if r.name in failed else "ok")
        for r in results
    ]  # fmt: skip
    cols = (
        Column("output"),
        Column("max_abs_err", "max abs err"),
        Column("mean_abs_err", "mean abs err"),
        Column("max_rel_err", "max rel err"),
        Column("mean_rel_err", "mean rel err"),
        Column("cosine", digits=6),
        Column("top1_agreement", "top-1 agree", digits=4),
        Column("topk_agreement", f"top-{k} agree", digits=4),
        Column("violations", "outside tol"),
        Column("verdict"),
    )
    tol = f"tolerance: |cand - ref| <= {args.atol:g} + {args.rtol:g} x |ref| per element"
    if args.min_cosine is not None:
        tol += f", cosine >= {args.min_cosine:g}"
    tables = [
        Table(
            f"{args.candidate} vs {args.reference} on {len(files)} queries from {args.data}",
            cols,
            rows,
            notes=(tol,),
        )
    ]
    accuracy: dict[str, Any] = {}
    if args.labels:
        labels = load_labels(args.labels, files)
        ref_acc = label_accuracy(ref_out, labels, top_k=k)
        cand_acc = label_accuracy(cand_out, labels, top_k=k)
        accuracy = {"reference": ref_acc, "candidate": cand_acc, "top_k": k}
        tables.append(
            Table(
                f"Accuracy against {args.labels} (output {names[0]!r})",
                (
                    Column("model"),
                    Column("top1", "top-1", "%", 2),
                    Column("topk", f"top-{k}", "%", 2),
                ),
                [
                    (f"REF {args.reference}", 100 * ref_acc[0], 100 * ref_acc[1]),
                    (f"CAND {args.candidate}", 100 * cand_acc[0], 100 * cand_acc[1]),
                ],
            )
        )
    if args.format == "json":
        doc = {
            "schema": "nnperf.compare-models/1",
            "reference": args.reference,
            "candidate": args.candidate,
            "data": args.data,
            "queries": len(files),
            "outputs": [r.to_dict() for r in results],
            "accuracy": accuracy or None,
            "passed": not failed,
        }
        print(json.dumps(doc, indent=2))
    else:
        print(render_tables(tables, args.format))
        if args.format == "text":
            print(f"FAILED: {', '.join(failed)}" if failed else "all outputs within tolerance")
    return 1 if failed else 0
