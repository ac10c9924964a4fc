"""The one table model: text, CSV, Markdown and JSON from the same rows."""

from __future__ import annotations

import csv
import io
import json

import pytest

from nnperf.errors import InvalidInputError
from nnperf.table import Column, Table, render_tables


def _table() -> Table:
    return Table(
        "Operators",
        (Column("op_type", "op type"), Column("mean_us", "mean", "µs", 1), Column("count")),
        [("Conv", 72.8234, 400), ("Gemm", None, 200), ("A|B", 1.0, 1)],
        notes=("resolution 1 µs",),
    )


def test_text_pads_and_formats_with_the_columns_resolution() -> None:
    text = _table().render("text")
    lines = text.splitlines()
    assert lines[0] == "Operators"
    assert lines[1].split() == ["op", "type", "mean", "(µs)", "count"]
    assert "72.8" in text and "72.82" not in text
    end = lines[1].index("(µs)") + len("(µs)")
    assert lines[3][:end].endswith("72.8") and lines[4][:end].endswith("-")  # right aligned
    assert lines[-1] == "resolution 1 µs"


def test_csv_has_keys_every_row_and_empty_missing_values() -> None:
    rows = list(csv.reader(io.StringIO(_table().render("csv"))))
    assert rows[0] == ["op_type", "mean_us", "count"]
    assert rows[1] == ["Conv", "72.8", "400"]
    assert rows[2] == ["Gemm", "", "200"]
    assert len(rows) == 4


def test_markdown_pipe_table_escapes_pipes() -> None:
    md = _table().render("markdown")
    lines = md.splitlines()
    assert lines[0] == "**Operators**"
    assert lines[2] == "| op type | mean (µs) | count |"
    assert lines[3] == "|:---|---:|---:|"
    assert "| A\\|B | 1.0 | 1 |" in md
    assert md.splitlines()[-1] == "- resolution 1 µs"


def test_json_round_trips_records() -> None:
    data = json.loads(_table().render("json"))
    assert data["columns"][1] == {"key": "mean_us", "label": "mean", "unit": "µs"}
    assert data["rows"][0] == {"op_type": "Conv", "mean_us": 72.8, "count": 400}
    assert data["rows"][1]["mean_us"] is None


def test_max_rows_elides_text_but_not_csv() -> None:
    t = Table("n", ["i"], [(i,) for i in range(30)], max_rows=6)
    assert "24 more row(s)" in t.render("text")
    assert len(t.render("csv").splitlines()) == 31


def test_from_frame_and_errors() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1, 2], "b": [0.5, None]}).astype({"a": "Int64"})
    t = Table.from_frame("f", df)
    assert t.rows == ((1, 0.5), (2, None))
    with pytest.raises(InvalidInputError, match="row 0 has 1 values, expected 2"):
        Table("bad", ["a", "b"], [(1,)])
    with pytest.raises(InvalidInputError, match="expected one of text, csv, markdown, json"):
        t.render("html")


def test_render_tables_joins_formats() -> None:
    a, b = Table("A", ["x"], [(1,)]), Table("B", ["y"], [(2,)])
    assert render_tables([a, b], "csv") == "# A\nx\n1\n\n# B\ny\n2\n"
    assert [t["title"] for t in json.loads(render_tables([a, b], "json"))] == ["A", "B"]
