"""The merge-batching policy: when to send a batch and how many rows, as pure functions.

Both of :class:`~nnperf.runtime.batcher.DynamicBatcher`'s paths (the batcher thread behind
``submit`` and the event loop behind ``submit_async``) ask :func:`plan_batch` the same question
with integers and a clock, so the rule is written once and tested without a model:

* a full batch (``send_rows`` rows waiting, the largest preferred size or ``max_batch_size``)
  goes at once;
* otherwise the oldest query waits up to ``delay_ns`` for others;
* once its delay has passed, a batch still grows while the runtime is full and one of this
  batcher's batches is in flight (Triton's behaviour: under load batches grow instead of queueing
  small ones behind a busy engine); when a slot frees or nothing of ours is in flight, it goes.
* at close, whatever waits goes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol, TypeVar

__all__ = ["BatchPlan", "Rows", "plan_batch", "row_limit", "take_batch"]


class Rows(Protocol):
    """A waiting query: all the policy needs is how many rows it carries."""

    @property
    def rows(self) -> int:
        """Rows on dim 0."""
        ...


_R = TypeVar("_R", bound=Rows)


@dataclass(frozen=True)
class BatchPlan:
    """What to do now.

    Attributes:
        send: send a batch now (of at most :func:`row_limit` rows).
        wait_ns: when not sending: how long until the policy should be asked again (the oldest
            query's delay runs out), or ``None``: until something changes (a query arrives, a
            batch comes back, a slot frees).
    """

    send: bool
    wait_ns: int | None = None


def plan_batch(
    pending_rows: int,
    oldest_arrival_ns: int,
    now_ns: int,
    *,
    send_rows: int,
    delay_ns: int,
    runtime_full: bool,
    inflight: int,
    closing: bool = False,
) -> BatchPlan:
    """Send now, or wait how long.

    Args:
        pending_rows: rows waiting (0: nothing to send).
        oldest_arrival_ns: when the oldest waiting query arrived (same clock as ``now_ns``).
        now_ns: the clock now.
        send_rows: rows that make a full batch.
        delay_ns: the longest the oldest query waits for others.
        runtime_full: no in-flight slot of the runtime is free.
        inflight: this batcher's batches sent and not yet back.
        closing: the batcher is closing: everything waiting goes.
    """
    if pending_rows <= 0:
        return BatchPlan(False, None)
    if pending_rows >= send_rows or closing:
        return BatchPlan(True)
    wait_ns = oldest_arrival_ns + delay_ns - now_ns
    if wait_ns > 0:
        return BatchPlan(False, wait_ns)
    if runtime_full and inflight > 0:
        return BatchPlan(False, None)  # grow until one of ours comes back
    return BatchPlan(True)


def row_limit(pending_rows: int, max_rows: int, preferred: tuple[int, ...]) -> int:
    """Rows the next batch may take: ``max_rows``, cut to the largest preferred size that fits
    when fewer than ``max_rows`` are waiting."""
    if preferred and pending_rows < max_rows:
        fitting = [p for p in preferred if p <= pending_rows]
        if fitting:
            return fitting[-1]
    return max_rows


def take_batch(
    pending: deque[_R], pending_rows: int, max_rows: int, preferred: tuple[int, ...]
) -> tuple[list[_R], int]:
    """Pop the next batch's queries from ``pending`` (whole queries, in arrival order, up to
    :func:`row_limit` rows); returns them and their row count."""
    limit = row_limit(pending_rows, max_rows, preferred)
    batch: list[_R] = []
    rows = 0
    while pending and rows + pending[0].rows <= limit:
        req = pending.popleft()
        rows += req.rows
        batch.append(req)
    return batch, rows
