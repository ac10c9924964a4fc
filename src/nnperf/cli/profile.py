"""``nnperf profile MODEL``: warm up, run a measured block, print the tables and advice."""

from __future__ import annotations

import argparse
from typing import Any

from nnperf.bench.inputs import make_feeds
from nnperf.cli.args import (
    add_engine_arguments,
    config_from_args,
    non_negative_int,
    output_file,
    positive_int,
)
from nnperf.cli.output import Output, check_output_path, with_provenance
from nnperf.cli.shapes import add_shape_arguments, dims_and_shapes
from nnperf.errors import InvalidInputError
from nnperf.model import graph_io, load_model
from nnperf.profiler import profile
from nnperf.profiler.advice import Advice, advise
from nnperf.runtime import Session
from nnperf.table import Column, Table, render_tables
from nnperf.types import check_dims_and_shapes

__all__ = ["PROFILE_SCHEMA", "register", "run"]

PROFILE_SCHEMA = "nnperf.profile/2"


def register(subparsers: Any) -> None:
    """Add the ``profile`` subcommand."""
    p = subparsers.add_parser(
        "profile",
        help="profile a model: spans, engine operators, tables and advice",
        description=(
            "Run MODEL for --warmup-iters queries (block 'warm up') and --queries queries (block "
            "'trace', span mode: the latency of record), with --ops a separate operator pass "
            "(block 'operators'), then print the inference summary, per-inference engine split, "
            "operators by type, external operators and advice."
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
        help="also run an operator pass (the engine's per-operator events: onnxruntime's "
        "profiler, OpenVINO's PERF_COUNT) after the span pass; latency figures stay the span "
        "pass's (default off)",
    )
    p.add_argument(
        "--trace-output",
        type=output_file,
        default=None,
        metavar="FILE",
        help="write a Chrome trace (default none)",
    )
    add_shape_arguments(p)
    p.add_argument(
        "--format",
        choices=("text", "json", "csv", "markdown"),
        default="text",
        help="stdout format: text tables, one JSON document (nnperf.profile/2), or the tables as "
        "CSV or Markdown (default text)",
    )
    p.add_argument(
        "--json",
        default=None,
        metavar="FILE|-",
        help="also write the nnperf.profile/2 JSON document here; '-' is stdout (default none)",
    )
    p.add_argument(
        "--report",
        default=None,
        metavar="FILE",
        help="also write a self-contained HTML report here (needs nnperf[report]; default none)",
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
    fmt = "json" if args.format == "json" else "text"
    out = Output(args.json, fmt)
    for flag, path in (("--trace-output", args.trace_output), ("--report", args.report)):
        if path:
            check_output_path(path, flag, stdout=False)
    dims, shapes = dims_and_shapes(args)
    cfg = config_from_args(args, batch_size=args.batch_size)
    if dims or shapes:
        cfg = cfg.replace(dims={**cfg.dims, **dims}, shapes={**cfg.shapes, **shapes})
    blob = load_model(args.model)
    check_dims_and_shapes(graph_io(blob).inputs, dims=cfg.dims, shapes=cfg.shapes)
    op_runs = args.warmup_iters + args.queries
    with profile(
        file=args.trace_output, operators=args.ops, max_operator_runs=max(op_runs, 1)
    ) as prof:
        session = Session(blob, config=cfg)
        feeds = make_feeds(
            session.inputs,
            batch_size=args.batch_size,
            seed=args.seed,
            dims=cfg.dims,
            shapes=cfg.shapes,
        )
        # Span pass: the latency of record, with no operator recording.
        with prof.record("warm up", operators=False):
            for _ in range(args.warmup_iters):
                session.run(feeds)
        with prof.record("trace", operators=False):
            for _ in range(args.queries):
                session.run(feeds)
        if args.ops:
            # Operator pass: the breakdown. Its first --warmup-iters queries warm the profiling
            # instance and are left out of every figure.
            with prof.record("operators"):
                for _ in range(op_runs):
                    session.run(feeds)
    from nnperf.profiler import tables

    full = prof.dataframe()
    wall_ns = int(full.loc[(full["cat"] == "Record") & (full["name"] == "trace"), "dur"].sum())
    df = tables.descendants(full, "trace")
    ops_df = (
        _after_first(tables.descendants(full, "operators"), args.warmup_iters) if args.ops else None
    )
    advice = advise(
        df,
        model=args.model,
        inputs=session.inputs,
        outputs=session.outputs,
        providers=session.instances[0].providers,
        instances=len(session.instances),
        wall_ns=wall_ns,
        batch_size=args.batch_size,
        operators=ops_df,
    )
    engine = {
        "name": session.engine.name,
        "version": session.engine.version,
        "providers": list(session.instances[0].providers),
    }
    model = {"name": session.model.name, "path": session.model.path, "ref": args.model}
    session.close()
    doc = _document(df, ops_df, advice, args, cost=prof.operator_cost, engine=engine, model=model)
    doc = with_provenance(doc, args, warmup=args.warmup_iters)
    if args.report:
        from nnperf.report.html import write_report

        write_report([doc], args.report)
    if args.format in ("csv", "markdown"):
        print(render_tables(_tables(df, ops_df, advice), args.format))
        out.document(doc)  # the --json file, if any
        return 0
    text = [
        f"nnperf profile {args.model}: {args.queries} queries, batch {args.batch_size}, "
        f"engine {engine['name']} {engine.get('version', '')} ({cfg.precision})",
        tables.summary_text(df),
        "latency of record: span mode (no operator recording)",
    ]
    op_mode = doc.get("operator_mode")
    if op_mode:
        text.append(_operator_mode_line(op_mode))
    text += ["", tables.device_executions_table(ops_df if ops_df is not None else df).to_text()]
    if ops_df is not None:
        text += [
            "(operator pass: engine totals include operator recording)",
            "",
            tables.operators_table(ops_df).to_text(),
            "",
            tables.external_operators_table(ops_df).to_text(),
        ]
    text += ["\nAdvice", "\n".join(str(a) for a in advice) if advice else "- nothing stands out"]
    if ops_df is not None and advice:
        text.append("(shares of engine time from the operator pass; times from the span pass)")
    out.report("\n".join(text))
    out.document(doc)
    if args.trace_output:
        out.status(f"Chrome trace written to {args.trace_output} (open in ui.perfetto.dev)")
    if args.report:
        out.status(f"wrote HTML report {args.report}")
    return 0


def _after_first(df: Any, skip: int) -> Any:
    """``df`` without its first ``skip`` inferences (by start) and everything under them."""
    if skip <= 0:
        return df
    infs = df.loc[df["name"] == "Inference"].sort_values("start")
    drop = set(infs["span_id"].iloc[:skip])
    frontier = drop
    while frontier:
        new = set(df.loc[df["parent_span_id"].isin(frontier), "span_id"]) - drop
        drop |= new
        frontier = new
    return df.loc[~df["span_id"].isin(drop)].reset_index(drop=True)


def _operator_mode_line(op: dict[str, Any]) -> str:
    s = op["summary_ns"]
    return (
        f"operator mode (breakdown only): p50 {s['median'] / 1000:.1f} µs = "
        f"{op['inflation_p50']:.2f}x span mode, p99 {s['p99'] / 1000:.1f} µs = "
        f"{op['inflation_p99']:.2f}x; {op['cost']}"
    )


def _document(
    df: Any,
    ops_df: Any,
    advice: list[Advice],
    args: argparse.Namespace,
    *,
    cost: str,
    engine: dict[str, Any],
    model: dict[str, Any],
) -> dict[str, Any]:
    """The ``nnperf.profile/2`` document: span-mode latency, the operator pass's breakdown."""
    from nnperf.bench.machine import machine_info
    from nnperf.profiler import tables

    summary = tables.summary(df)
    durs = df.loc[(df["cat"] == "Runtime") & (df["name"] == "Inference"), "dur"]
    doc: dict[str, Any] = {
        "schema": PROFILE_SCHEMA,
        "model": model,
        "engine": engine,
        "batch_size": args.batch_size,
        "queries": args.queries,
        "latency_mode": "span",
        "summary_ns": summary,
        "samples": {"latency_ns": [int(v) for v in durs]},
        "operators": [],
        "external_operators": 0,
        "advice": [a.to_dict() for a in advice],
        "trace_output": args.trace_output,
        "machine": machine_info(),
    }
    if ops_df is not None:
        op_summary = tables.summary(ops_df)
        ratio = {
            f"inflation_{key}": (op_summary[stat] / summary[stat]) if summary.get(stat) else None
            for key, stat in (("p50", "median"), ("p99", "p99"))
        }
        doc["operator_mode"] = {"summary_ns": op_summary, "cost": cost, **ratio}
        doc["operators"] = tables.operators(ops_df).to_dict(orient="records")
        doc["external_operators"] = len(tables.external_operators(ops_df))
    return doc


def _tables(df: Any, ops_df: Any, advice: list[Advice]) -> list[Table]:
    """Every table ``profile`` prints, for ``--format csv|markdown``."""
    from nnperf.profiler import tables

    s = tables.summary(df)
    rows = [("count", s["count"], None)] + [
        (key, s[key] / 1000, None) for key in s if key != "count"
    ]
    out = [
        Table(
            "Inference Results Summary (span mode: latency of record)",
            (Column("stat"), Column("latency_us", "latency", "µs", 1), Column("note")),
            rows,
        )
    ]
    out.append(tables.device_executions_table(ops_df if ops_df is not None else df, max_rows=None))
    if ops_df is not None:
        out.append(tables.operators_table(ops_df, max_rows=None))
        out.append(tables.external_operators_table(ops_df, max_rows=None))
    out.append(
        Table(
            "Advice",
            (Column("rule"), Column("finding"), Column("command"), Column("value")),
            [(a.rule, a.finding, a.command, a.value) for a in advice],
        )
    )
    return out
