"""argparse value types shared by the subcommands (they raise argparse's own error type).

Each one checks a flag's value before any work starts, so a bad value is one ``nnperf: error:``
line and exit status 2, naming the flag, what it got and the valid range, never a traceback
after minutes of work (an unwritable ``-o`` found only when the model is written).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnperf.errors import InvalidInputError

if TYPE_CHECKING:
    from nnperf.engines.config import RunConfig

__all__ = [
    "STDOUT",
    "add_engine_arguments",
    "config_from_args",
    "engine_list",
    "finite_float",
    "float_range",
    "input_file",
    "non_negative_float",
    "non_negative_int",
    "output_file",
    "output_file_or_stdout",
    "parse_engine_options",
    "port",
    "positive_float",
    "positive_int",
    "unit_interval",
]

STDOUT = "-"
"""The output path that means standard output (for commands that accept it)."""


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


def port(text: str) -> int:
    """A TCP port: 1 to 65535, or 0 for any free port."""
    value = _int_at_least(text, 0, "a TCP port from 1 to 65535 (or 0 for any free port)")
    if value > 65535:
        raise argparse.ArgumentTypeError(
            f"expected a TCP port from 1 to 65535 (or 0 for any free port), got {text!r}"
        )
    return value


def finite_float(text: str) -> float:
    """A finite number (not nan or inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def float_range(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """A type for finite numbers in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    shown = f"{'(' if low_open else '['}{low:g}, {high:g}]"

    def check(text: str) -> float:
        value = finite_float(text)
        if value > high or value < low or (low_open and value == low):
            raise argparse.ArgumentTypeError(f"expected a number in {shown}, got {text!r}")
        return value

    check.__name__ = f"number in {shown}"  # argparse names the type in some messages
    return check


unit_interval = float_range(0.0, 1.0, low_open=True)
"""A number in (0, 1] (a cosine-similarity target, a fraction)."""


def input_file(text: str) -> str:
    """An existing, readable file (not a directory)."""
    path = Path(text)
    if not text or not path.exists():
        raise argparse.ArgumentTypeError(f"file {text!r} does not exist; expected an existing file")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; expected a file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"cannot read {text!r}: the file is not readable")
    return text


def _writable_file(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("expected a file path, got an empty string")
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; expected a file path")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(
            f"cannot write {text!r}: its directory {str(parent)!r} does not exist; create it "
            "first or choose another path"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: the file is not writable")
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(
            f"cannot write {text!r}: its directory {str(parent)!r} is not writable; choose "
            "another path"
        )
    return text


def output_file(text: str) -> str:
    """A file this process can write: its directory exists and is writable (``-`` refused)."""
    if text == STDOUT:
        raise argparse.ArgumentTypeError(
            "'-' (standard output) is not supported here; expected a file path"
        )
    return _writable_file(text)


def output_file_or_stdout(text: str) -> str:
    """As :func:`output_file`, or ``-`` for standard output."""
    return text if text == STDOUT else _writable_file(text)


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
