"""``nnperf bench MODEL``: load, warm up and measure (load_and_run + furiosa-bench + perf_test)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from nnperf.cli.args import (
    add_engine_arguments,
    config_from_args,
    engine_list,
    input_file,
    non_negative_float,
    non_negative_int,
    output_file,
    positive_float,
    positive_int,
)
from nnperf.errors import InvalidInputError

__all__ = ["progress_bar", "register", "run"]


def register(sub: Any) -> None:
    """Add the ``bench`` subcommand."""
    p = sub.add_parser(
        "bench",
        help="measure latency, throughput, stages and utilisation",
        description="Load a model, report load/prepare/warm-up stages, then measure a scenario: "
        "single-stream (latency), offline (throughput) or server (Poisson arrivals). Both "
        "--queries and --duration are minimums.",
    )
    p.add_argument("model", nargs="?", help="path to an .onnx file or zoo:NAME")
    p.add_argument(
        "more_models",
        nargs="*",
        metavar="MODEL",
        help="further models: measure every model side by side, interleaved on the same inputs "
        "(nnperf bench A.onnx B.onnx; default: one model)",
    )
    p.add_argument(
        "--scenario",
        default="single-stream",
        choices=["single-stream", "offline", "server"],
        help="traffic pattern (default single-stream)",
    )
    p.add_argument(
        "--device",
        default=None,
        help="device: cpu, cpu(T)*N, cpu:0-1, cpu:0,cpu:1, cuda:0 (default: config, "
        "$NNPERF_DEVICES, cpu)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="host threads issuing queries (default: one per instance; single-stream 1)",
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=None, help="rows per query (default 1)"
    )
    p.add_argument(
        "--queries", type=positive_int, default=100, help="minimum measured queries (default 100)"
    )
    p.add_argument(
        "--duration",
        type=non_negative_float,
        default=0.0,
        help="minimum measured time in seconds (default 0)",
    )
    p.add_argument(
        "--warmup-iters",
        type=non_negative_int,
        default=3,
        help="warm-up runs per instance before measuring (default 3)",
    )
    p.add_argument(
        "--fake-first",
        action="store_true",
        help="run once on zeros before warm-up, reported as its own stage (default off)",
    )
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME:SPEC",
        help="input data: random, zeros, ones (optionally :1x3x224x224), a .npy file or an "
        "image; repeatable (default random)",
    )
    p.add_argument(
        "--target-qps",
        type=positive_float,
        default=None,
        help="server scenario: offered load in queries/s (required there)",
    )
    p.add_argument(
        "--api",
        default="sync",
        choices=["sync", "queue", "async"],
        help="how queries are issued: sync calls, the Submitter/Receiver queue, or asyncio "
        "(default sync)",
    )
    p.add_argument(
        "--concurrency",
        type=positive_int,
        default=None,
        help="queries kept outstanding (offline with --api queue/async, batching or a pipeline; "
        "--url: connections) (default: the runtime's in-flight limit; at least 64 coroutines "
        "with --api async)",
    )
    p.add_argument(
        "--max-batch-size",
        type=positive_int,
        default=None,
        help="merge concurrent queries into batches of up to N rows (default: no merging)",
    )
    p.add_argument(
        "--max-delay-ms",
        type=non_negative_float,
        default=1.0,
        help="with --max-batch-size: longest wait for a batch to fill, in ms (default 1.0)",
    )
    p.add_argument(
        "--pipeline-stages",
        type=positive_int,
        default=None,
        help="split the model into K stages, one instance each (default: no pipeline)",
    )
    p.add_argument(
        "--url",
        default=None,
        help="benchmark a KServe v2 server at this URL instead (MODEL is the served model's "
        "name) (default: in-process)",
    )
    p.add_argument(
        "--token", default=None, help="--url: bearer token for the server (default: none)"
    )
    p.add_argument(
        "--config", type=input_file, default=None, help="RunConfig JSON (from 'nnperf tune')"
    )
    add_engine_arguments(p, many=True)
    p.add_argument(
        "--rounds",
        type=positive_int,
        default=3,
        help="with several --engine names or models: interleaved rounds, figures are medians "
        "(default 3)",
    )
    p.add_argument(
        "--graph-level",
        default=None,
        choices=["disabled", "basic", "extended", "all"],
        help="onnxruntime graph optimisation level, short for --engine-option graph_level=LEVEL "
        "(default: config's, else all)",
    )
    p.add_argument(
        "--json",
        type=output_file,
        default=None,
        metavar="FILE",
        help="write nnperf.bench/1 JSON here",
    )
    p.add_argument(
        "--report",
        default=None,
        metavar="FILE",
        help="also write a self-contained HTML report (plots; needs nnperf[report]) (default: none)",
    )
    p.add_argument(
        "--trace-output",
        type=output_file,
        default=None,
        metavar="FILE",
        help="write a Chrome trace (chrome://tracing, Perfetto) of the measured queries "
        "(default: none)",
    )
    p.add_argument(
        "--trace-operators",
        action="store_true",
        help="with --trace-output: add the engine's operator events on one track per instance "
        "(operator recording slows every query; default off: host spans only)",
    )
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="random seed for inputs (default 0)"
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: when stderr is a terminal)",
    )
    p.set_defaults(func=run)


@contextmanager
def progress_bar(
    enabled: bool, description: str
) -> Iterator[Callable[[int, int, float, float], None] | None]:
    """A rich progress bar fed by ``(done, min_queries, elapsed_s, min_duration_s)``.

    Yields ``None`` when disabled or when rich is not installed.
    """
    if not enabled:
        yield None
        return
    try:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[done]} queries"),
        TimeElapsedColumn(),
        transient=True,
        console=None,
    ) as bar:
        task = bar.add_task(description, total=1.0, done=0)

        def update(done: int, queries: int, elapsed_s: float, duration_s: float) -> None:
            frac = min(done / queries, elapsed_s / duration_s if duration_s else 1.0)
            bar.update(task, completed=min(frac, 1.0), done=done)

        yield update


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print (and optionally write) the report."""
    from nnperf.bench.inputs import parse_input_specs
    from nnperf.bench.report import render_report
    from nnperf.bench.scenarios import run_benchmark

    if args.model is None:
        raise InvalidInputError(
            "nnperf bench: missing MODEL; expected a path to an .onnx file or zoo:NAME "
            "(try 'nnperf bench zoo:mnist')"
        )
    if args.more_models:
        return _run_models_side_by_side(args, engine_list(args.engine))
    if args.url:
        return _run_remote(args)
    if args.graph_level:
        args.engine_option = [*args.engine_option, f"graph_level={args.graph_level}"]
    engines = engine_list(args.engine)
    if engines is not None and len(engines) > 1:
        return _run_side_by_side(args, engines)
    cfg = config_from_args(args, batch_size=args.batch_size)
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    tracing: AbstractContextManager[Any] = nullcontext()
    if args.trace_operators and not args.trace_output:
        raise InvalidInputError("--trace-operators needs --trace-output FILE (where to write)")
    if args.trace_output:
        from nnperf.profiler import profile

        tracing = profile(file=args.trace_output, operators=args.trace_operators)
    with tracing, progress_bar(show, f"bench {args.scenario}") as progress:
        result = run_benchmark(
            args.model,
            scenario=args.scenario,
            config=cfg,
            workers=args.workers,
            queries=args.queries,
            duration_s=args.duration,
            warmup_iters=args.warmup_iters,
            fake_first=args.fake_first,
            inputs=parse_input_specs(args.input),
            target_qps=args.target_qps,
            seed=args.seed,
            progress=progress,
            api=args.api,
            concurrency=args.concurrency,
            max_batch_size=args.max_batch_size,
            max_delay_ms=args.max_delay_ms,
            pipeline_stages=args.pipeline_stages,
        )
    print(render_report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"wrote {args.json}")
    _write_report(args, result.to_dict())
    if args.trace_output:
        print(f"wrote Chrome trace {args.trace_output}")
    return 0


