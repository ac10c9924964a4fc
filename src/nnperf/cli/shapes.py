"""``--shape INPUT:AxBxC`` and ``--dim NAME=VALUE``: one meaning on every subcommand that runs a
model (bench, profile, tune, quantize, optimize, inspect)."""

from __future__ import annotations

import argparse

__all__ = ["add_shape_arguments", "dims_and_shapes"]


def add_shape_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--shape`` and ``--dim`` (both repeatable)."""
    p.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="INPUT:AxBxC",
        help="the whole shape of one input, e.g. images:1x3x640x640; repeatable (default: "
        "none; a symbolic non-batch dim without a size is an error)",
    )
    p.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="the size of a named symbolic dimension (onnxruntime's free-dimension override), "
        "e.g. seq=128; repeatable (default: none)",
    )


def dims_and_shapes(
    args: argparse.Namespace,
) -> tuple[dict[str, int], dict[str, tuple[int, ...]]]:
    """``--dim`` and ``--shape`` as ``(dims, shapes)``.

    Raises:
        InvalidInputError: a malformed item.
    """
    from nnperf.bench.inputs import parse_dims, parse_shapes

    return parse_dims(getattr(args, "dim", []) or []), parse_shapes(
        getattr(args, "shape", []) or []
    )
