"""``nnperf report``: one self-contained HTML file from bench, sweep, side-by-side, tune and
profile documents.

The page needs no network: plotly's JavaScript is inlined once in ``<head>`` and every figure's
data is in the page. What it shows, per document:

* **bench**: run facts, a latency histogram and CDF (from ``samples.latency_ns``; a bench/1
  document without samples gets a percentile curve from its summary, labelled so), stage bars
  (load, prepare, fake first, each warm-up iteration);
* **sweep**: throughput against p99 over the points, the knee marked;
* **side by side** (engines or models): samples/s and p50/p99 per row, overlaid latency CDFs and
  the noise-aware comparison of each row with the first (``nnperf compare``'s table);
* **tune**: every measured candidate's objective value, coloured by status;
* **profile**: the span-mode latency histogram and CDF, the operator breakdown by type and class
  (operator pass, with what it cost), and the advice;
* the machine and versions of every document, once per distinct machine.

A small script at the end of the page marks each plot ``data-drawn="1"`` with its box once
plotly has drawn it, lists script errors in a red banner, and states "N of M plots drawn" in
the footer, so a reader (and the browser test) sees a broken page as broken.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from nnperf.errors import MissingDependencyError
from nnperf.report.documents import Run, load_document, runs_of
from nnperf.table import Column, Table

__all__ = ["build_report", "write_report"]

_PLOT_HEIGHT = 360
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
_STATUS_COLOURS = {
    "winner": "#2ca02c",
    "runner-up": "#1f77b4",
    "finalist": "#17becf",
    "dropped": "#bcbd22",
    "pruned": "#7f7f7f",
    "failed": "#d62728",
}
_CLASS_COLOURS = {"compute": "#1f77b4", "external": "#ff7f0e", "copy": "#d62728"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fff}
header{background:#1f3b57;color:#fff;padding:16px 28px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;opacity:.85;font-size:13px}
main{padding:8px 28px 28px;max-width:1250px}
section{border-top:1px solid #ddd;margin-top:18px;padding-top:6px}
h2{font-size:19px;margin:10px 0 4px} h3{font-size:15px;margin:14px 0 4px;color:#444}
.facts{font-size:13px;color:#444;margin:2px 0 8px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.nnperf-plot{min-height:%(h)dpx;border:1px solid #eee}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f6f8} td.l,th.l{text-align:left}
.note{font-size:12.5px;color:#555;margin:2px 0}
.bad{color:#b00020;font-weight:600}
#nnperf-errors{display:none;background:#b00020;color:#fff;padding:8px 28px;font-size:13px}
footer{font-size:12px;color:#666;padding:10px 28px;border-top:1px solid #ddd}
""" % {"h": _PLOT_HEIGHT}  # noqa: UP031 - CSS braces make str.format awkward

_CHECK_JS = """
(function(){
  var errors=[];
  function show(){var b=document.getElementById('nnperf-errors');
    if(errors.length){b.style.display='block';b.textContent='Script errors on this page: '+errors.join(' | ');}
    document.body.setAttribute('data-errors', String(errors.length));}
  window.addEventListener('error',function(e){errors.push(String(e.message||e));show();});
  function check(){
    var plots=document.querySelectorAll('.nnperf-plot'), drawn=0;
    plots.forEach(function(p){
      var ok=p.querySelector('.main-svg')!==null&&p.querySelectorAll('.trace, .point, .bars path, .scatterlayer path').length>0;
      var r=p.getBoundingClientRect();
      p.setAttribute('data-drawn', ok?'1':'0');
      p.setAttribute('data-bbox',[Math.round(r.left+window.scrollX),Math.round(r.top+window.scrollY),Math.round(r.width),Math.round(r.height)].join(','));
      if(ok){drawn++;}
    });
    document.body.setAttribute('data-plots', String(plots.length));
    document.body.setAttribute('data-drawn', String(drawn));
    document.body.setAttribute('data-height', String(document.documentElement.scrollHeight));
    document.getElementById('nnperf-status').textContent=drawn+' of '+plots.length+' plots drawn';
    show();
  }
  if(document.readyState==='complete'){setTimeout(check,0);}else{window.addEventListener('load',function(){setTimeout(check,0);});}
})();
"""


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise MissingDependencyError("plotly", "report", "nnperf report's plots") from None
    return go


