"""Arrival schedules: when the load generator issues each query.

One schedule serves every system under test (in process or over HTTP): the server scenario's
Poisson process (MLPerf LoadGen's server scenario). Closed-loop scenarios (single-stream,
offline) have no schedule: a query is issued when an earlier one completes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from nnperf.errors import InvalidInputError

__all__ = ["poisson_arrivals"]

_BLOCK = 1024


def poisson_arrivals(target_qps: float, *, seed: int) -> Iterator[int]:
    """Scheduled arrival times of a Poisson process, in ns from the start of the run.

    Gaps are exponential with mean ``1e9 / target_qps`` ns, drawn from
    ``np.random.default_rng(seed)`` (the same seed gives the same schedule).

    Raises:
        InvalidInputError: ``target_qps`` is not a finite number > 0.
    """
    if not (target_qps > 0 and math.isfinite(target_qps)):
        raise InvalidInputError(f"target_qps: got {target_qps!r}, expected a number > 0")
    rng = np.random.default_rng(seed)
    mean_ns = 1e9 / target_qps
    t = 0.0
    while True:
        for gap in rng.exponential(mean_ns, _BLOCK):
            t += gap
            yield int(t)
