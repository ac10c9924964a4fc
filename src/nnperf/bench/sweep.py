"""Sweeps: one benchmark per value of one axis (concurrency, batch size, offered load, device),
one row per point, each point with its own validity verdict, and the knee named.

Triton perf_analyzer's ``--concurrency-range`` / ``--request-rate-range``: the knee is where
latency starts to rise faster than throughput — the last point before a step whose p99 grows
by a larger factor than its throughput (samples/s). Past it, more load buys mostly latency.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nnperf.bench.report import CSV_COLUMNS, csv_row
from nnperf.bench.scenarios import BenchResult
from nnperf.errors import InvalidInputError
from nnperf.types import Progress, ProgressFn

__all__ = ["AXES", "SWEEP_SCHEMA", "Knee", "Sweep", "find_knee", "parse_sweep_values", "run_sweep"]

SWEEP_SCHEMA = "nnperf.sweep/1"
AXES = ("concurrency", "batch_size", "target_qps", "device")
"""What a sweep can vary (one at a time)."""

T = TypeVar("T", int, float)


def parse_sweep_values(text: str, kind: type[T], flag: str) -> list[T]:
    """``8``, ``1,2,4`` or ``START:STOP:STEP`` (inclusive) as a list of positive numbers.

    Raises:
        InvalidInputError: an empty item, a non-number, a value <= 0 or a bad range.
    """
    fix = f"expected N, N,N,... or START:STOP:STEP with numbers > 0 (e.g. {flag} 1,2,4)"
    try:
        if ":" in text:
            parts = [kind(p) for p in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if step <= 0 or stop < start:
                raise ValueError
            values: list[T] = []
            v = start
            while v <= stop * (1 + 1e-12):
                values.append(kind(round(v, 9)) if kind is float else v)
                v = kind(v + step)
        else:
            values = [kind(p) for p in text.split(",")]
    except ValueError:
        raise InvalidInputError(f"{flag} {text!r}: {fix}") from None
    if not values or any(v <= 0 for v in values):
        raise InvalidInputError(f"{flag} {text!r}: {fix}")
    return values


@dataclass(frozen=True)
class Knee:
    """Where p99 starts rising faster than throughput.

    Attributes:
        value: the axis value of the last point before that step.
        reason: the step, in words.
    """

    value: Any
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """``{"value", "reason"}``."""
        return {"value": self.value, "reason": self.reason}


def find_knee(points: Sequence[tuple[Any, float, float]], *, axis: str) -> Knee | None:
    """The knee of ``(axis value, throughput, p99)`` points in axis order; ``None`` when no step
    raises p99 by more than it raises throughput."""
    for (v0, t0, p0), (v1, t1, p1) in itertools.pairwise(points):
        if t0 <= 0 or p0 <= 0:
            continue
        tput, lat = t1 / t0, p1 / p0
        if lat > 1.0 and lat > tput:
            return Knee(
                value=v0,
                reason=f"from {axis} {v0} to {v1} throughput rose {tput:.2f}x while p99 rose "
                f"{lat:.2f}x",
            )
    return None


@dataclass(frozen=True)
class Sweep:
    """One benchmark per axis value (``nnperf.sweep/1``)."""

    axis: str
    values: tuple[Any, ...]
    points: tuple[BenchResult, ...]
    knee: Knee | None
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``nnperf.sweep/1`` document: every point a full ``nnperf.bench/2`` document."""
        return {
            "schema": SWEEP_SCHEMA,
            "axis": self.axis,
            "values": list(self.values),
            "points": [p.to_dict() for p in self.points],
            "knee": None if self.knee is None else self.knee.to_dict(),
            "provenance": self.provenance,
        }

    def render(self) -> str:
        """One row per point, the knee, and why invalid points are invalid."""
        first = self.points[0]
        head = (
            f"{self.axis:>12}  {'queries':>8}  {'queries/s':>11}  {'samples/s':>11}  "
            f"{'p50 ms':>9}  {'p99 ms':>9}  {'cpu %':>6}  {'peak MiB':>8}  valid"
        )
        lines = [
            "=" * len(head),
            f"nnperf bench sweep: {first.model['name']}  scenario={first.scenario.value}  "
            f"axis={self.axis} ({len(self.points)} points)",
            "-" * len(head),
            head,
        ]
        for value, r in zip(self.values, self.points):
            p99 = r.latency.percentile_ms(99.0)
            lines.append(
                f"{value!s:>12}  {r.queries:>8}  {r.throughput_qps:>11,.1f}  "
                f"{r.throughput_samples_per_s:>11,.1f}  {r.latency.p50_ms:>9.4f}  "
                + (f"{p99:>9.4f}" if p99 is not None else f"{'n/a':>9}")
                + f"  {r.cpu_percent:>6.0f}  {r.memory.peak_rss_mib:>8.1f}  "
                + ("VALID" if r.validity.valid else "INVALID")
            )
        lines.append("-" * len(head))
        if self.knee is not None:
            lines.append(f"knee: {self.axis} {self.knee.value} ({self.knee.reason})")
        elif self.axis == "device":
            lines.append("knee: none (devices are not an ordered axis)")
        else:
            lines.append("knee: none (p99 never rose faster than throughput)")
        for value, r in zip(self.values, self.points):
            if not r.validity.valid:
                lines.append(f"INVALID at {self.axis} {value}: " + "; ".join(r.validity.reasons))
        lines.append("=" * len(head))
        return "\n".join(lines)

    def render_csv(self) -> str:
        """CSV with the axis as the first column."""
        columns = [self.axis, *(c for c in CSV_COLUMNS if c != self.axis)]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for value, r in zip(self.values, self.points):
            row = csv_row(r)
            writer.writerow({c: value if c == self.axis else row.get(c, "") for c in columns})
        return buf.getvalue()


def run_sweep(
    axis: str,
    values: Sequence[Any],
    point: Callable[[Any], BenchResult],
    *,
    provenance: dict[str, Any],
    progress: ProgressFn | None = None,
) -> Sweep:
    """Measure ``point(value)`` for every value, in order; find the knee.

    A Ctrl-C during a point keeps the points measured so far (the interrupted one marked
    partial) and stops the sweep there.

    Raises:
        InvalidInputError: an unknown axis or no values.
    """
    if axis not in AXES:
        raise InvalidInputError(f"sweep axis: got {axis!r}, expected one of {list(AXES)}")
    if not values:
        raise InvalidInputError(f"sweep over {axis}: no values given")
    points: list[BenchResult] = []
    for i, value in enumerate(values):
        if progress is not None:
            progress(Progress(i, len(values), what=f"{axis} {value}"))
        r = point(value)
        points.append(r)
        if r.partial:
            break
    done = tuple(values[: len(points)])
    knee = None
    if axis != "device":
        knee = find_knee(
            [(v, r.throughput_samples_per_s, r.latency.p99_ms) for v, r in zip(done, points)],
            axis=axis,
        )
    return Sweep(axis=axis, values=done, points=tuple(points), knee=knee, provenance=provenance)