class _Page:
    """Collects sections and figures; :meth:`html` writes the page."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []
        self.plots = 0
        self.machines: list[tuple[str, Mapping[str, Any]]] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    def figure(self, fig: Any, *, title: str) -> str:
        """The HTML of one plot (its data inline, plotly's JS loaded once in the head)."""
        self.plots += 1
        fig.update_layout(
            title={"text": html.escape(title), "font": {"size": 14}},
            height=_PLOT_HEIGHT,
            margin={"l": 60, "r": 20, "t": 44, "b": 48},
            template="plotly_white",
            legend={"orientation": "h", "y": -0.2},
        )
        div = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"plot{self.plots}",
            default_height=f"{_PLOT_HEIGHT}px",
            config={"displaylogo": False, "responsive": True},
        )
        return f'<div class="nnperf-plot" data-title="{html.escape(title)}">{div}</div>'

    def html(self) -> str:
        from plotly.offline import get_plotlyjs

        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        body = "\n".join(self.parts)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
            '<div id="nnperf-errors"></div>'
            f"<header><h1>{html.escape(self.title)}</h1><p>written by nnperf report, {stamp}; "
            "self-contained: opens without network</p></header>"
            f"<main>{body}</main>"
            f'<footer><span id="nnperf-status">{self.plots} plots (script not run)</span> · '
            "hover a plot for values; drag to zoom, double-click to reset</footer>"
            f"<script>{_CHECK_JS}</script></body></html>\n"
        )


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table_html(table: Table) -> str:
    """A :class:`~nnperf.table.Table` as an HTML table (text cells left-aligned)."""
    numeric = [
        all(isinstance(r[i], (int, float)) or r[i] is None for r in table.rows)
        for i in range(len(table.columns))
    ]
    head = "".join(
        f'<th class="{"" if n else "l"}">{_esc(c.header)}</th>'
        for c, n in zip(table.columns, numeric)
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"" if n else "l"}">{_esc(c.format(v))}</td>'
            for c, v, n in zip(table.columns, row, numeric)
        )
        + "</tr>"
        for row in table.rows
    )
    title = f"<h3>{_esc(table.title)}</h3>" if table.title else ""
    notes = "".join(f'<p class="note">{_esc(n)}</p>' for n in table.notes)
    return f"{title}<table><tr>{head}</tr>{rows}</table>{notes}"


def _histogram(go: Any, runs: Sequence[Run]) -> Any | None:
    """Latency histogram (ms) of runs with samples; the x range stops at the largest p99.9."""
    with_samples = [r for r in runs if r.has_samples]
    if not with_samples:
        return None
    ms = [np.asarray(r.samples_ns, dtype=np.float64) / 1e6 for r in with_samples]
    lo = min(float(x.min()) for x in ms)
    # Stop at the p99.9, but no further than 5x the median: one 10 ms stall must not squash a
    # 50 µs body into one bar. What lies beyond is counted in the last bar and named.
    hi = max(float(np.percentile(x, 99.9)) for x in ms)
    hi = min(hi, max(5 * float(np.median(x)) for x in ms))
    hi = max(hi, *(float(np.percentile(x, 90)) for x in ms))
    hi = hi if hi > lo else lo + 1e-3
    edges = np.linspace(lo, hi, 61)
    fig = go.Figure()
    for i, (run, x) in enumerate(zip(with_samples, ms)):
        counts, _ = np.histogram(np.clip(x, lo, hi), bins=edges)
        beyond = int((x > hi).sum())
        fig.add_trace(
            go.Bar(
                x=((edges[:-1] + edges[1:]) / 2).tolist(),
                y=counts.tolist(),
                width=float(edges[1] - edges[0]),
                name=f"{run.label}"
                + (f" ({beyond} beyond the axis, counted in the last bar)" if beyond else ""),
                marker_color=_COLOURS[i % len(_COLOURS)],
                opacity=0.75 if len(with_samples) > 1 else 1.0,
            )
        )
    fig.update_layout(barmode="overlay", xaxis_title="latency (ms)", yaxis_title="queries")
    return fig