def _run_side_by_side(args: argparse.Namespace, engines: list[str]) -> int:
    """``nnperf bench MODEL --engine a,b``: every engine on the same inputs, interleaved."""
    from nnperf.bench.inputs import parse_input_specs
    from nnperf.bench.sidebyside import run_side_by_side

    if args.trace_output or args.pipeline_stages or args.max_batch_size:
        raise InvalidInputError(
            "--engine with several names compares engines one against another; "
            "--trace-output, --pipeline-stages and --max-batch-size apply to one engine at a time"
        )
    if args.engine_option:
        raise InvalidInputError(
            "--engine-option names one engine's options; with several --engine names give each "
            "engine's options through a --config file per engine, or run them one at a time"
        )
    configs = [config_from_args(args, engine=e, batch_size=args.batch_size) for e in engines]
    show = args.progress if args.progress is not None else sys.stderr.isatty()

    def progress(what: str) -> None:
        if show:
            print(f"  {what}", file=sys.stderr)

    result = run_side_by_side(
        args.model,
        configs,
        labels=engines,
        scenario=args.scenario,
        rounds=args.rounds,
        queries=args.queries,
        duration_s=args.duration,
        warmup_iters=args.warmup_iters,
        inputs=parse_input_specs(args.input),
        target_qps=args.target_qps,
        seed=args.seed,
        progress=progress,
        workers=args.workers,
        api=args.api,
        concurrency=args.concurrency,
    )
    print(result.render())
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"wrote {args.json}")
    _write_report(args, result.to_dict())
    return 0


