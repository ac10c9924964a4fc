"""The merge-batching policy as pure functions: integers and a clock, no model."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from nnperf.runtime.merge import BatchPlan, plan_batch, row_limit, take_batch

MS = 1_000_000


def _plan(rows: int, *, age_ms: float, full: bool = False, inflight: int = 0, closing=False):
    now = 10_000 * MS
    return plan_batch(
        rows,
        now - int(age_ms * MS),
        now,
        send_rows=8,
        delay_ns=2 * MS,
        runtime_full=full,
        inflight=inflight,
        closing=closing,
    )


def test_nothing_waiting_waits_for_a_query():
    assert _plan(0, age_ms=5) == BatchPlan(False, None)


def test_a_full_batch_goes_at_once_even_young_and_with_the_runtime_full():
    assert _plan(8, age_ms=0).send
    assert _plan(9, age_ms=0, full=True, inflight=3).send


def test_a_young_partial_batch_waits_for_the_rest_of_its_delay():
    plan = _plan(3, age_ms=0.5)
    assert not plan.send and plan.wait_ns == int(1.5 * MS)


def test_past_its_delay_a_partial_batch_goes_when_a_slot_is_free():
    assert _plan(3, age_ms=2).send
    assert _plan(3, age_ms=5, full=False, inflight=4).send


def test_past_its_delay_it_grows_while_the_runtime_is_full_with_one_of_ours_in_flight():
    assert _plan(3, age_ms=5, full=True, inflight=1) == BatchPlan(False, None)
    # full because of others only: nothing of ours will come back to wake us, so it goes
    assert _plan(3, age_ms=5, full=True, inflight=0).send


def test_closing_sends_whatever_waits():
    assert _plan(1, age_ms=0, full=True, inflight=2, closing=True).send


@dataclass
class Q:
    rows: int


def test_take_batch_keeps_whole_queries_in_arrival_order():
    pending = deque([Q(3), Q(3), Q(3)])
    batch, rows = take_batch(pending, 9, 8, ())
    assert [q.rows for q in batch] == [3, 3] and rows == 6 and len(pending) == 1


def test_preferred_sizes_cut_a_partial_batch_to_the_largest_that_fits():
    assert row_limit(7, 16, (2, 4, 8)) == 4
    assert row_limit(16, 16, (2, 4, 8)) == 16  # enough waiting: the maximum
    assert row_limit(1, 16, (2, 4)) == 16  # nothing preferred fits: everything waiting goes
    pending = deque([Q(1) for _ in range(7)])
    batch, rows = take_batch(pending, 7, 16, (2, 4, 8))
    assert rows == 4 and len(pending) == 3
