"""pandas views of a profile: the seed's summary, inferences, engine executions, operators.

The only profiler module that imports pandas (``pip install 'nnperf[pandas]'``). Every duration
column is in ns and says so in its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nnperf.errors import MissingDependencyError
from nnperf.profiler.recorder import COLUMNS
from nnperf.table import Column, Table

try:
    import pandas as pd
except ImportError as _exc:  # pragma: no cover - pandas is in the test extra
    raise MissingDependencyError("pandas", "pandas", "profiler tables") from _exc

if TYPE_CHECKING:
    from nnperf.profiler.recorder import Span

__all__ = [
    "COLUMNS",
    "PERCENTILES",
    "dataframe",
    "descendants",
    "device_executions",
    "device_executions_table",
    "external_operators",
    "external_operators_table",
    "inferences",
    "inferences_table",
    "operators",
    "operators_table",
    "render",
    "summary",
    "summary_text",
]

#: Percentiles of the summary (the seed's list).
PERCENTILES = (0.9, 0.95, 0.97, 0.99, 0.999)
_INT_COLUMNS = ("session", "instance", "batch", "operator_index", "resolution_ns")


def dataframe(spans: Sequence[Span], cat: str | None = None) -> pd.DataFrame:
    """Spans as a DataFrame with :data:`COLUMNS` (index columns nullable ``Int64``)."""
    rows = [s.to_row() for s in spans if cat is None or s.cat == cat]
    df: pd.DataFrame = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in ("start", "end", "dur", "thread.id"):
        df[col] = df[col].astype("int64")
    for col in _INT_COLUMNS:
        df[col] = df[col].astype("Int64")
    df["synthetic_start"] = df["synthetic_start"].astype("boolean")
    return df


def summary(df: pd.DataFrame) -> dict[str, int]:
    """Inference latency statistics in ns: count, min, max, mean, median, p90...p99.9."""
    durs = df.loc[(df["cat"] == "Runtime") & (df["name"] == "Inference"), "dur"]
    out: dict[str, int] = {"count": len(durs)}
    if len(durs) == 0:
        return out
    out.update(
        min=int(durs.min()), max=int(durs.max()), mean=int(durs.mean()), median=int(durs.median())
    )
    for p in PERCENTILES:
        out[f"p{p * 100:g}"] = int(durs.quantile(p))
    return out


def summary_text(df: pd.DataFrame) -> str:
    """The seed's "Inference Results Summary" block."""
    stats = summary(df)
    bar = "=" * 48
    lines = [bar, "  Inference Results Summary", bar]
    lines.append(f"{'Inference counts':<30}  : {stats['count']}")
    if stats["count"]:
        for key, label in (("min", "Min"), ("max", "Max"), ("mean", "Mean"), ("median", "Median")):
            lines.append(f"{label + ' latency (ns)':<30}  : {stats[key]}")
        for p in PERCENTILES:
            label = f"{p * 100:.1f} percentile latency (ns)"
            lines.append(f"{label:<30}  : {stats[f'p{p * 100:g}']}")
    return "\n".join(lines)


def inferences(df: pd.DataFrame) -> pd.DataFrame:
    """One row per inference: trace_id, span_id, thread.id, instance, batch, dur (ns)."""
    rows = df.loc[(df["cat"] == "Runtime") & (df["name"] == "Inference")]
    out: pd.DataFrame = rows[["trace_id", "span_id", "thread.id", "instance", "batch", "dur"]]
    result: pd.DataFrame = out.reset_index(drop=True)
    return result


