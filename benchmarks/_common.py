"""Helpers shared by the benchmark scripts: machine header, interleaved repeats, medians."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from nnperf.bench.machine import machine_info


def header(title: str) -> str:
    """A title line plus machine and versions."""
    m = machine_info()
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    return (
        f"# {title}\n# machine: {m['cpu']}, {m['cores_available']} core(s), {m['platform']}\n"
        f"# python {m['python']}; {versions}"
    )


def interleave(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Call each function once per round, ``repeats`` rounds; collect what each returns.

    The order rotates from round to round (A B C, B C A, C A B, ...), so no contender always runs
    first after a pause or right behind the same neighbour (a fixed order measured the first
    contender systematically slower in optimize.py).
    """
    out: dict[str, list[float]] = {k: [] for k in fns}
    items = list(fns.items())
    for r in range(repeats):
        k = r % len(items) if items else 0
        for name, fn in items[k:] + items[:k]:
            out[name].append(fn())
    return out


def median(values: list[float]) -> float:
    return float(statistics.median(values))