def _cdf(go: Any, runs: Sequence[Run]) -> Any | None:
    """Latency CDF (log-scale ms) of each run; summary percentiles when there are no samples."""
    fig = go.Figure()
    drawn = 0
    for i, run in enumerate(runs):
        colour = _COLOURS[i % len(_COLOURS)]
        if run.has_samples:
            x = np.sort(run.samples_ns) / 1e6  # type: ignore[arg-type]
            q = np.linspace(0, 1, min(x.size, 2000))
            xs = np.quantile(x, q)
            fig.add_trace(
                go.Scatter(x=xs.tolist(), y=(100 * q).tolist(), mode="lines", name=run.label,
                           line={"color": colour})
            )  # fmt: skip
            drawn += 1
        else:
            pct = {"min": 0, "p50": 50, "p90": 90, "p95": 95, "p99": 99, "p99_9": 99.9, "max": 100}
            pts = [
                (p, v) for k, p in pct.items() if (v := run.latency_ms.get(k)) is not None and v > 0
            ]
            if pts:
                fig.add_trace(
                    go.Scatter(x=[v for _, v in pts], y=[p for p, _ in pts], mode="lines+markers",
                               name=f"{run.label} (summary percentiles; no raw samples)",
                               line={"color": colour, "dash": "dot"})
                )  # fmt: skip
                drawn += 1
    if not drawn:
        return None
    fig.update_layout(xaxis_title="latency (ms, log scale)", yaxis_title="queries at or below (%)")
    fig.update_xaxes(type="log")
    return fig


def _stages(go: Any, doc: Mapping[str, Any]) -> Any | None:
    stages = doc.get("stages")
    if not isinstance(stages, Mapping):
        return None
    names: list[str] = []
    values: list[float] = []
    for key, label in (("load_ms", "load model"), ("prepare_ms", "prepare (engine)"),
                       ("fake_first_ms", "fake first")):  # fmt: skip
        v = stages.get(key)
        if isinstance(v, (int, float)):
            names.append(label)
            values.append(float(v))
    for i, w in enumerate(stages.get("warmup_ms") or []):
        if isinstance(w, (int, float)):
            names.append(f"warm-up {i}")
            values.append(float(w))
    if not values:
        return None
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color="#1f77b4",
                           text=[f"{v:.2f} ms" for v in values], textposition="auto"))  # fmt: skip
    fig.update_layout(xaxis_title="ms", yaxis={"autorange": "reversed"})
    return fig


def _latency_table(runs: Sequence[Run]) -> Table:
    keys = ("p50", "p90", "p95", "p99", "p99_9", "mean", "max")
    cols = [Column("run", "run"), Column("n", "queries")]
    cols += [Column(k, k.replace("p99_9", "p99.9"), "ms", 4) for k in keys]
    cols += [Column("throughput", "throughput", "samples/s", 1), Column("samples", "raw samples")]
    rows = [
        (r.label, r.n, *(r.latency_ms.get(k) for k in keys), r.throughput,
         "yes" if r.has_samples else "no")
        for r in runs
    ]  # fmt: skip
    return Table("Latency", cols, rows)


def _facts(doc: Mapping[str, Any]) -> str:
    parts = []
    engine = doc.get("engine")
    if isinstance(engine, Mapping):
        parts.append(f"engine {engine.get('name', '?')} {engine.get('version', '')}".strip())
    elif engine:
        parts.append(f"engine {engine}")
    for key in (
        "scenario",
        "device",
        "instances",
        "workers",
        "batch_size",
        "queries",
        "target_qps",
    ):
        if doc.get(key) not in (None, ""):
            parts.append(f"{key.replace('_', ' ')} {doc[key]}")
    validity = doc.get("validity")
    text = _esc(" · ".join(parts))
    if isinstance(validity, Mapping) and not validity.get("valid", True):
        reasons = "; ".join(str(r) for r in validity.get("reasons", []))
        text += f' · <span class="bad">INVALID: {_esc(reasons)}</span>'
    return f'<p class="facts">{text}</p>'


def _bench_section(page: _Page, go: Any, doc: Mapping[str, Any], runs: Sequence[Run]) -> None:
    run = runs[0]
    page.add(f"<h2>bench: {_esc(run.label)} — {_esc(run.model)}</h2>{_facts(doc)}")
    figs = []
    hist = _histogram(go, runs)
    if hist is not None:
        figs.append(page.figure(hist, title="Latency histogram"))
    cdf = _cdf(go, runs)
    if cdf is not None:
        figs.append(page.figure(cdf, title="Latency CDF"))
    stages = _stages(go, doc)
    if stages is not None:
        figs.append(page.figure(stages, title="Stages (load, prepare, warm-up)"))
    page.add('<div class="grid">' + "".join(figs) + "</div>")
    page.add(_table_html(_latency_table(runs)))
    if not run.has_samples:
        page.add('<p class="note">This document has no raw samples (nnperf.bench/1): the CDF is '
                 "drawn through its summary percentiles and no histogram is possible.</p>")  # fmt: skip


