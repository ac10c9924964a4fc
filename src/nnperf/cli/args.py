"""argparse value types shared by the subcommands (they raise argparse's own error type).

Each one checks a flag's value before any work starts, so a bad value is one ``nnperf: error:``
line and exit status 2, naming the flag, what it got and the valid range, never a traceback
after minutes of work (an unwritable ``-o`` found only when the model is written).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "STDOUT",
    "finite_float",
    "float_range",
    "input_file",
    "non_negative_float",
    "non_negative_int",
    "output_file",
    "output_file_or_stdout",
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
