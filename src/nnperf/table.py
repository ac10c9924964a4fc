"""One table model for every table nnperf prints: text, CSV, Markdown and JSON from the same rows.

A :class:`Table` holds typed :class:`Column` s (a machine key, a label, a unit, the decimals its
resolution allows) and rows of plain values. The profiler, ``tune``, ``quantize``, ``optimize``
and ``compare`` build one and the CLI's ``--format`` picks the rendering::

    table = Table("Operators by type", [Column("op_type"), Column("mean_us", "mean", "µs", 1)])
    table = table.with_rows([("Conv", 72.8)])
    print(table.render("markdown"))

Text is padded plain text (stable for tests and pipes); CSV is written with :mod:`csv` and keeps
the machine keys as its header; Markdown is a pipe table; JSON is ``{"title", "columns", "rows"}``
with one object per row. Needs neither pandas nor rich (:meth:`Table.from_frame` takes a pandas
frame when you have one).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from nnperf.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMATS", "Column", "Table", "TableFormat", "render_tables"]


class TableFormat(str, Enum):
    """How a table is written."""

    TEXT = "text"
    CSV = "csv"
    MARKDOWN = "markdown"
    JSON = "json"

    def __str__(self) -> str:
        return self.value


#: The ``--format`` choices, in help order.
FORMATS = tuple(f.value for f in TableFormat)


@dataclass(frozen=True)
class Column:
    """One column.

    Attributes:
        key: machine name (CSV header, JSON key), e.g. ``mean_us``.
        label: human header for text and Markdown (default: ``key``).
        unit: unit shown after the label in text and Markdown (``ms``, ``µs``, ``%``...).
        digits: decimals for floats (the resolution the figure has); ``None``: up to 4
            significant digits.
        align: ``"right"`` or ``"left"``; default right for numbers, left for text.
    """

    key: str
    label: str = ""
    unit: str = ""
    digits: int | None = None
    align: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            raise InvalidInputError("Column: got an empty key, expected a name such as 'p50_ms'")
        if self.align not in ("", "left", "right"):
            raise InvalidInputError(
                f"Column {self.key!r}: align {self.align!r}, expected left/right"
            )
        if self.digits is not None and self.digits < 0:
            raise InvalidInputError(f"Column {self.key!r}: digits {self.digits}, expected >= 0")

    @property
    def header(self) -> str:
        """``label (unit)`` for text and Markdown."""
        label = self.label or self.key
        return f"{label} ({self.unit})" if self.unit else label

    def format(self, value: Any, *, thousands: bool = False) -> str:
        """A cell as text: ``-`` for missing values, floats to ``digits`` decimals."""
        if _missing(value):
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, int):
            return f"{value:,}" if thousands else str(value)
        if isinstance(value, float):
            if math.isinf(value):
                return "inf" if value > 0 else "-inf"
            if self.digits is not None:
                return f"{value:,.{self.digits}f}" if thousands else f"{value:.{self.digits}f}"
            return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.4g}"
        return str(value)

    def plain(self, value: Any) -> Any:
        """A cell for CSV / JSON: ``None`` for missing, floats rounded to ``digits``."""
        if _missing(value):
            return None
        if isinstance(value, float) and self.digits is not None and math.isfinite(value):
            rounded = round(value, self.digits)
            return int(rounded) if self.digits == 0 else rounded
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):
            return self.plain(value.item())  # numpy scalars
        return value


def _missing(value: Any) -> bool:
    if value is None or type(value).__name__ in ("NAType", "NaTType"):  # pandas.NA, NaT
        return True
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars
    return isinstance(value, float) and math.isnan(value)


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Table:
    """Columns, rows and notes; render with :meth:`render`.

    Attributes:
        title: one line above the table (text, Markdown) or the JSON ``title``.
        columns: the columns, in order (plain strings are taken as keys); stored as a tuple.
        rows: one sequence per row, one value per column (``None`` = missing); stored as tuples.
        notes: lines printed under the table (text, Markdown) and kept in JSON.
        max_rows: text and Markdown show the first and last rows of longer tables (``None``:
            all); CSV and JSON always carry every row.
    """

    title: str
    columns: Sequence[Column]
    rows: Sequence[Sequence[Any]] = ()
    notes: Sequence[str] = ()
    max_rows: int | None = None

    def __post_init__(self) -> None:
        # Accept lists and plain column names; store tuples of Columns.
        cols = tuple(c if isinstance(c, Column) else Column(str(c)) for c in self.columns)
        keys = [c.key for c in cols]
        if len(set(keys)) != len(keys):
            raise InvalidInputError(f"Table {self.title!r}: duplicate column keys in {keys}")
        body = tuple(tuple(r) for r in self.rows)
        for i, r in enumerate(body):
            if len(r) != len(cols):
                raise InvalidInputError(
                    f"Table {self.title!r}: row {i} has {len(r)} values, expected {len(cols)} "
                    f"({', '.join(keys)})"
                )
        object.__setattr__(self, "columns", cols)
        object.__setattr__(self, "rows", body)
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def keys(self) -> tuple[str, ...]:
        """The column keys, in order."""
        return tuple(c.key for c in self.columns)

    # -- building ---------------------------------------------------------------------------------
    def with_rows(self, rows: Iterable[Sequence[Any]]) -> Table:
        """A copy with ``rows`` appended."""
        return replace(self, rows=(*self.rows, *(tuple(r) for r in rows)))

    def with_notes(self, *notes: str) -> Table:
        """A copy with ``notes`` appended."""
        return replace(self, notes=(*self.notes, *notes))

    @classmethod
    def from_records(
        cls,
        title: str,
        columns: Sequence[Column | str],
        records: Iterable[Mapping[str, Any]],
        **kwargs: Any,
    ) -> Table:
        """Rows from dicts keyed by column key (missing keys are ``None``)."""
        cols = [c if isinstance(c, Column) else Column(c) for c in columns]
        rows = tuple(tuple(rec.get(c.key) for c in cols) for rec in records)
        return cls(title, tuple(cols), rows, **kwargs)

    @classmethod
    def from_frame(
        cls, title: str, frame: pd.DataFrame, columns: Sequence[Column | str] | None = None,
        **kwargs: Any,
    ) -> Table:  # fmt: skip
        """A pandas frame's rows; ``columns`` picks and describes them (default: all, plain)."""
        cols = [c if isinstance(c, Column) else Column(c) for c in (columns or list(frame.columns))]
        missing = [c.key for c in cols if c.key not in frame.columns]
        if missing:
            raise InvalidInputError(
                f"Table {title!r}: frame has no column(s) {missing}; it has {list(frame.columns)}"
            )
        data = frame[[c.key for c in cols]]
        rows = tuple(
            tuple(_unbox(v) for v in rec) for rec in data.itertuples(index=False, name=None)
        )
        return cls(title, tuple(cols), rows, **kwargs)

    # -- reading ----------------------------------------------------------------------------------
    def column(self, key: str) -> list[Any]:
        """Every value of one column."""
        try:
            i = self.keys.index(key)
        except ValueError:
            raise InvalidInputError(
                f"Table {self.title!r}: no column {key!r}; expected one of {list(self.keys)}"
            ) from None
        return [r[i] for r in self.rows]

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column key (CSV/JSON values)."""
        return [{c.key: c.plain(v) for c, v in zip(self.columns, row)} for row in self.rows]

    # -- rendering --------------------------------------------------------------------------------
    def render(self, format: TableFormat | str = TableFormat.TEXT) -> str:
        """The table in ``format`` (``text``, ``csv``, ``markdown`` or ``json``)."""
        try:
            fmt = TableFormat(format)
        except ValueError:
            raise InvalidInputError(
                f"table format: got {format!r}, expected one of {', '.join(FORMATS)}"
            ) from None
        if fmt is TableFormat.CSV:
            return self.to_csv()
        if fmt is TableFormat.MARKDOWN:
            return self.to_markdown()
        if fmt is TableFormat.JSON:
            return json.dumps(self.to_dict(), indent=2)
        return self.to_text()

    def _shown(self) -> tuple[list[Sequence[Any]], int]:
        rows = list(self.rows)
        if self.max_rows is None or len(rows) <= self.max_rows:
            return rows, 0
        head = (self.max_rows + 1) // 2
        tail = self.max_rows - head
        return rows[:head] + rows[len(rows) - tail :], len(rows) - self.max_rows

    def _aligns(self) -> list[str]:
        out = []
        for i, c in enumerate(self.columns):
            if c.align:
                out.append(c.align)
                continue
            values = [r[i] for r in self.rows if not _missing(r[i])]
            out.append("right" if values and all(_numeric(v) for v in values) else "left")
        return out

    def to_text(self) -> str:
        """Padded plain text: title, header, rule, rows, notes."""
        rows, hidden = self._shown()
        cells = [[c.format(v) for c, v in zip(self.columns, r)] for r in rows]
        heads = [c.header for c in self.columns]
        widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(heads)]
        aligns = self._aligns()

        def line(values: Sequence[str]) -> str:
            parts = [
                v.rjust(w) if a == "right" else v.ljust(w)
                for v, w, a in zip(values, widths, aligns)
            ]
            return "  ".join(parts).rstrip()

        out = [self.title] if self.title else []
        if not self.rows:
            out.append("(no rows)")
        else:
            out.append(line(heads))
            out.append("  ".join("-" * w for w in widths))
            split = (len(rows) + 1) // 2 if hidden else -1
            for i, r in enumerate(cells):
                if i == split:
                    out.append(f"... {hidden} more row(s) ...")
                out.append(line(r))
        out.extend(self.notes)
        return "\n".join(out)

    def to_markdown(self) -> str:
        """A GitHub-flavoured pipe table with the title in bold and notes as a list."""
        rows, hidden = self._shown()
        aligns = self._aligns()

        def esc(text: str) -> str:
            return text.replace("|", "\\|").replace("\n", " ")

        out = [f"**{esc(self.title)}**", ""] if self.title else []
        if not self.rows:
            out.append("(no rows)")
        else:
            out.append("| " + " | ".join(esc(c.header) for c in self.columns) + " |")
            out.append("|" + "|".join("---:" if a == "right" else ":---" for a in aligns) + "|")
            split = (len(rows) + 1) // 2 if hidden else -1
            for i, r in enumerate(rows):
                if i == split:
                    out.append("| " + " | ".join(["…"] * len(self.columns)) + " |")
                out.append(
                    "| " + " | ".join(esc(c.format(v)) for c, v in zip(self.columns, r)) + " |"
                )
            if hidden:
                out.append("")
                out.append(f"({hidden} row(s) not shown; CSV and JSON carry every row)")
        if self.notes:
            out.append("")
            out.extend(f"- {esc(n)}" for n in self.notes)
        return "\n".join(out)

    def to_csv(self) -> str:
        """CSV with the column keys as header and every row (missing values empty)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.keys)
        for rec in self.records():
            writer.writerow(["" if v is None else v for v in rec.values()])
        return buf.getvalue()

    def to_dict(self) -> dict[str, Any]:
        """``{"title", "columns": [{"key", "label", "unit"}], "rows": [{key: value}], "notes"}``."""
        return {
            "title": self.title,
            "columns": [
                {"key": c.key, "label": c.label or c.key, "unit": c.unit} for c in self.columns
            ],
            "rows": self.records(),
            "notes": list(self.notes),
        }


def _unbox(value: Any) -> Any:
    if _missing(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def render_tables(tables: Sequence[Table], format: TableFormat | str = TableFormat.TEXT) -> str:
    """Several tables in one format: blank-line separated text/Markdown, CSV blocks each headed
    by ``# title``, or one JSON array."""
    fmt = TableFormat(format)
    if fmt is TableFormat.JSON:
        return json.dumps([t.to_dict() for t in tables], indent=2)
    if fmt is TableFormat.CSV:
        return "\n".join(
            (f"# {t.title}\n" if len(tables) > 1 and t.title else "") + t.to_csv() for t in tables
        )
    return "\n\n".join(t.render(fmt) for t in tables)