def device_executions(df: pd.DataFrame) -> pd.DataFrame:
    """Per inference: engine total, operator time by class and the rest, all ns.

    Columns: ``trace_id, span_id`` (the Inference), ``instance``, ``engine_total_ns`` (EngineRun),
    ``compute_ns``, ``external_ns``, ``copy_ns`` (sums of that class's operators; null without
    operator events), ``io_wait_ns`` = total − all operators (engine-side framework work,
    allocation and waits; signed int64, so never an unsigned wrap-around; it can be slightly
    negative when the µs-rounded operator times exceed the run or nodes run in parallel).
    """
    runs = df.loc[df["name"] == "EngineRun", ["span_id", "parent_span_id", "instance", "dur"]]
    runs = runs.rename(
        columns={"span_id": "engine_span_id", "parent_span_id": "span_id", "dur": "engine_total_ns"}
    )
    ops = df.loc[df["cat"] == "Operator", ["parent_span_id", "op_class", "dur"]]
    by_class = (
        ops.pivot_table(
            index="parent_span_id", columns="op_class", values="dur", aggfunc="sum", fill_value=0
        )
        if len(ops)
        else pd.DataFrame(index=pd.Index([], name="parent_span_id"))
    )
    for cls in ("compute", "external", "copy"):
        if cls not in by_class.columns:
            by_class[cls] = 0
    by_class = by_class[["compute", "external", "copy"]].add_suffix("_ns").astype("int64")
    out = runs.merge(by_class, left_on="engine_span_id", right_index=True, how="left")
    profiled = out["engine_span_id"].isin(by_class.index)
    for col in ("compute_ns", "external_ns", "copy_ns"):
        out[col] = out[col].astype("Int64").where(profiled, pd.NA)
    total_ops = out["compute_ns"] + out["external_ns"] + out["copy_ns"]
    out["io_wait_ns"] = (out["engine_total_ns"].astype("Int64") - total_ops).astype("Int64")
    traces = df.loc[df["name"] == "Inference", ["span_id", "trace_id"]]
    out = out.merge(traces, on="span_id", how="left")
    cols = ["trace_id", "span_id", "instance", "engine_total_ns", "compute_ns", "external_ns",
            "copy_ns", "io_wait_ns"]  # fmt: skip
    result: pd.DataFrame = out[cols].reset_index(drop=True)
    return result


def operators(df: pd.DataFrame) -> pd.DataFrame:
    """By op type: ``op_type, op_class, mean_ns, count, total_ns, share, resolution_ns``.

    ``share`` = the op type's total time ÷ total EngineRun time of the inferences that have
    operator events (0..1); ``resolution_ns`` is the engine's clock resolution for that type
    (onnxruntime: 1000, so the ns figures are multiples of 1 µs and a mean has no ns precision).
    Sorted by total time, largest first.
    """
    ops = df.loc[df["cat"] == "Operator"]
    if ops.empty:
        empty: pd.DataFrame = pd.DataFrame(
            columns=["op_type", "op_class", "mean_ns", "count", "total_ns", "share",
                     "resolution_ns"]
        )  # fmt: skip
        return empty
    profiled_runs = df.loc[
        (df["name"] == "EngineRun") & df["span_id"].isin(set(ops["parent_span_id"])), "dur"
    ]
    engine_total = int(profiled_runs.sum()) or 1
    g = ops.groupby(["op_type", "op_class"])["dur"]
    res = ops.groupby(["op_type", "op_class"])["resolution_ns"].max().fillna(1)
    out = pd.DataFrame(
        {"mean_ns": g.mean().round(1), "count": g.count(), "total_ns": g.sum(),
         "resolution_ns": res.astype("int64")}
    ).reset_index()  # fmt: skip
    out["share"] = (out["total_ns"] / engine_total).round(4)
    out = out[["op_type", "op_class", "mean_ns", "count", "total_ns", "share", "resolution_ns"]]
    result: pd.DataFrame = out.sort_values("total_ns", ascending=False).reset_index(drop=True)
    return result


def external_operators(df: pd.DataFrame) -> pd.DataFrame:
    """Each external operator execution: trace_id, span_id, thread.id, name (Furiosa alias),
    op_type, node, operator_index, dur (ns)."""
    ext = df.loc[(df["cat"] == "Operator") & (df["op_class"] == "external")]
    out = ext[["trace_id", "span_id", "thread.id", "op_alias", "op_type", "name",
               "operator_index", "dur"]]  # fmt: skip
    renamed: pd.DataFrame = out.rename(columns={"op_alias": "name", "name": "node"})
    result: pd.DataFrame = renamed.reset_index(drop=True)
    return result


def render(df: pd.DataFrame, *, max_rows: int = 20) -> str:
    """A frame as plain padded text (first and last rows when longer than ``max_rows``)."""
    return Table.from_frame("", df, max_rows=max_rows).to_text()


def _resolution(df: pd.DataFrame) -> int:
    """The coarsest operator clock resolution in ``df`` (ns; 1 without operator rows)."""
    ops = df.loc[df["cat"] == "Operator", "resolution_ns"].dropna()
    return int(ops.max()) if len(ops) else 1


def _us_digits(resolution_ns: int) -> int:
    """Decimals of a µs figure measured at ``resolution_ns``: 1000 → 0, 100 → 1, 1 → 3."""
    return max(0, 3 - (len(str(max(resolution_ns, 1))) - 1))


def _resolution_note(resolution_ns: int, synthetic: bool) -> str:
    res = f"{resolution_ns / 1000:g} µs" if resolution_ns >= 1000 else f"{resolution_ns} ns"
    note = f"operator times: engine clock resolution {res}; means carry one more decimal"
    if synthetic:
        note += "; start times synthetic (the engine reports durations only)"
    return note


