"""``nnperf profile MODEL``: warm up, run a measured block, print the tables and advice."""

from __future__ import annotations

import argparse
import json
from typing import Any

from nnperf.bench.inputs import make_feeds
from nnperf.cli.args import (
    add_engine_arguments,
    config_from_args,
    non_negative_int,
    output_file,
    positive_int,
)
from nnperf.errors import InvalidInputError
from nnperf.profiler import profile
from nnperf.profiler.advice import Advice, advise
from nnperf.runtime import Session

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
    add_engine_arguments(p)
    p.add_argument("--batch-size", type=positive_int, default=1, help="batch size (default 1)")
    p.add_argument(
        "--warmup-iters",
        type=non_negative_int,
        default=10,
        help="warm-up queries (default 10; not measured)",
    )
    p.add_argument(
        "--queries", type=positive_int, default=100, help="measured queries (default 100)"
    )
    p.add_argument(
        "--ops",
        action="store_true",
        help="collect the engine's per-operator events (onnxruntime's profiler, OpenVINO's "
        "PERF_COUNT): operators, external operators (default off)",
    )
    p.add_argument(
        "--trace-output",
        type=output_file,
        default=None,
        metavar="FILE",
        help="write a Chrome trace (default none)",
    )
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="stdout format: text tables or one JSON object (default text)",
    )
    p.add_argument("--seed", type=non_negative_int, default=0, help="random input seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``nnperf profile``; returns the exit status."""
    for flag in ("batch_size", "queries"):
        if getattr(args, flag) < 1:
            raise InvalidInputError(
                f"--{flag.replace('_', '-')}: got {getattr(args, flag)}, expected >= 1"
            )
    cfg = config_from_args(args, batch_size=args.batch_size)
    with profile(file=args.trace_output, operators=args.ops) as prof:
        session = Session(args.model, config=cfg)
        feeds = make_feeds(session.inputs, batch_size=args.batch_size, seed=args.seed)
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
    if args.format == "json":
        print(json.dumps(_json(df, advice, args), indent=2))
        return 0
    print(
        f"nnperf profile {args.model}: {args.queries} queries, batch {args.batch_size}, "
        f"engine {session.engine.name} {session.engine.version} ({cfg.precision})"
    )
    print(tables.summary_text(df))
    print("\nEngine executions (ns)")
    print(tables.render(tables.device_executions(df), max_rows=10))
    if args.ops:
        print("\nOperators by type (ns; share of engine time)")
        print(tables.render(tables.operators(df)))
        print("\nExternal operators (ns)")
        print(tables.render(tables.external_operators(df), max_rows=10))
    print("\nAdvice")
    print("\n".join(str(a) for a in advice) if advice else "- nothing stands out")
    if args.trace_output:
        print(f"\nChrome trace written to {args.trace_output} (open in ui.perfetto.dev)")
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
