"""``nnperf inspect MODEL``: IO, operators, parameters, FLOPs and provider placement."""

from __future__ import annotations

import argparse
from typing import Any

from nnperf.cli.args import add_engine_arguments, config_from_args, input_file
from nnperf.cli.output import Output, add_output_arguments, with_provenance
from nnperf.cli.shapes import add_shape_arguments, dims_and_shapes

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``inspect`` subcommand."""
    p = sub.add_parser(
        "inspect",
        help="show a model's IO, operators, FLOPs and where each node runs",
        description="Like AWS Neuron's analyze_model: IO, op-type histogram, parameter count "
        "(initializers and Constant nodes), FLOPs of Conv/MatMul/Gemm at batch 1 or at the "
        "--shape/--dim given (n/a while a dim is unknown), execution-provider placement of the "
        "engine-optimised graph and, on OpenVINO, the kernel and runtime precision of each node "
        "(e.g. how many convolutions run on AMX int8).",
    )
    p.add_argument("model", help="path to an .onnx file or zoo:NAME")
    p.add_argument("--device", default=None, help="device string (default: $NNPERF_DEVICES or cpu)")
    p.add_argument(
        "--config", type=input_file, default=None, help="RunConfig JSON file (default: none)"
    )
    add_engine_arguments(p)
    add_shape_arguments(p)
    add_output_arguments(p, document="nnperf.inspect/2", formats=("text", "json"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print (and optionally save) the model report."""
    from nnperf.analyze import analyze_model

    out = Output(args.json, args.format)
    dims, shapes = dims_and_shapes(args)
    report = analyze_model(args.model, config=config_from_args(args), dims=dims, shapes=shapes)
    out.report(report.render())
    out.document(with_provenance(report.to_dict(), args))
    return 0
