"""``nnperf tune MODEL``: measured search over run configurations (MegEngine fast-run/--fitting)."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from nnperf.cli.args import (
    engine_list,
    non_negative_int,
    output_file,
    positive_float,
    positive_int,
    unit_interval,
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
from nnperf.engines.config import PRECISIONS
from nnperf.errors import InvalidInputError

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``tune`` subcommand."""
    p = sub.add_parser(
        "tune",
        help="search engine, precision, device split, workers, batch size and engine knobs; "
        "write a RunConfig",
        description="Measure candidate run configurations (engines and their precisions, device "
        "splits cpu(T)*N over the cores, workers, batch size, and each engine's own knobs: "
        "onnxruntime's graph level, prepacking, memory pattern, execution mode, cuDNN search "
        "and CUDA graphs; OpenVINO's performance hints): cheap pruning runs, then successive "
        "halving with repeats. Every candidate's outputs are compared with onnxruntime's f32 "
        "outputs on the same inputs and one below --min-cosine is rejected. A winner must beat "
        "the runner-up by more than the measured noise, else the simpler configuration wins. "
        "With --cache the result is reused when model, engines, CPU, cores, objective and the "
        "search space match; the file is a RunConfig for 'nnperf bench --config', 'nnperf serve "
        "--config' and nnperf.create_executor(model, config=FILE).",
    )
    p.add_argument("model", nargs="?", help="path to an .onnx file or zoo:NAME")
    p.add_argument(
        "--objective",
        default="throughput",
        choices=["latency", "throughput"],
        help="latency: single-stream p50/p99 (lower wins); throughput: offline samples/s, or "
        "the server scenario within --latency-budget-ms (default throughput)",
    )
    p.add_argument(
        "--latency-percentile",
        type=int,
        default=50,
        choices=[50, 99],
        help="latency objective: the percentile to minimise (default 50)",
    )
    p.add_argument(
        "--latency-budget-ms",
        type=positive_float,
        default=None,
        help="throughput objective: p99 latency budget in ms for the server scenario "
        "(default none: offline throughput)",
    )
    p.add_argument(
        "--cache",
        type=output_file,
        default=None,
        metavar="FILE",
        help="tune cache / RunConfig JSON: reused without searching when its key matches, "
        "else written after the search (default: none)",
    )
    p.add_argument(
        "--time-budget-s",
        type=positive_float,
        default=120.0,
        help="wall-clock budget of the search in seconds (default 120)",
    )
    p.add_argument(
        "--device-candidates",
        action="append",
        default=None,
        metavar="DEVICE",
        help="a device string to try, e.g. 'cpu(1)*2'; repeat the flag for more (one value each, "
        "so the model path is never taken for a device) (default: every cpu(T)*N split of the "
        "available cores)",
    )
    p.add_argument(
        "--batch-sizes",
        nargs="+",
        type=positive_int,
        default=None,
        metavar="N",
        help="batch sizes to try when the model's batch axis is free (default 1 2 4 8)",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=MODEL",
        help="an extra model variant to search, e.g. int8=model.int8.onnx; repeatable "
        "(default none)",
    )
    p.add_argument(
        "--engine",
        default=None,
        help="engines to compare, comma-separated, e.g. onnxruntime,openvino (default onnxruntime)",
    )
    p.add_argument(
        "--precision",
        default=None,
        help="precisions to try where an engine offers them, comma-separated from f32, bf16, "
        "f16, or 'all' (default f32)",
    )
    p.add_argument(
        "--calibration",
        default=None,
        metavar="DIR|random:N",
        help="add an int8 candidate built by 'nnperf quantize' defaults from these samples (a "
        "folder of .npy/.npz files, as quantize reads them); a quarter of them is held out for "
        "the accuracy guard (default: no int8 candidate)",
    )
    p.add_argument(
        "--min-cosine",
        type=unit_interval,
        default=0.99,
        help="accuracy guard: reject a candidate whose outputs' cosine similarity to the f32 "
        "reference is below this, in (0, 1] (default 0.99)",
    )
    p.add_argument(
        "--warmup-iters",
        type=non_negative_int,
        default=1,
        help="warm-up runs per instance before each measurement (default 1)",
    )
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="random seed for inputs (default 0)"
    )
    add_shape_arguments(p)
    add_output_arguments(p, document="nnperf.tune/1")
    p.add_argument(
        "--report",
        default=None,
        metavar="FILE",
        help="also write a self-contained HTML report (needs nnperf[report]; default none)",
    )
    p.add_argument(
        "--format",
        choices=("text", "csv", "markdown"),
        default="text",
        help="stdout: the text report, or the candidates table as CSV or Markdown (default text)",
    )
    add_progress_argument(p)
    p.set_defaults(func=run)