def _write_report(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    """``--report FILE``: the HTML report of this run's document."""
    if args.report:
        from nnperf.report.html import write_report

        write_report([doc], args.report)
        print(f"wrote HTML report {args.report}")


def _run_models_side_by_side(args: argparse.Namespace, engines: list[str] | None) -> int:
    """``nnperf bench A.onnx B.onnx``: every model with the same config, interleaved, then the
    noise-aware comparison of each with the first."""
    from nnperf.bench.inputs import parse_input_specs
    from nnperf.bench.sidebyside import run_side_by_side
    from nnperf.report.compare import compare_runs
    from nnperf.report.documents import runs_of

    if engines is not None and len(engines) > 1:
        raise InvalidInputError(
            "several models and several --engine names: compare models on one engine, or "
            "engines on one model"
        )
    if args.trace_output or args.pipeline_stages or args.max_batch_size or args.url:
        raise InvalidInputError(
            "several models are measured side by side in process; --trace-output, "
            "--pipeline-stages, --max-batch-size and --url apply to one model at a time"
        )
    models = [args.model, *args.more_models]
    if args.graph_level:
        args.engine_option = [*args.engine_option, f"graph_level={args.graph_level}"]
    cfg = config_from_args(args, batch_size=args.batch_size)
    show = args.progress if args.progress is not None else sys.stderr.isatty()

    def progress(what: str) -> None:
        if show:
            print(f"  {what}", file=sys.stderr)

    result = run_side_by_side(
        models,
        [cfg] * len(models),
        scenario=args.scenario,
        rounds=args.rounds,
        queries=args.queries,
        duration_s=args.duration,
        warmup_iters=args.warmup_iters,
        inputs=parse_input_specs(args.input),
        target_qps=args.target_qps,
        seed=args.seed,
        progress=progress,
        workers=args.workers,
        api=args.api,
        concurrency=args.concurrency,
    )
    print(result.render())
    doc = result.to_dict()
    runs = runs_of(doc, label="bench")
    for run in runs[1:]:
        print(compare_runs(runs[0], run, seed=args.seed).headline())
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    _write_report(args, doc)
    return 0


def _run_remote(args: argparse.Namespace) -> int:
    """``nnperf bench MODEL --url URL``: drive a v2 server and report client-side figures."""
    from nnperf.bench.remote import run_remote_benchmark

    in_process_only = [
        flag
        for flag, value in (
            ("--device", args.device),
            ("--config", args.config),
            ("--engine", args.engine),
            ("--precision", args.precision),
            ("--engine-option", args.engine_option),
            ("--max-batch-size", args.max_batch_size),
            ("--pipeline-stages", args.pipeline_stages),
            ("--trace-output", args.trace_output),
            ("--input", args.input),
        )
        if value
    ]
    if in_process_only or args.api != "sync":
        raise InvalidInputError(
            f"--url measures a server from the client side; {in_process_only or ['--api']} only "
            "apply in process (configure the server with 'nnperf serve' flags instead)"
        )
    result = run_remote_benchmark(
        args.url,
        args.model,
        scenario=args.scenario,
        queries=args.queries,
        duration_s=args.duration or None,
        concurrency=args.concurrency,
        target_qps=args.target_qps,
        batch_size=args.batch_size or 1,
        token=args.token,
        warmup_queries=args.warmup_iters,
        seed=args.seed,
    )
    print(result.summary())
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if result.errors == 0 else 1
