"""The ``nnperf`` command line: one module per subcommand, each with ``register`` and ``run``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from nnperf.errors import NnperfError
from nnperf.runtime.observers import PROFILER_OUTPUT_ENV
from nnperf.version import __version__

__all__ = ["build_parser", "entry", "main"]

# Subcommand modules in help order; a module that is not part of this build is skipped.
_COMMANDS = (
    "bench",
    "compare",
    "report",
    "profile",
    "inspect",
    "optimize",
    "quantize",
    "compare_models",
    "tune",
    "serve",
    "zoo",
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in nnperf's one-line form (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"nnperf: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every available subcommand."""
    parser = _Parser(
        prog="nnperf",
        description="Measure, profile and optimise neural-network inference on real engines.",
    )
    parser.add_argument("--version", action="version", version=f"nnperf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"nnperf.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"nnperf.cli.{name}":  # compare_models registers "compare-models"
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 1 failed check, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if os.environ.get(PROFILER_OUTPUT_ENV):
        from nnperf.profiler.recorder import ENV_PROFILER_ERROR

        if ENV_PROFILER_ERROR is not None:  # already said on stderr when nnperf was imported
            return 2
    try:
        code: int = args.func(args)
    except NnperfError as exc:
        print(f"nnperf: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nnperf: interrupted", file=sys.stderr)
        return 130
    return code


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
