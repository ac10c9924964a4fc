"""The ``nnperf`` command line: one module per subcommand, each with ``register`` and ``run``.

Exit codes (every subcommand):

====  ===========================================================================================
0     success
1     a runtime or environment failure: the model cannot be loaded (``ModelLoadError``), the
      engine failed (``EngineError``), a package is missing (``MissingDependencyError``), the
      engine or device cannot do it (``UnsupportedError``), overload (``OverloadedError``), or
      measured queries failed
2     usage: a bad flag, input, shape, config or name (``InvalidInputError``, ``NotFoundError``)
3     the measurement is INVALID and ``--require-valid`` was given
130   interrupted (Ctrl-C); a benchmark still writes what it measured, marked partial
====  ===========================================================================================

A closed stdout (``nnperf profile | head``) ends the command quietly with status 0: the reader
chose to stop reading.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from nnperf.errors import InvalidInputError, NnperfError, NotFoundError
from nnperf.runtime.observers import PROFILER_OUTPUT_ENV
from nnperf.version import __version__

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "entry",
    "exit_code",
    "main",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INVALID = 3
EXIT_INTERRUPTED = 130


def exit_code(exc: NnperfError) -> int:
    """2 for usage errors (bad input, unknown names), 1 for every other nnperf error."""
    return EXIT_USAGE if isinstance(exc, (InvalidInputError, NotFoundError)) else EXIT_FAILURE


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


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (captured in tests)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (see the module docstring: 0, 1, 2, 3, 130)."""
    parser = build_parser()
    words = list(argv) if argv is not None else sys.argv[1:]
    args = parser.parse_args(words)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    if os.environ.get(PROFILER_OUTPUT_ENV):
        from nnperf.profiler.recorder import ENV_PROFILER_ERROR

        if ENV_PROFILER_ERROR is not None:  # already said on stderr when nnperf was imported
            return EXIT_USAGE
    args.argv = ["nnperf", *words]
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except NnperfError as exc:
        print(f"nnperf: error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("nnperf: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
