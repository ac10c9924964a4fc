"""``nnperf zoo``: list the built-in models or write one as an ONNX file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nnperf.cli.args import non_negative_int, output_file
from nnperf.errors import InvalidInputError

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``zoo`` subcommand."""
    p = sub.add_parser(
        "zoo",
        help="list built-in models, or write one to a file",
        description="Built-in models built in code with seeded random weights (no downloads). "
        "Use them anywhere a model path is accepted as zoo:NAME.",
    )
    p.add_argument("name", nargs="?", help="model to write (default: list all)")
    p.add_argument(
        "-o", "--output", type=output_file, help="ONNX file to write (required with NAME)"
    )
    p.add_argument("--seed", type=non_negative_int, default=0, help="weight seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List or write zoo models."""
    from nnperf import zoo

    if args.name is None:
        for entry in zoo.list_models():
            print(f"zoo:{entry.name:<14} {entry.task:<15} {entry.description}")
        return 0
    if not args.output:
        raise InvalidInputError(
            f"nnperf zoo {args.name}: missing -o/--output FILE; expected e.g. "
            f"'nnperf zoo {args.name} -o {zoo.resolve(args.name)}.onnx'"
        )
    data = zoo.model_bytes(zoo.resolve(args.name), seed=args.seed)
    Path(args.output).write_bytes(data)
    print(f"wrote zoo:{zoo.resolve(args.name)} to {args.output} ({len(data) / 2**20:.1f} MiB)")
    return 0