def _sweep_section(page: _Page, go: Any, doc: Mapping[str, Any], runs: Sequence[Run]) -> None:
    axis = str(doc.get("axis", "point"))
    page.add(f"<h2>sweep over {_esc(axis)}: {_esc(runs[0].model if runs else '')}</h2>")
    xs = [r.throughput if r.throughput is not None else r.qps for r in runs]
    ys = [r.latency_ms.get("p99") for r in runs]
    labels = [r.label.rpartition("=")[2] for r in runs]
    fig = go.Figure(
        go.Scatter(x=xs, y=ys, mode="lines+markers+text", text=[f"{axis}={v}" for v in labels],
                   textposition="top left", name="p99", marker={"size": 9})
    )  # fmt: skip
    p50 = [r.latency_ms.get("p50") for r in runs]
    fig.add_trace(go.Scatter(x=xs, y=p50, mode="lines+markers", name="p50", line={"dash": "dot"}))
    knee = doc.get("knee")
    if isinstance(knee, Mapping) and knee.get("value") is not None:
        value = str(knee.get("value"))
        for x, y, v in zip(xs, ys, labels):
            if v == value and x is not None and y is not None:
                fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name=f"knee ({axis}={v})",
                                         marker={"size": 16, "symbol": "star", "color": "#d62728"}))  # fmt: skip
        page.add(
            f'<p class="note">knee: {_esc(axis)}={_esc(value)} — {_esc(knee.get("reason", ""))}</p>'
        )
    fig.update_layout(xaxis_title="throughput (samples/s)", yaxis_title="latency (ms)")
    page.add('<div class="grid">' + page.figure(fig, title="Throughput vs p99 latency")
             + (page.figure(c, title="Latency CDF per point") if (c := _cdf(go, runs)) else "")
             + "</div>")  # fmt: skip
    page.add(_table_html(_latency_table(runs)))


def _sidebyside_section(page: _Page, go: Any, doc: Mapping[str, Any], runs: Sequence[Run]) -> None:
    from plotly.subplots import make_subplots

    models = {r.model for r in runs}
    what = "models" if len(models) > 1 else "configurations"
    page.add(
        f"<h2>side by side ({_esc(what)}): {_esc(' vs '.join(r.label.split(': ', 1)[-1] for r in runs))}</h2>"
    )
    page.add(f'<p class="facts">scenario {_esc(doc.get("scenario", ""))} · interleaved rounds; '
             "figures are medians over rounds, ratios against the first row</p>")  # fmt: skip
    names = [r.label.split(": ", 1)[-1] for r in runs]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("throughput (samples/s)", "latency (ms)"))
    colours = [_COLOURS[i % len(_COLOURS)] for i in range(len(runs))]
    fig.add_trace(go.Bar(x=names, y=[r.throughput for r in runs], marker_color=colours,
                         name="samples/s", showlegend=False), row=1, col=1)  # fmt: skip
    fig.add_trace(
        go.Bar(x=names, y=[r.latency_ms.get("p50") for r in runs], name="p50"), row=1, col=2
    )
    fig.add_trace(
        go.Bar(x=names, y=[r.latency_ms.get("p99") for r in runs], name="p99"), row=1, col=2
    )
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="log", row=1, col=2)
    figs = [page.figure(fig, title="Side by side (latency on a log scale)")]
    cdf = _cdf(go, runs)
    if cdf is not None:
        figs.append(page.figure(cdf, title="Latency CDF per row"))
    page.add('<div class="grid">' + "".join(figs) + "</div>")
    rows = [(n, row.get("max_abs_err"), row.get("cosine"), row.get("prepare_ms"))
            for n, row in zip(names, doc.get("rows", []))]  # fmt: skip
    page.add(_table_html(_latency_table(runs)))
    page.add(_table_html(Table("Output agreement with the first row and engine preparation", (
        Column("row"), Column("max_abs_err", "max abs err"), Column("cosine", digits=6),
        Column("prepare_ms", "prepare", "ms", 1)), rows)))  # fmt: skip
    _comparisons(page, runs)


def _comparisons(page: _Page, runs: Sequence[Run]) -> None:
    if len(runs) < 2:
        return
    try:
        from nnperf.report.compare import compare_runs
    except ImportError:  # pragma: no cover - scipy is in the report extra with plotly
        return
    for run in runs[1:]:
        try:
            comp = compare_runs(runs[0], run)
        except MissingDependencyError:
            page.add(
                '<p class="note">install scipy (nnperf[report]) for the noise-aware verdict</p>'
            )
            return
        page.add(f"<h3>{_esc(comp.headline())}</h3>")
        page.add(_table_html(comp.table()))


