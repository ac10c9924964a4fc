"""argparse value types shared by the subcommands (they raise argparse's own error type)."""

from __future__ import annotations

import argparse
import json
import math
from typing import TYPE_CHECKING, Any

from nnperf.errors import InvalidInputError

if TYPE_CHECKING:
    from nnperf.engines.config import RunConfig

__all__ = [
    "add_engine_arguments",
    "config_from_args",
    "engine_list",
    "non_negative_float",
    "non_negative_int",
    "parse_engine_options",
    "positive_float",
    "positive_int",
    "unit_interval",
]


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    return _int_at_least(text, 0, "an integer >= 0")


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def unit_interval(text: str) -> float:
    """A number in (0, 1] (a cosine similarity, a fraction)."""
    value = _finite(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


# -- engine selection ---------------------------------------------------------------------------


def add_engine_arguments(p: argparse.ArgumentParser, *, many: bool = False) -> None:
    """``--engine``, ``--precision`` and ``--engine-option`` (one meaning on every subcommand)."""
    p.add_argument(
        "--engine",
        default=None,
        help="engine: onnxruntime or openvino"
        + (", or a comma-separated list measured side by side on the same inputs" if many else "")
        + " (default: the config's, else onnxruntime)",
    )
    p.add_argument(
        "--precision",
        default=None,
        choices=["f32", "bf16", "f16"],
        help="inference precision: f32 matches the reference; bf16/f16 where the engine and CPU "
        "offer them (OpenVINO on AMX/AVX-512 CPUs) (default: the config's, else f32)",
    )
    p.add_argument(
        "--engine-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one of the engine's own options, repeatable: e.g. graph_level=extended, "
        "prepack=false (onnxruntime), hint=throughput, cache_dir=DIR (openvino) "
        "(default: the engine's defaults)",
    )


def engine_list(text: str | None) -> list[str] | None:
    """``--engine a,b`` as a list (``None`` when not given).

    Raises:
        InvalidInputError: an empty item or an unknown engine name.
    """
    if text is None:
        return None
    from nnperf.engines.registry import engine_names

    names = [t.strip() for t in text.split(",")]
    bad = [n for n in names if n not in engine_names()]
    if not names or bad:
        raise InvalidInputError(
            f"--engine: got {text!r}, expected one or more of {list(engine_names())} separated "
            "by commas"
        )
    return list(dict.fromkeys(names))


def parse_engine_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values read as JSON where they parse (``false``, ``4``, ``null``),
    else as text.

    Raises:
        InvalidInputError: an item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(
                f"--engine-option: got {item!r}, expected KEY=VALUE such as graph_level=extended"
            )
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def config_from_args(
    args: argparse.Namespace, *, engine: str | None = None, **changes: Any
) -> RunConfig:
    """The RunConfig a subcommand runs: ``--config`` (if the command has it), then ``--device``,
    ``--engine`` (or ``engine``), ``--precision`` and ``--engine-option`` over it, then
    ``changes`` (batch size, workers...)."""
    from nnperf.runtime.session import resolve_config

    cfg = resolve_config(
        getattr(args, "config", None),
        device=getattr(args, "device", None),
        engine=engine if engine is not None else getattr(args, "engine", None),
        precision=getattr(args, "precision", None),
        **{k: v for k, v in changes.items() if v is not None},
    )
    options = parse_engine_options(getattr(args, "engine_option", None) or [])
    return cfg.with_options(**options) if options else cfg