def _parse_variants(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InvalidInputError(
                f"--variant: got {item!r}, expected NAME=MODEL, e.g. int8=model.int8.onnx"
            )
        if name in out:
            raise InvalidInputError(f"--variant: name {name!r} given twice; expected unique names")
        out[name] = path
    return out


def _calibration(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    if args.calibration is None:
        return None
    from nnperf.cli.quantize import load_calibration
    from nnperf.optimize.editor import as_proto

    return load_calibration(args.calibration, as_proto(args.model))


def _precisions(text: str | None) -> list[str] | None:
    if text is None:
        return None
    if text.strip().lower() == "all":
        return list(PRECISIONS)
    names = [t.strip().lower() for t in text.split(",")]
    bad = [n for n in names if n not in PRECISIONS]
    if bad or not names:
        raise InvalidInputError(
            f"--precision: got {text!r}, expected 'all' or names among {list(PRECISIONS)} "
            "separated by commas"
        )
    return names


def run(args: argparse.Namespace) -> int:
    """Tune (or read the cache), print the report, optionally write the JSON."""
    from nnperf.tune.cache import CacheWarning
    from nnperf.tune.report import render_tune_report
    from nnperf.tune.search import Objective, tune

    if args.model is None:
        raise InvalidInputError(
            "nnperf tune: missing MODEL; expected a path to an .onnx file or zoo:NAME "
            "(try 'nnperf tune zoo:mobilenetv2 --objective throughput')"
        )
    if args.latency_budget_ms is not None and args.objective != "throughput":
        raise InvalidInputError(
            "--latency-budget-ms applies to --objective throughput (throughput within a p99 "
            "budget); got --objective latency. Drop the budget or use --objective throughput"
        )
    out = Output(args.json)
    if args.cache:
        check_output_path(args.cache, "--cache", stdout=False)
    objective = Objective(
        kind=args.objective,
        percentile=args.latency_percentile,
        latency_budget_ms=args.latency_budget_ms,
    )
    space = _space_with_shapes(args, objective)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CacheWarning)
        with progress_bar(show_progress(args), "tune", unit="runs") as progress:
            result = tune(
                args.model,
                objective=objective,
                time_budget_s=args.time_budget_s,
                cache=args.cache,
                devices=None if space is not None else args.device_candidates,
                batch_sizes=None if space is not None else args.batch_sizes,
                space=space,
                variants=_parse_variants(args.variant),
                engines=engine_list(args.engine),
                precisions=_precisions(args.precision),
                min_cosine=args.min_cosine,
                calibration=_calibration(args),
                warmup_iters=args.warmup_iters,
                seed=args.seed,
                progress=progress,
            )
    for w in caught:
        if issubclass(w.category, CacheWarning):
            print(f"nnperf: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if args.format == "text":
        out.report(render_tune_report(result, cache_path=args.cache))
    else:
        from nnperf.tune.report import candidates_table

        out.report(candidates_table(result).render(args.format))
    doc = with_provenance(result.to_dict(), args, warmup=args.warmup_iters)
    out.document(doc)
    if args.report:
        from nnperf.report.html import write_report

        write_report([doc], args.report)
        out.status(f"wrote HTML report {args.report}")
    return 0


def _space_with_shapes(args: argparse.Namespace, objective: Any) -> Any:
    """With --shape/--dim: the search space built on a base config carrying them (so every
    candidate runs at those shapes); else ``None`` (tune builds its own)."""
    dims, shapes = dims_and_shapes(args)
    if not (dims or shapes):
        return None
    from nnperf.engines.config import RunConfig
    from nnperf.model import graph_io, load_model
    from nnperf.tune.space import build_space
    from nnperf.types import check_dims_and_shapes

    blob = load_model(args.model)
    check_dims_and_shapes(graph_io(blob).inputs, dims=dims, shapes=shapes)
    return build_space(
        blob,
        throughput=objective.kind == "throughput",
        devices=args.device_candidates,
        batch_sizes=args.batch_sizes,
        variants=tuple(_parse_variants(args.variant)),
        engines=engine_list(args.engine),
        precisions=_precisions(args.precision),
        base=RunConfig(dims=dims, shapes=shapes),
    )
