"""``nnperf profile MODEL``: warm up, run a measured block, print the tables and advice."""

from __future__ import annotations

import argparse
from typing import Any

from nnperf.bench.inputs import make_feeds
from nnperf.cli.args import non_negative_int
from nnperf.cli.output import Output, add_output_arguments, check_output_path, with_provenance
from nnperf.cli.shapes import add_shape_arguments, dims_and_shapes
from nnperf.errors import InvalidInputError
from nnperf.model import graph_io, load_model
from nnperf.profiler import profile
from nnperf.profiler.advice import Advice, advise
from nnperf.runtime import Session, resolve_config
from nnperf.types import check_dims_and_shapes

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``profile`` subcommand."""
    p = subparsers.add_parser(
        "profile",
        help="profile a model: spans, engine operators, tables and advice",
        description=(
            "Run MODEL for --warmup-iters queries (block 'warm up') and --queries queries (block "
            "'trace'), then print the inference summary, per-inference engine split, operators by "
            "type, external operators and advice."
        ),
    )
    p.add_argument("model", help="ONNX file or zoo:NAME")
    p.add_argument("--device", default=None, help="device spec (default: $NNPERF_DEVICES or cpu)")
    p.add_argument("--batch-size", type=int, default=1, help="batch size (default 1)")
    p.add_argument(
        "--warmup-iters",
        type=non_negative_int,
        default=10,
        help="warm-up queries (default 10; not measured)",
    )
    p.add_argument("--queries", type=int, default=100, help="measured queries (default 100)")
    p.add_argument(
        "--ops",
        action="store_true",
        help="collect onnxruntime per-node events (operators, external operators; default off)",
    )
    p.add_argument(
        "--trace-output", default=None, metavar="FILE", help="write a Chrome trace (default none)"
    )
    add_shape_arguments(p)
    add_output_arguments(p, document="nnperf.profile/1", formats=("text", "json"))
    p.add_argument("--seed", type=int, default=0, help="random input seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``nnperf profile``; returns the exit status."""
    for flag in ("batch_size", "queries"):
        if getattr(args, flag) < 1:
            raise InvalidInputError(
                f"--{flag.replace('_', '-')}: got {getattr(args, flag)}, expected >= 1"
            )
    out = Output(args.json, args.format)
    if args.trace_output:
        check_output_path(args.trace_output, "--trace-output", stdout=False)
    dims, shapes = dims_and_shapes(args)
    cfg = resolve_config(None, device=args.device, batch_size=args.batch_size)
    if dims or shapes:
        cfg = cfg.replace(dims=dims, shapes=shapes)
    blob = load_model(args.model)
    check_dims_and_shapes(graph_io(blob).inputs, dims=dims, shapes=shapes)
    with profile(file=args.trace_output, operators=args.ops) as prof:
        session = Session(blob, config=cfg)
        feeds = make_feeds(
            session.inputs, batch_size=args.batch_size, seed=args.seed, dims=dims, shapes=shapes
        )
        with prof.record("warm up"):
            for _ in range(args.warmup_iters):
                session.run(feeds)
        with prof.record("trace"):
            for _ in range(args.queries):
                session.run(feeds)
    from nnperf.profiler import tables

    full = prof.dataframe()
    wall_ns = int(full.loc[(full["cat"] == "Record") & (full["name"] == "trace"), "dur"].sum())
    df = tables.descendants(full, "trace")
    advice = advise(
        df,
        model=args.model,
        inputs=session.inputs,
        outputs=session.outputs,
        providers=session.instances[0].providers,
        instances=len(session.instances),
        wall_ns=wall_ns,
        batch_size=args.batch_size,
    )
    session.close()
    text = [
        f"nnperf profile {args.model}: {args.queries} queries, batch {args.batch_size}",
        tables.summary_text(df),
        "\nEngine executions (ns)",
        tables.render(tables.device_executions(df), max_rows=10),
    ]
    if args.ops:
        text += [
            "\nOperators by type (ns; share of engine time)",
            tables.render(tables.operators(df)),
            "\nExternal operators (ns)",
            tables.render(tables.external_operators(df), max_rows=10),
        ]
    text += ["\nAdvice", "\n".join(str(a) for a in advice) if advice else "- nothing stands out"]
    out.report("\n".join(text))
    out.document(with_provenance(_json(df, advice, args), args, warmup=args.warmup_iters))
    if args.trace_output:
        out.status(f"Chrome trace written to {args.trace_output} (open in ui.perfetto.dev)")
    return 0


def _json(df: Any, advice: list[Advice], args: argparse.Namespace) -> dict[str, Any]:
    from nnperf.profiler import tables

    ops = tables.operators(df)
    return {
        "schema": "nnperf.profile/1",
        "model": args.model,
        "batch_size": args.batch_size,
        "queries": args.queries,
        "summary_ns": tables.summary(df),
        "operators": ops.to_dict(orient="records"),
        "advice": [a.to_dict() for a in advice],
        "trace_output": args.trace_output,
    }
