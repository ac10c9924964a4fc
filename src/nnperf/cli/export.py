"""``--tables FILE``: write every table a command printed as CSV, Markdown or JSON.

``quantize`` and ``optimize`` print progress and results between their tables, so their tables
go to a file (the format from its extension: ``.csv``, ``.md``, ``.json``) rather than to stdout.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nnperf.errors import InvalidInputError
from nnperf.table import Table, render_tables

__all__ = ["add_tables_argument", "write_tables"]

_FORMATS = {".csv": "csv", ".md": "markdown", ".markdown": "markdown", ".json": "json"}


def add_tables_argument(p: argparse.ArgumentParser) -> None:
    """Add ``--tables FILE``."""
    p.add_argument(
        "--tables",
        default=None,
        metavar="FILE",
        help="also write every table printed to FILE: .csv, .md or .json by its extension "
        "(default: none)",
    )


def write_tables(path: str | None, tables: Sequence[Table]) -> None:
    """Write ``tables`` to ``path`` in the format its extension names (nothing for ``None``).

    Raises:
        InvalidInputError: an extension other than .csv, .md or .json.
    """
    if path is None:
        return
    fmt = _FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InvalidInputError(
            f"--tables {path!r}: expected a file ending in .csv, .md or .json (the format)"
        )
    Path(path).write_text(render_tables(tables, fmt) + "\n", encoding="utf-8")
    print(f"wrote {len(tables)} table(s) to {path}")


def records_table(title: str, columns: Sequence[Any], records: Sequence[dict[str, Any]]) -> Table:
    """A table of flat records (nested dicts are flattened as ``key.sub``)."""

    def flat(rec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in rec.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    return Table.from_records(title, columns, [flat(r) for r in records])
