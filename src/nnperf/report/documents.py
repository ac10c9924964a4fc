"""Reading nnperf's JSON documents into comparable runs.

Every document nnperf writes names its schema. :func:`runs_of` turns one into :class:`Run` s:

* ``nnperf.bench/1`` and ``/2``: one run (``/2`` carries raw ``samples.latency_ns``; ``/1`` none);
* ``nnperf.sweep/1``: one run per point, labelled by the axis value;
* ``nnperf.sidebyside/1``: one run per row (each row's samples pooled over its rounds);
* ``nnperf.tune/1``: one run per measured candidate (medians of its repeats, no raw samples);
* ``nnperf.profile/1`` and ``/2``: one run (``/2``: span-mode samples).

Older or partial documents are tolerated: a missing figure is ``None``, missing samples mean the
comparison cannot judge noise and says so.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnperf.errors import InvalidInputError

__all__ = ["KNOWN_SCHEMAS", "Run", "load_document", "runs_of"]

KNOWN_SCHEMAS = (
    "nnperf.bench/1",
    "nnperf.bench/2",
    "nnperf.sweep/1",
    "nnperf.sidebyside/1",
    "nnperf.tune/1",
    "nnperf.profile/1",
    "nnperf.profile/2",
)

#: Latency statistics every run offers (ms), in the order reports show them.
LATENCY_KEYS = ("min", "mean", "p50", "p90", "p95", "p99", "p99_9", "max", "stddev")


@dataclass(frozen=True)
class Run:
    """One measured run, whatever document it came from.

    Attributes:
        label: a short name (the file, plus the row / point / candidate within it).
        kind: ``bench``, ``sweep point``, ``side by side``, ``tune candidate`` or ``profile``.
        source: the document's path (or ``""``).
        schema: the document's schema.
        latency_ms: ``min, mean, p50, p90, p95, p99, p99_9, max, stddev`` (``None`` = unknown).
        samples_ns: every measured query's latency in ns, when the document has them.
        throughput: samples (rows) per second, when known.
        qps: queries per second, when known.
        model: model name.
        scenario / workers / batch_size: how it ran, when known.
        valid / reasons: the document's own validity verdict (bench/2), else ``True``/``()``.
        doc: the (sub-)document the run was read from.
    """

    label: str
    kind: str
    source: str
    schema: str
    latency_ms: Mapping[str, float | None]
    samples_ns: np.ndarray | None = None
    throughput: float | None = None
    qps: float | None = None
    model: str = ""
    scenario: str = ""
    workers: int | None = None
    batch_size: int | None = None
    valid: bool = True
    reasons: tuple[str, ...] = ()
    doc: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def has_samples(self) -> bool:
        """Whether raw per-query latencies are available (needed to judge noise)."""
        return self.samples_ns is not None and self.samples_ns.size >= 2

    @property
    def n(self) -> int | None:
        """Measured queries."""
        if self.samples_ns is not None:
            return int(self.samples_ns.size)
        n = self.doc.get("queries") if isinstance(self.doc, Mapping) else None
        return int(n) if isinstance(n, (int, float)) else None


def load_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read one JSON document and check it is an nnperf document.

    Raises:
        InvalidInputError: the file is missing, not JSON, or has no known ``schema``.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"{str(p)!r} does not exist; expected an nnperf JSON document")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(
            f"{str(p)!r} is not JSON ({exc}); expected an nnperf document"
        ) from None
    if not isinstance(data, dict) or data.get("schema") not in KNOWN_SCHEMAS:
        got = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise InvalidInputError(
            f"{str(p)!r}: schema {got!r}, expected one of {', '.join(KNOWN_SCHEMAS)} (the JSON "
            "written by nnperf bench/tune/profile --json)"
        )
    return data


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return None if math.isnan(f) else f


def _latency(block: Mapping[str, Any] | None) -> dict[str, float | None]:
    """bench/1's (``p99.9``) and bench/2's (``p99_9``) latency block in one form."""
    block = block or {}
    out: dict[str, float | None] = {}
    for key in LATENCY_KEYS:
        value = block.get(key)
        if value is None and key == "p99_9":
            value = block.get("p99.9")
        out[key] = _num(value)
    return out


def _stats_from_ns(samples: np.ndarray) -> dict[str, float | None]:
    ms = samples.astype(np.float64) / 1e6
    if ms.size == 0:
        return dict.fromkeys(LATENCY_KEYS)
    p50, p90, p95, p99, p999 = np.percentile(ms, [50, 90, 95, 99, 99.9])
    return {
        "min": float(ms.min()),
        "mean": float(ms.mean()),
        "p50": float(p50),
        "p90": float(p90),
        "p95": float(p95),
        "p99": float(p99),
        "p99_9": float(p999),
        "max": float(ms.max()),
        "stddev": float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
    }


def _samples(doc: Mapping[str, Any]) -> np.ndarray | None:
    block = doc.get("samples")
    if not isinstance(block, Mapping):
        return None
    values = block.get("latency_ns")
    if not isinstance(values, list) or not values:
        return None
    return np.asarray(values, dtype=np.int64)


def _model_name(doc: Mapping[str, Any]) -> str:
    model = doc.get("model")
    if isinstance(model, Mapping):
        return str(model.get("name", ""))
    return str(model or "")


def _bench_run(doc: Mapping[str, Any], label: str, kind: str, source: str) -> Run:
    samples = _samples(doc)
    latency = _latency(doc.get("latency_ms"))
    if samples is not None:  # fill what the summary lacks from the raw samples
        derived = _stats_from_ns(samples)
        latency = {k: v if v is not None else derived[k] for k, v in latency.items()}
    found = doc.get("validity")
    validity: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    return Run(
        label=label,
        kind=kind,
        source=source,
        schema=str(doc.get("schema", "")),
        latency_ms=latency,
        samples_ns=samples,
        throughput=_num(doc.get("throughput_samples_per_s")),
        qps=_num(doc.get("throughput_qps")),
        model=_model_name(doc),
        scenario=str(doc.get("scenario", "")),
        workers=doc.get("workers") if isinstance(doc.get("workers"), int) else None,
        batch_size=doc.get("batch_size") if isinstance(doc.get("batch_size"), int) else None,
        valid=bool(validity.get("valid", True)),
        reasons=tuple(str(r) for r in validity.get("reasons", ())),
        doc=doc,
    )


def _row_run(row: Mapping[str, Any], parent: Mapping[str, Any], source: str, stem: str) -> Run:
    rounds = [r for r in row.get("rounds", []) if isinstance(r, Mapping)]
    samples = _samples(row)
    if samples is None:  # rounds that are bench/2 documents carry their own
        parts = [s for s in (_samples(r) for r in rounds) if s is not None]
        samples = np.concatenate(parts) if parts else None
    if samples is not None:
        latency = _stats_from_ns(samples)
    else:
        latency = dict.fromkeys(LATENCY_KEYS)
        latency["p50"], latency["p99"] = _num(row.get("p50_ms")), _num(row.get("p99_ms"))
    first = rounds[0] if rounds else {}
    qps = [q for q in (_num(r.get("throughput_qps")) for r in rounds) if q is not None]
    model = row.get("model") if isinstance(row.get("model"), Mapping) else parent.get("model")
    return Run(
        label=f"{stem}: {row.get('label', '?')}",
        kind="side by side",
        source=source,
        schema=str(parent.get("schema", "")),
        latency_ms=latency,
        samples_ns=samples,
        throughput=_num(row.get("throughput_samples_per_s")),
        qps=float(np.median(qps)) if qps else None,
        model=_model_name({"model": model}),
        scenario=str(parent.get("scenario", "")),
        workers=first.get("workers") if isinstance(first.get("workers"), int) else None,
        batch_size=first.get("batch_size") if isinstance(first.get("batch_size"), int) else None,
        doc=row,
    )


def _tune_runs(doc: Mapping[str, Any], source: str, stem: str) -> list[Run]:
    runs = []
    for cand in doc.get("candidates", []):
        ms = [m for m in cand.get("measurements", []) if isinstance(m, Mapping)]
        if not ms:
            continue
        latency = dict.fromkeys(LATENCY_KEYS)
        latency["p50"] = float(np.median([m["p50_ms"] for m in ms]))
        latency["p99"] = float(np.median([m["p99_ms"] for m in ms]))
        runs.append(
            Run(
                label=f"{stem}: {cand.get('label', '?')} ({cand.get('status', '')})",
                kind="tune candidate",
                source=source,
                schema=str(doc.get("schema", "")),
                latency_ms=latency,
                throughput=float(np.median([m["samples_per_s"] for m in ms])),
                model=_model_name(doc),
                doc=cand,
            )
        )
    return runs


def _profile_run(doc: Mapping[str, Any], source: str, stem: str) -> Run:
    samples = _samples(doc)
    if samples is not None:
        latency = _stats_from_ns(samples)
    else:
        s = doc.get("summary_ns", {})
        latency = dict.fromkeys(LATENCY_KEYS)
        for key, src in (("min", "min"), ("mean", "mean"), ("p50", "median"), ("p90", "p90"),
                         ("p95", "p95"), ("p99", "p99"), ("p99_9", "p99.9"), ("max", "max")):  # fmt: skip
            value = _num(s.get(src))
            latency[key] = None if value is None else value / 1e6
    return Run(
        label=stem,
        kind="profile",
        source=source,
        schema=str(doc.get("schema", "")),
        latency_ms=latency,
        samples_ns=samples,
        model=_model_name(doc),
        scenario="single-stream",
        workers=1,
        batch_size=doc.get("batch_size") if isinstance(doc.get("batch_size"), int) else None,
        doc=doc,
    )


def _axis_value(point: Mapping[str, Any], axis: str, index: int) -> Any:
    """A sweep point's value on ``axis``: ``axis_value``, the point's own key, or the same key
    in its ``extra`` or ``config``; the point's index when none says."""
    for where in (point, point.get("extra"), point.get("config")):
        if isinstance(where, Mapping):
            for key in ("axis_value", axis):
                if where.get(key) is not None:
                    return where[key]
    return index