def _tune_section(page: _Page, go: Any, doc: Mapping[str, Any]) -> None:
    obj = doc.get("objective", {}) if isinstance(doc.get("objective"), Mapping) else {}
    kind = obj.get("kind", "?")
    page.add(f"<h2>tune: {_esc(runs_model(doc))} — objective {_esc(kind)}</h2>")
    page.add(f'<p class="facts">winner {_esc(doc.get("winner"))} · runner-up '
             f'{_esc(doc.get("runner_up"))} · {_esc(doc.get("reason", ""))}</p>')  # fmt: skip
    cands = [c for c in doc.get("candidates", []) if c.get("median") is not None]
    cands.sort(key=lambda c: c["median"], reverse=kind == "throughput")
    unit = "samples/s" if kind == "throughput" else f"p{obj.get('percentile', 50)} ms"
    colours = [_STATUS_COLOURS.get(str(c.get("status", "")).split(" ")[0], "#999") for c in cands]
    errs = [float(c.get("noise", 0.0)) * float(c["median"]) for c in cands]
    fig = go.Figure(go.Bar(
        x=[c["median"] for c in cands], y=[f"{c.get('label')} [{c.get('status')}]" for c in cands],
        orientation="h", marker_color=colours, error_x={"type": "data", "array": errs},
    ))  # fmt: skip
    fig.update_layout(xaxis_title=unit, yaxis={"autorange": "reversed"})
    page.add(page.figure(fig, title=f"Candidates ({unit}; bars: noise ±)"))
    rows = [(c.get("label"), c.get("status"), c.get("runs"), c.get("median"),
             100 * float(c.get("noise", 0.0))) for c in doc.get("candidates", [])]  # fmt: skip
    digits = 1 if kind == "throughput" else 4
    page.add(_table_html(Table("Candidates", (Column("candidate"), Column("status"), Column("runs"),
             Column("median", "median", unit, digits), Column("noise", "noise ±", "%", 1)), rows)))  # fmt: skip


def runs_model(doc: Mapping[str, Any]) -> str:
    model = doc.get("model")
    return str(model.get("name", "")) if isinstance(model, Mapping) else str(model or "")


def _profile_section(page: _Page, go: Any, doc: Mapping[str, Any], runs: Sequence[Run]) -> None:
    page.add(f"<h2>profile: {_esc(runs_model(doc))}</h2>{_facts(doc)}")
    page.add('<p class="facts">latency of record: span mode (no operator recording)</p>')
    figs = []
    hist = _histogram(go, runs)
    if hist is not None:
        figs.append(page.figure(hist, title="Latency histogram (span mode)"))
    cdf = _cdf(go, runs)
    if cdf is not None:
        figs.append(page.figure(cdf, title="Latency CDF (span mode)"))
    ops = [o for o in doc.get("operators", []) if isinstance(o, Mapping)]
    if ops:
        ops = sorted(ops, key=lambda o: float(o.get("total_ns", 0)), reverse=True)[:20]
        fig = go.Figure()
        for cls in ("compute", "external", "copy"):
            sel = [o for o in ops if o.get("op_class") == cls]
            if sel:
                fig.add_trace(go.Bar(
                    x=[100 * float(o.get("share", 0)) for o in sel], y=[str(o.get("op_type")) for o in sel],
                    orientation="h", name=cls, marker_color=_CLASS_COLOURS[cls],
                    text=[f"{float(o.get('mean_ns', 0)) / 1000:.1f} µs × {o.get('count')}" for o in sel],
                ))  # fmt: skip
        fig.update_layout(xaxis_title="share of engine time (%)",
                          yaxis={"categoryorder": "total ascending"})  # fmt: skip
        figs.append(page.figure(fig, title="Operators by type (operator pass)"))
    page.add('<div class="grid">' + "".join(figs) + "</div>")
    op_mode = doc.get("operator_mode")
    if isinstance(op_mode, Mapping):
        s = op_mode.get("summary_ns", {})
        ratio = op_mode.get("inflation_p50")
        page.add(f'<p class="note">operator pass (breakdown only): p50 {float(s.get("median", 0)) / 1000:.1f} µs'
                 + (f" = {float(ratio):.2f}x span mode" if ratio else "")
                 + f"; {_esc(op_mode.get('cost', ''))}</p>")  # fmt: skip
    page.add(_table_html(_latency_table(runs)))
    advice = [a for a in doc.get("advice", []) if isinstance(a, Mapping)]
    page.add("<h3>Advice</h3>")
    if advice:
        page.add("<ul>" + "".join(
            f"<li>{_esc(a.get('finding'))}<br><code>{_esc(a.get('command'))}</code></li>" for a in advice
        ) + "</ul>")  # fmt: skip
    else:
        page.add('<p class="note">nothing stands out</p>')


