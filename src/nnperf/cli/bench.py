"""``nnperf bench MODEL``: load, warm up and measure (load_and_run + furiosa-bench + perf_test).

One run, or a sweep over one axis (``--concurrency 1,2,4``, ``--batch-size 1,2,4``,
``--target-qps 100:1000:100``, ``--device A --device B``), in process or against a server
(``--url``). Exit status: 0, 1 when queries failed, 2 for usage errors, 3 for an INVALID run with
``--require-valid``, 130 when interrupted (what was measured is still written, marked partial).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

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
from nnperf.cli.output import (
    Output,
    add_output_arguments,
    add_progress_argument,
    check_output_path,
    progress_bar,
    show_progress,
    with_provenance,
)
from nnperf.cli.shapes import add_shape_arguments, dims_and_shapes
from nnperf.errors import InvalidInputError
from nnperf.types import Progress, ProgressFn

if TYPE_CHECKING:
    from nnperf.bench.scenarios import BenchResult
    from nnperf.bench.sidebyside import SideBySide
    from nnperf.engines.config import RunConfig

__all__ = ["register", "run"]

_NOTICE_MIN_S = 10.0
"""Runs at least this long announce on stderr that Ctrl-C keeps what was measured."""


def register(sub: Any) -> None:
    """Add the ``bench`` subcommand."""
    p = sub.add_parser(
        "bench",
        help="measure latency, throughput, stages, utilisation, CPU and memory",
        description="Load a model, report load/prepare/warm-up stages, then measure a scenario: "
        "single-stream (latency), offline (throughput) or server (Poisson arrivals). Both "
        "--queries and --duration are minimums. A list for one of --concurrency, --batch-size, "
        "--target-qps or a repeated --device sweeps that axis, one row per point. Exit status: "
        "0 ok, 1 queries failed, 2 usage, 3 INVALID with --require-valid, 130 interrupted.",
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
        action="append",
        default=None,
        help="device: cpu, cpu(T)*N, cpu:0-1, cpu:0,cpu:1, cuda:0; repeat to sweep devices "
        "(default: config, $NNPERF_DEVICES, cpu)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="offline/server: host threads running queries (default: one per instance)",
    )
    p.add_argument(
        "--batch-size",
        default=None,
        metavar="N[,N...]",
        help="rows per query; a list sweeps (default 1, or the leading dim of an --input shape)",
    )
    p.add_argument(
        "--queries", type=positive_int, default=100, help="minimum measured queries (default 100)"
    )
    p.add_argument(
        "--duration",
        type=non_negative_float,
        default=1.0,
        help="minimum measured time in seconds (default 1.0; a run under 1 s is INVALID)",
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
        help="run once on zeros before warm-up, reported as its own stage; on onnxruntime and "
        "OpenVINO it costs the full compute (see README) (default off)",
    )
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="[NAME:]SPEC",
        help="input data: random, zeros, ones (optionally :1x3x224x224), a .npy file or an "
        "image; NAME may be left out for a single-input model; repeatable (default random)",
    )
    add_shape_arguments(p)
    p.add_argument(
        "--target-qps",
        default=None,
        metavar="Q[,Q...|A:B:S]",
        help="server scenario: offered load in queries/s (required there); a list or range sweeps",
    )
    p.add_argument(
        "--latency-bound-ms",
        type=positive_float,
        default=None,
        help="server scenario: the p99 latency a VALID run must meet, in ms (default: none)",
    )
    p.add_argument(
        "--require-valid",
        action="store_true",
        help="exit 3 when the measurement is INVALID (too short, unstable, failed queries, "
        "did not keep up, over the latency bound) (default: report only)",
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
        default=None,
        metavar="N[,N...]",
        help="offline: queries kept outstanding (--url: connections); a list sweeps (default: "
        "one per instance on a session, the runtime's in-flight limit through --api "
        "queue/async, batching or a pipeline, at least 64 coroutines with --api async)",
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
        default=None,
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
    add_output_arguments(
        p, document="nnperf.bench/2 (a sweep: nnperf.sweep/1)", formats=("text", "json", "csv")
    )
    p.add_argument(
        "--report",
        type=output_file,
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
    add_progress_argument(p)
    p.set_defaults(func=run)


@contextmanager
def _progress(args: argparse.Namespace, label: str) -> Iterator[ProgressFn | None]:
    """The progress bar, plus one stderr line when measuring starts on a long run (or a
    terminal): Ctrl-C stops the run and keeps what was measured."""
    tty = sys.stderr.isatty()
    show = show_progress(args)
    notice = tty or args.duration >= _NOTICE_MIN_S
    with progress_bar(show, label, unit="queries") as bar:
        told = [not notice]

        def update(p: Progress) -> None:
            if not told[0]:
                told[0] = True
                print(
                    f"nnperf bench: measuring {label} for at least {p.duration_s:g} s and "
                    f"{p.total} queries (Ctrl-C stops and keeps what was measured)",
                    file=sys.stderr,
                    flush=True,
                )
            if bar is not None:
                bar(p)

        yield update if (notice or bar is not None) else None


def _progress_lines(args: argparse.Namespace) -> ProgressFn | None:
    """Side-by-side runs: one stderr line per measurement (with ``--progress`` or a terminal)."""
    if not show_progress(args):
        return None

    def line(p: Progress) -> None:
        print(f"  {p.what}", file=sys.stderr)

    return line


def _axes(args: argparse.Namespace) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """(axes with several values, the single value of each other axis)."""
    from nnperf.bench.sweep import parse_sweep_values

    lists: dict[str, list[Any]] = {}
    if args.concurrency is not None:
        lists["concurrency"] = parse_sweep_values(args.concurrency, int, "--concurrency")
    if args.batch_size is not None:
        lists["batch_size"] = parse_sweep_values(args.batch_size, int, "--batch-size")
    if args.target_qps is not None:
        lists["target_qps"] = parse_sweep_values(args.target_qps, float, "--target-qps")
    if args.device:
        lists["device"] = list(args.device)
    swept = {k: v for k, v in lists.items() if len(v) > 1}
    if len(swept) > 1:
        raise InvalidInputError(
            f"a sweep varies one axis at a time; got lists for {sorted(swept)}: give one of "
            "them several values and the others one"
        )
    single = {k: v[0] for k, v in lists.items() if len(v) == 1}
    return swept, single


def run(args: argparse.Namespace) -> int:
    """Run the benchmark (or sweep) and print (and optionally write) the report."""
    if args.model is None:
        raise InvalidInputError(
            "nnperf bench: missing MODEL; expected a path to an .onnx file or zoo:NAME "
            "(try 'nnperf bench zoo:mnist')"
        )
    out = Output(args.json, args.format)
    if args.trace_output:
        check_output_path(args.trace_output, "--trace-output", stdout=False)
    if args.trace_operators and not args.trace_output:
        raise InvalidInputError("--trace-operators needs --trace-output FILE (where to write)")
    if args.report:
        check_output_path(args.report, "--report", stdout=False)
    swept, single = _axes(args)
    if args.more_models:
        if swept:
            raise InvalidInputError(
                "several models are compared side by side; sweep one model at a time"
            )
        return _run_models_side_by_side(args, engine_list(args.engine), single, out)
    if args.graph_level:
        args.engine_option = [*args.engine_option, f"graph_level={args.graph_level}"]
    engines = engine_list(args.engine)
    if engines is not None and len(engines) > 1:
        if swept:
            raise InvalidInputError(
                "--engine with several names compares engines; sweep one engine at a time"
            )
        return _run_side_by_side(args, engines, single, out)
    if args.url:
        _check_remote_flags(args)

    def point(values: dict[str, Any]) -> BenchResult:
        return _remote_point(args, values) if args.url else _local_point(args, values)

    if swept and args.trace_output:
        raise InvalidInputError("--trace-output records one run; drop it or sweep without it")
    with warnings.catch_warnings():
        from nnperf.bench.config import BenchWarning

        warnings.simplefilter("ignore", BenchWarning)  # the report lists them
        if not swept:
            result = point(single)
            results = [result]
            if out.fmt == "csv":
                from nnperf.bench.report import render_csv

                out.table(render_csv(results))
            out.report(_render(result))
            out.document(result.to_dict())
            _write_report(args, out, result.to_dict())
        else:
            results = _sweep(args, point, swept, single, out)
    if args.trace_output:
        out.status(f"wrote Chrome trace {args.trace_output}")
    return _exit_code(results, args.require_valid)


def _render(result: BenchResult) -> str:
    from nnperf.bench.report import render_report

    return render_report(result)


def _sweep(
    args: argparse.Namespace,
    point: Callable[[dict[str, Any]], BenchResult],
    swept: dict[str, list[Any]],
    single: dict[str, Any],
    out: Output,
) -> list[BenchResult]:
    from nnperf.bench.scenarios import provenance
    from nnperf.bench.sweep import run_sweep

    ((axis, values),) = swept.items()

    def announce(p: Progress) -> None:
        if show_progress(args):
            print(f"nnperf bench: point {p.done + 1}/{p.total}: {p.what}", file=sys.stderr)

    sweep = run_sweep(
        axis,
        values,
        lambda value: point({**single, axis: value}),
        provenance=provenance(seed=args.seed, warmup_iters=args.warmup_iters, argv=args.argv),
        progress=announce,
    )
    if out.fmt == "csv":
        out.table(sweep.render_csv())
    out.report(sweep.render())
    out.document(sweep.to_dict())
    _write_report(args, out, sweep.to_dict())
    return list(sweep.points)


def _exit_code(results: Sequence[BenchResult], require_valid: bool) -> int:
    from nnperf.cli import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK

    if any(r.partial for r in results):
        return EXIT_INTERRUPTED
    if any(r.errors for r in results):
        return EXIT_FAILURE
    if require_valid and not all(r.valid for r in results):
        return EXIT_INVALID
    return EXIT_OK


def _local_point(args: argparse.Namespace, values: dict[str, Any]) -> BenchResult:
    from nnperf.bench.inputs import parse_input_specs
    from nnperf.bench.scenarios import run_benchmark

    one = argparse.Namespace(**{**vars(args), "device": values.get("device")})
    cfg = config_from_args(one, batch_size=values.get("batch_size"))
    dims, shapes = dims_and_shapes(args)
    tracing: AbstractContextManager[Any] = nullcontext()
    if args.trace_output:
        from nnperf.profiler import profile

        tracing = profile(file=args.trace_output, operators=args.trace_operators)
    with tracing, _progress(args, args.scenario) as progress:
        return run_benchmark(
            args.model,
            scenario=args.scenario,
            config=cfg,
            workers=args.workers,
            queries=args.queries,
            duration_s=args.duration,
            warmup_iters=args.warmup_iters,
            fake_first=args.fake_first,
            inputs=parse_input_specs(args.input),
            target_qps=values.get("target_qps"),
            seed=args.seed,
            progress=progress,
            api=args.api,
            concurrency=values.get("concurrency"),
            max_batch_size=args.max_batch_size,
            max_delay_ms=args.max_delay_ms,
            pipeline_stages=args.pipeline_stages,
            dims=dims,
            shapes=shapes,
            latency_bound_ms=args.latency_bound_ms,
            argv=args.argv,
        )


def _check_remote_flags(args: argparse.Namespace) -> None:
    in_process_only = [
        flag
        for flag, value in (
            ("--device", args.device),
            ("--config", args.config),
            ("--engine", args.engine),
            ("--precision", args.precision),
            ("--engine-option", args.engine_option),
            ("--workers", args.workers),
            ("--max-batch-size", args.max_batch_size),
            ("--max-delay-ms", args.max_delay_ms),
            ("--pipeline-stages", args.pipeline_stages),
            ("--trace-output", args.trace_output),
            ("--fake-first", args.fake_first),
            ("--api", args.api != "sync"),
        )
        if value
    ]
    if in_process_only:
        raise InvalidInputError(
            f"--url measures a server from the client side; {in_process_only} only apply in "
            "process (configure the server with 'nnperf serve' flags instead)"
        )


def _remote_point(args: argparse.Namespace, values: dict[str, Any]) -> BenchResult:
    from nnperf.bench.inputs import parse_input_specs
    from nnperf.bench.remote import run_remote_benchmark

    dims, shapes = dims_and_shapes(args)
    with _progress(args, args.scenario) as progress:
        return run_remote_benchmark(
            args.url,
            args.model,
            scenario=args.scenario,
            queries=args.queries,
            duration_s=args.duration,
            concurrency=values.get("concurrency"),
            target_qps=values.get("target_qps"),
            batch_size=values.get("batch_size") or 1,
            token=args.token,
            warmup_queries=args.warmup_iters,
            seed=args.seed,
            specs=parse_input_specs(args.input),
            dims=dims,
            shapes=shapes,
            latency_bound_ms=args.latency_bound_ms,
            progress=progress,
            argv=args.argv,
        )


def _run_side_by_side(
    args: argparse.Namespace, engines: list[str], single: dict[str, Any], out: Output
) -> int:
    """``nnperf bench MODEL --engine a,b``: every engine on the same inputs, interleaved."""

    if args.trace_output or args.pipeline_stages or args.max_batch_size or args.url:
        raise InvalidInputError(
            "--engine with several names compares engines one against another; "
            "--trace-output, --pipeline-stages, --max-batch-size and --url apply to one engine "
            "at a time"
        )
    if args.engine_option:
        raise InvalidInputError(
            "--engine-option names one engine's options; with several --engine names give each "
            "engine's options through a --config file per engine, or run them one at a time"
        )
    if out.fmt == "csv":
        raise InvalidInputError("--format csv: the side-by-side table is text or JSON")
    one = argparse.Namespace(**{**vars(args), "device": single.get("device")})
    configs = [
        config_from_args(one, engine=e, batch_size=single.get("batch_size")) for e in engines
    ]
    result = _measure_side_by_side(args, args.model, configs, single, labels=engines)
    out.report(result.render())
    doc = with_provenance(result.to_dict(), args, warmup=args.warmup_iters)
    out.document(doc)
    _write_report(args, out, doc)
    rounds = [r for row in result.rows for r in row.rounds]
    return _exit_code(rounds, args.require_valid)


def _measure_side_by_side(
    args: argparse.Namespace,
    model: str | list[str],
    configs: list[RunConfig],
    single: dict[str, Any],
    *,
    labels: list[str] | None = None,
) -> SideBySide:
    """The interleaved measurement behind both side-by-side forms, with the command's shapes,
    scenario, rounds and load."""
    from nnperf.bench.inputs import parse_input_specs
    from nnperf.bench.sidebyside import run_side_by_side

    dims, shapes = dims_and_shapes(args)
    if dims or shapes:
        configs = [
            c.replace(dims={**c.dims, **dims}, shapes={**c.shapes, **shapes}) for c in configs
        ]
    return run_side_by_side(
        model,
        configs,
        labels=labels,
        scenario=args.scenario,
        rounds=args.rounds,
        queries=args.queries,
        duration_s=args.duration,
        warmup_iters=args.warmup_iters,
        inputs=parse_input_specs(args.input),
        target_qps=single.get("target_qps"),
        seed=args.seed,
        progress=_progress_lines(args),
        workers=args.workers,
        api=args.api,
        concurrency=single.get("concurrency"),
    )


def _write_report(args: argparse.Namespace, out: Output, doc: dict[str, Any]) -> None:
    """``--report FILE``: the HTML report of this run's document."""
    if args.report:
        from nnperf.report.html import write_report

        write_report([doc], args.report)
        out.status(f"wrote HTML report {args.report}")


def _run_models_side_by_side(
    args: argparse.Namespace, engines: list[str] | None, single: dict[str, Any], out: Output
) -> int:
    """``nnperf bench A.onnx B.onnx``: every model with the same config, interleaved, then the
    noise-aware comparison of each with the first."""
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
    if out.fmt == "csv":
        raise InvalidInputError("--format csv: the side-by-side table is text or JSON")
    models = [args.model, *args.more_models]
    one = argparse.Namespace(**{**vars(args), "device": single.get("device")})
    cfg = config_from_args(one, batch_size=single.get("batch_size"))
    result = _measure_side_by_side(args, models, [cfg] * len(models), single)
    out.report(result.render())
    doc = with_provenance(result.to_dict(), args, warmup=args.warmup_iters)
    runs = runs_of(doc, label="bench")
    for run in runs[1:]:
        out.report(compare_runs(runs[0], run, seed=args.seed).headline())
    out.document(doc)
    _write_report(args, out, doc)
    rounds = [r for row in result.rows for r in row.rounds]
    return _exit_code(rounds, args.require_valid)
