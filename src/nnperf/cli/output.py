"""One output convention for every subcommand.

* ``--json FILE`` writes the command's JSON document (it always names its ``schema`` and carries
  ``provenance``); ``--json -`` writes it to stdout, and then everything else the command prints
  goes to stderr, so ``nnperf bench MODEL --json - | jq .throughput_qps`` works.
* ``--format text|json|csv`` (where a command has tables) chooses what stdout carries; the
  human report moves to stderr for ``json`` and ``csv``.
* Output paths are checked before anything runs: a missing directory is a usage error at once,
  not a traceback after the whole measurement.
* Status lines (``wrote FILE``, warnings) and progress bars go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from nnperf.cli.args import output_file_or_stdout
from nnperf.errors import InvalidInputError
from nnperf.types import Progress, ProgressFn

__all__ = [
    "STDOUT",
    "Output",
    "add_output_arguments",
    "add_progress_argument",
    "check_output_path",
    "progress_bar",
    "show_progress",
    "with_provenance",
]

STDOUT = "-"


def check_output_path(path: str, flag: str, *, stdout: bool = True) -> str:
    """``path`` when a file can be written there (``-``: stdout, where allowed).

    Raises:
        InvalidInputError: the directory does not exist or is not writable, or ``path`` is a
            directory.
    """
    if path == STDOUT:
        if not stdout:
            raise InvalidInputError(f"{flag} -: this output cannot go to stdout; give a file path")
        return path
    p = Path(path)
    if p.is_dir():
        raise InvalidInputError(f"{flag} {path!r} is a directory; expected a file path")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidInputError(
            f"{flag} {path!r}: directory {str(parent)!r} does not exist; create it first or "
            "choose another path"
        )
    if not os.access(parent, os.W_OK):
        raise InvalidInputError(f"{flag} {path!r}: directory {str(parent)!r} is not writable")
    return path


def add_output_arguments(
    p: argparse.ArgumentParser,
    *,
    document: str,
    formats: Sequence[str] = (),
    json_flag: bool = True,
) -> None:
    """``--json FILE|-`` (the ``document``) and, with ``formats``, ``--format``."""
    if json_flag:
        p.add_argument(
            "--json",
            type=output_file_or_stdout,  # checked when the flags are read, before any work
            default=None,
            metavar="FILE",
            help=f"also write the {document} JSON document to FILE; '-' writes it to stdout and "
            "everything else to stderr (default: none)",
        )
    if formats:
        p.add_argument(
            "--format",
            choices=list(formats),
            default="text",
            help="what stdout carries: "
            + ", ".join(formats)
            + " (json/csv move the text report to stderr) (default text)",
        )


def with_provenance(
    doc: dict[str, Any], args: argparse.Namespace, *, seed: int | None = None, warmup: int = 0
) -> dict[str, Any]:
    """``doc`` with a ``provenance`` block (argv, ISO timestamp, host, seed, warm-up count)
    unless it has one."""
    if "provenance" not in doc:
        from nnperf.bench.scenarios import provenance

        doc = {
            **doc,
            "provenance": provenance(
                seed=getattr(args, "seed", 0) if seed is None else seed,
                warmup_iters=warmup,
                argv=getattr(args, "argv", None),
            ),
        }
    return doc


class Output:
    """Where one command's text, tables and JSON go.

    Args:
        json_path: ``--json`` (a file, ``-`` or ``None``), checked at once.
        fmt: ``--format`` (``text``, ``json`` or ``csv``).
    """

    def __init__(self, json_path: str | None = None, fmt: str = "text") -> None:
        if json_path is not None:
            check_output_path(json_path, "--json")
        if json_path == STDOUT and fmt not in ("text", "json"):
            raise InvalidInputError(
                f"--json - and --format {fmt} both write to stdout; choose one (or --json FILE)"
            )
        self.json_path = json_path
        self.fmt = "json" if json_path == STDOUT else fmt

    @property
    def report_stream(self) -> TextIO:
        """stdout for the text format, else stderr."""
        return sys.stdout if self.fmt == "text" else sys.stderr

    def report(self, text: str) -> None:
        """The human report (stdout, or stderr when stdout carries JSON or CSV)."""
        print(text, file=self.report_stream)

    @contextlib.contextmanager
    def prints_to_report(self) -> Iterator[None]:
        """Inside, ``print`` goes where the report goes (stderr when stdout carries JSON), for
        commands that print as they work."""
        if self.report_stream is sys.stdout:
            yield
            return
        with contextlib.redirect_stdout(sys.stderr):
            yield

    def status(self, text: str) -> None:
        """A status line, always on stderr."""
        print(text, file=sys.stderr)

    def table(self, csv_text: str) -> None:
        """CSV on stdout (``--format csv``)."""
        sys.stdout.write(csv_text)

    def document(self, doc: dict[str, Any]) -> None:
        """The JSON document: on stdout for ``--format json`` / ``--json -``, and to the
        ``--json`` file."""
        text = json.dumps(doc, indent=2) + "\n"
        if self.fmt == "json":
            sys.stdout.write(text)
        if self.json_path not in (None, STDOUT):
            Path(self.json_path).write_text(text)
            self.status(f"wrote {self.json_path}")


_PLAIN_EVERY_NS = 500_000_000


def add_progress_argument(p: argparse.ArgumentParser) -> None:
    """``--progress/--no-progress``: the progress bar on stderr (default: when it is a terminal)."""
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )


def show_progress(args: argparse.Namespace) -> bool:
    """Whether ``--progress``/``--no-progress`` (or, unset, a terminal on stderr) asks for progress."""
    flag: bool | None = getattr(args, "progress", None)
    return sys.stderr.isatty() if flag is None else flag


@contextlib.contextmanager
def progress_bar(enabled: bool, label: str, *, unit: str = "") -> Iterator[ProgressFn | None]:
    """A progress bar on stderr fed with :class:`~nnperf.types.Progress` (every long-running
    command uses this one): rich's bar when rich is installed (``pip install nnperf[progress]``),
    else one plain line rewritten at most twice a second. Yields ``None`` when disabled, so
    producers skip the reporting altogether.
    """
    if not enabled:
        yield None
        return
    try:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar
    except ImportError:
        last = [0]

        def plain(p: Progress) -> None:
            now = time.perf_counter_ns()
            if now - last[0] >= _PLAIN_EVERY_NS:
                last[0] = now
                print(f"\r{label}: {_steps(p, unit)} {p.what[:60]}", end="", file=sys.stderr)

        try:
            yield plain
        finally:
            if last[0]:
                print(file=sys.stderr)
        return
    with Bar(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[steps]}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[what]}"),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=1.0, steps="", what="")

        def update(p: Progress) -> None:
            bar.update(task, completed=p.fraction, steps=_steps(p, unit), what=p.what[:60])

        yield update


def _steps(p: Progress, unit: str) -> str:
    count = f"{p.done}/{p.total}" if p.total > 0 and p.done <= p.total else str(p.done)
    return f"{count} {unit}".rstrip()
