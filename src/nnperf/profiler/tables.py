"""pandas views of a profile: the seed's summary, inferences, engine executions, operators.

The only profiler module that imports pandas (``pip install 'nnperf[pandas]'``). Every duration
column is in ns and says so in its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nnperf.errors import MissingDependencyError

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
    "external_operators",
    "inferences",
    "operators",
    "render",
    "summary",
    "summary_text",
]

#: Columns of :func:`dataframe`, in order. ``start``/``end``/``dur`` are ns (perf_counter_ns).
COLUMNS = (
    "trace_id",  # 32 hex, one per profiler
    "parent_span_id",  # 16 hex; "0000000000000000" at the root
    "span_id",  # 16 hex
    "start",  # ns, time.perf_counter_ns
    "end",  # ns
    "dur",  # ns, end - start
    "cat",  # Record | Runtime | Engine | Operator
    "name",  # Inference, Validation, QueueWait, EngineRun, OutputHandling, block label, node name
    "thread.id",  # OS thread id
    "session",  # Session ordinal (Int64, null for blocks)
    "instance",  # engine instance index (Int64)
    "batch",  # rows in the query (Inference rows)
    "op_type",  # operators: onnxruntime op type (Conv, QuantizeLinear, ReorderInput...)
    "op_class",  # operators: compute | external | copy
    "op_alias",  # operators: Furiosa name for external ops (Quantize, Lower, Unlower, Dequantize)
    "provider",  # operators: execution provider
    "operator_index",  # operators: position within the inference (Int64)
    "input_shapes",  # operators: "dtype[d0,d1];..."
    "output_shapes",
    "error",  # Inference rows of failed queries: exception type name
)
#: Percentiles of the summary (the seed's list).
PERCENTILES = (0.9, 0.95, 0.97, 0.99, 0.999)
_INT_COLUMNS = ("session", "instance", "batch", "operator_index")


def dataframe(spans: Sequence[Span], cat: str | None = None) -> pd.DataFrame:
    """Spans as a DataFrame with :data:`COLUMNS` (index columns nullable ``Int64``)."""
    rows = [
        {
            "trace_id": s.trace_id,
            "parent_span_id": s.parent_span_id,
            "span_id": s.span_id,
            "start": s.start_ns,
            "end": s.end_ns,
            "dur": s.end_ns - s.start_ns,
            "cat": s.cat,
            "name": s.name,
            "thread.id": s.thread_id,
            "session": s.session,
            "instance": s.instance,
            "batch": s.batch,
            "op_type": s.op_type,
            "op_class": s.op_class,
            "op_alias": s.op_alias,
            "provider": s.provider,
            "operator_index": s.operator_index,
            "input_shapes": s.input_shapes,
            "output_shapes": s.output_shapes,
            "error": s.error,
        }
        for s in spans
        if cat is None or s.cat == cat
    ]
    df: pd.DataFrame = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in ("start", "end", "dur", "thread.id"):
        df[col] = df[col].astype("int64")
    for col in _INT_COLUMNS:
        df[col] = df[col].astype("Int64")
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
    trace = df["trace_id"].iloc[0] if len(df) else ""
    out.insert(0, "trace_id", trace)
    cols = ["trace_id", "span_id", "instance", "engine_total_ns", "compute_ns", "external_ns",
            "copy_ns", "io_wait_ns"]  # fmt: skip
    result: pd.DataFrame = out[cols].reset_index(drop=True)
    return result


def operators(df: pd.DataFrame) -> pd.DataFrame:
    """By op type: ``op_type, op_class, mean_ns, count, total_ns, share`` (share of engine time).

    ``share`` = the op type's total time ÷ total EngineRun time of the inferences that have
    operator events (0..1). Sorted by total time, largest first.
    """
    ops = df.loc[df["cat"] == "Operator"]
    if ops.empty:
        empty: pd.DataFrame = pd.DataFrame(
            columns=["op_type", "op_class", "mean_ns", "count", "total_ns", "share"]
        )
        return empty
    profiled_runs = df.loc[
        (df["name"] == "EngineRun") & df["span_id"].isin(set(ops["parent_span_id"])), "dur"
    ]
    engine_total = int(profiled_runs.sum()) or 1
    g = ops.groupby(["op_type", "op_class"])["dur"]
    out = pd.DataFrame(
        {"mean_ns": g.mean().round(1), "count": g.count(), "total_ns": g.sum()}
    ).reset_index()
    out["share"] = (out["total_ns"] / engine_total).round(4)
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
    """A frame as text (first and last rows when longer than ``max_rows``)."""
    if df.empty:
        return "(no rows)"
    text: str = df.to_string(max_rows=max_rows, index=False)
    return text


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
