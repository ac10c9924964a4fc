"""``nnperf inspect MODEL``: IO, operators, parameters, FLOPs and provider placement."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nnperf.cli.args import (
    add_engine_arguments,
    config_from_args,
    input_file,
    output_file,
)

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``inspect`` subcommand."""
    p = sub.add_parser(
        "inspect",
        help="show a model's IO, operators, FLOPs and where each node runs",
        description="Like AWS Neuron's analyze_model: IO, op-type histogram, parameter count, "
        "FLOPs of Conv/MatMul/Gemm at batch 1, execution-provider placement of the "
        "engine-optimised graph and, on OpenVINO, the kernel and runtime precision of each node "
        "(e.g. how many convolutions run on AMX int8).",
    )
    p.add_argument("model", help="path to an .onnx file or zoo:NAME")
    p.add_argument("--device", default=None, help="device string (default: $NNPERF_DEVICES or cpu)")
    p.add_argument(
        "--config", type=input_file, default=None, help="RunConfig JSON file (default: none)"
    )
    add_engine_arguments(p)
    p.add_argument(
        "--json",
        type=output_file,
        default=None,
        metavar="FILE",
        help="also write the report as JSON",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print (and optionally save) the model report."""
    from nnperf.analyze import analyze_model

    report = analyze_model(args.model, config=config_from_args(args))
    print(report.render())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return 0