def runs_of(doc: Mapping[str, Any], *, source: str = "", label: str | None = None) -> list[Run]:
    """Every run in one document (see the module docstring for each schema).

    Args:
        doc: a document from :func:`load_document` (or built in memory).
        source: where it came from (for labels and reports).
        label: the document's short name (default: the file's stem, else the model name).
    """
    schema = str(doc.get("schema", ""))
    stem = label or (Path(source).stem if source else "") or _model_name(doc) or schema
    if schema.startswith("nnperf.bench/"):
        return [_bench_run(doc, stem, "bench", source)]
    if schema == "nnperf.sweep/1":
        axis = str(doc.get("axis", "point"))
        out = []
        for i, point in enumerate(doc.get("points", [])):
            if not isinstance(point, Mapping):
                continue
            value = _axis_value(point, axis, i)
            out.append(_bench_run(point, f"{stem}: {axis}={value}", "sweep point", source))
        return out
    if schema == "nnperf.sidebyside/1":
        return [_row_run(r, doc, source, stem) for r in doc.get("rows", [])]
    if schema == "nnperf.tune/1":
        return _tune_runs(doc, source, stem)
    if schema.startswith("nnperf.profile/"):
        return [_profile_run(doc, source, stem)]
    raise InvalidInputError(f"schema {schema!r}: expected one of {', '.join(KNOWN_SCHEMAS)}")


def sweep_axis_value(run: Run, index: int) -> Any:
    """The axis value of a sweep point (its label's ``axis=value``), for pairing two sweeps."""
    _, _, value = run.label.rpartition("=")
    return value or index


def flatten(docs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Run]:
    """The runs of several ``(source, doc)`` pairs, in order."""
    return [r for source, doc in docs for r in runs_of(doc, source=source)]