def _machine_section(page: _Page, machines: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    groups: dict[str, tuple[list[str], Mapping[str, Any]]] = {}
    for source, m in machines:
        key = json.dumps(m, sort_keys=True, default=str)
        groups.setdefault(key, ([], m))[0].append(source)
    rows = []
    for sources, m in groups.values():
        versions = ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items())
        rows.append((", ".join(sources), m.get("cpu"), m.get("cores_available"),
                     " ".join(m.get("cpu_features") or []), m.get("platform"), m.get("python"),
                     versions))  # fmt: skip
    if not rows:
        return
    cols = (Column("documents"), Column("cpu"), Column("cores"), Column("features"),
            Column("platform"), Column("python"), Column("versions"))  # fmt: skip
    note = "" if len(rows) == 1 else (
        '<p class="note bad">The documents come from different machines or versions: compare '
        "their figures with care.</p>"
    )  # fmt: skip
    page.add("<section><h2>Machine and versions</h2>" + _table_html(Table("", cols, rows)) + note
             + "</section>")  # fmt: skip


def build_report(
    docs: Sequence[Mapping[str, Any]],
    *,
    sources: Sequence[str] | None = None,
    title: str | None = None,
) -> str:
    """The report page for ``docs`` (any mix of nnperf documents), as one HTML string.

    Args:
        docs: the documents (from :func:`~nnperf.report.documents.load_document` or a
            ``to_dict()``).
        sources: one label per document (file names); default ``doc 1``, ``doc 2``...
        title: the page title (default: ``nnperf report: <models>``).

    Raises:
        MissingDependencyError: plotly is not installed.
    """
    go = _plotly()
    names = list(sources) if sources is not None else [f"doc {i + 1}" for i in range(len(docs))]
    models = sorted({runs_model(d) for d in docs if runs_model(d)})
    page = _Page(title or f"nnperf report: {', '.join(models) or 'runs'}")
    all_runs: list[Run] = []
    for doc, source in zip(docs, names):
        schema = str(doc.get("schema", ""))
        stem = Path(source).stem if source else None
        runs = runs_of(doc, source=source, label=stem)
        page.add("<section>")
        if schema.startswith("nnperf.bench/"):
            _bench_section(page, go, doc, runs)
        elif schema == "nnperf.sweep/1":
            _sweep_section(page, go, doc, runs)
        elif schema == "nnperf.sidebyside/1":
            _sidebyside_section(page, go, doc, runs)
        elif schema == "nnperf.tune/1":
            _tune_section(page, go, doc)
        elif schema.startswith("nnperf.profile/"):
            _profile_section(page, go, doc, runs)
        page.add("</section>")
        if schema != "nnperf.tune/1":
            all_runs.extend(r for r in runs if r.kind in ("bench", "profile"))
        machine = doc.get("machine")
        if isinstance(machine, Mapping):
            page.machines.append((source, machine))
        for point in doc.get("points", []) if schema == "nnperf.sweep/1" else []:
            if isinstance(point.get("machine"), Mapping):
                page.machines.append((source, point["machine"]))
                break
    if len(all_runs) >= 2:
        page.add("<section><h2>All runs compared</h2>")
        cdf = _cdf(go, all_runs)
        if cdf is not None:
            page.add(page.figure(cdf, title="Latency CDF, every bench and profile run"))
        _comparisons(page, all_runs)
        page.add("</section>")
    _machine_section(page, page.machines)
    return page.html()


def write_report(
    docs: Sequence[Mapping[str, Any] | str | os.PathLike[str]],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """Write the report of ``docs`` (documents or paths to them) to ``path``; return the path."""
    loaded: list[Mapping[str, Any]] = []
    sources: list[str] = []
    for i, d in enumerate(docs):
        if isinstance(d, Mapping):
            loaded.append(d)
            sources.append(
                f"{runs_model(d) or 'run'} ({d.get('schema', '?')})"
                if len(docs) > 1
                else runs_model(d) or f"doc {i + 1}"
            )
        else:
            loaded.append(load_document(d))
            sources.append(str(d))
    out = Path(path)
    out.write_text(build_report(loaded, sources=sources, title=title), encoding="utf-8")
    return out