def inferences_table(df: pd.DataFrame, *, max_rows: int | None = 20) -> Table:
    """:func:`inferences` as a :class:`~nnperf.table.Table` (latency in µs, ns-measured)."""
    frame = inferences(df)
    rows = [
        (r["trace_id"], r["span_id"], r["thread.id"], r["instance"], r["batch"], r["dur"] / 1000)
        for r in frame.to_dict(orient="records")
    ]
    cols = (Column("trace_id"), Column("span_id"), Column("thread_id", "thread.id"),
            Column("instance"), Column("batch"), Column("dur_us", "dur", "µs", 1))  # fmt: skip
    return Table("Inferences", cols, rows, max_rows=max_rows)


def device_executions_table(df: pd.DataFrame, *, max_rows: int | None = 10) -> Table:
    """:func:`device_executions` in µs: engine total (ns-measured, 0.1 µs) and operator sums at
    the operator clock's resolution."""
    frame = device_executions(df)
    digits = _us_digits(_resolution(df))

    def us(v: object) -> float | None:
        return None if v is None or v is pd.NA else float(v) / 1000  # type: ignore[arg-type]

    rows = [
        (r["trace_id"], r["span_id"], _plain(r["instance"]), us(r["engine_total_ns"]),
         us(r["compute_ns"]), us(r["external_ns"]), us(r["copy_ns"]), us(r["io_wait_ns"]))
        for r in frame.to_dict(orient="records")
    ]  # fmt: skip
    cols = (
        Column("trace_id"), Column("span_id"), Column("instance"),
        Column("engine_total_us", "engine total", "µs", 1),
        Column("compute_us", "compute", "µs", digits),
        Column("external_us", "external", "µs", digits),
        Column("copy_us", "copy", "µs", digits),
        Column("io_wait_us", "io/wait", "µs", digits),
    )  # fmt: skip
    return Table("Engine executions", cols, rows, max_rows=max_rows)


def operators_table(df: pd.DataFrame, *, max_rows: int | None = 20) -> Table:
    """:func:`operators` in µs at the engine's resolution, share in %."""
    frame = operators(df)
    res = _resolution(df)
    digits = _us_digits(res)
    rows = [
        (r["op_type"], r["op_class"], r["mean_ns"] / 1000, int(r["count"]),
         r["total_ns"] / 1000, 100.0 * float(r["share"]))
        for r in frame.to_dict(orient="records")
    ]  # fmt: skip
    cols = (
        Column("op_type", "op type"), Column("op_class", "class"),
        Column("mean_us", "mean", "µs", min(digits + 1, 3)), Column("count"),
        Column("total_us", "total", "µs", digits),
        Column("share_pct", "share of engine", "%", 1),
    )  # fmt: skip
    synthetic = bool(df.loc[df["cat"] == "Operator", "synthetic_start"].fillna(False).any())
    notes = (_resolution_note(res, synthetic),) if rows else ()
    return Table("Operators by type", cols, rows, notes=notes, max_rows=max_rows)


def external_operators_table(df: pd.DataFrame, *, max_rows: int | None = 10) -> Table:
    """:func:`external_operators` with durations in µs at the engine's resolution."""
    frame = external_operators(df)
    digits = _us_digits(_resolution(df))
    rows = [
        (r["trace_id"], r["span_id"], r["thread.id"], r["name"], r["op_type"], r["node"],
         _plain(r["operator_index"]), r["dur"] / 1000)
        for r in frame.to_dict(orient="records")
    ]  # fmt: skip
    cols = (
        Column("trace_id"), Column("span_id"), Column("thread_id", "thread.id"), Column("name"),
        Column("op_type", "op type"), Column("node"), Column("operator_index", "index"),
        Column("dur_us", "dur", "µs", digits),
    )  # fmt: skip
    return Table("External operators", cols, rows, max_rows=max_rows)


def _plain(value: object) -> object:
    return None if value is pd.NA else value


def descendants(df: pd.DataFrame, block: str) -> pd.DataFrame:
    """Rows under every ``record(block)`` span (the blocks themselves excluded)."""
    ids = set(df.loc[(df["cat"] == "Record") & (df["name"] == block), "span_id"])
    keep: set[str] = set()
    frontier = ids
    parent = df["parent_span_id"]
    while frontier:
        new = set(df.loc[parent.isin(frontier), "span_id"]) - keep
        keep |= new
        frontier = new
    result: pd.DataFrame = df.loc[df["span_id"].isin(keep)].reset_index(drop=True)
    return result
