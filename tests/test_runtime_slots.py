"""Slots: the in-flight bound's semaphore, and its wake-up hysteresis for bulk issuers."""

from __future__ import annotations

import threading
import time

import pytest

from nnperf.runtime.runner import Slots


def _taker(slots: Slots, timeout: float | None = None) -> tuple[threading.Thread, list[bool]]:
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(slots.acquire(timeout=timeout)), daemon=True)
    t.start()
    return t, got


def _wait_until(cond, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def test_plain_slots_wake_a_blocked_taker_per_release():
    slots = Slots(2)
    assert slots.acquire() and slots.acquire() and not slots.acquire(blocking=False)
    t, got = _taker(slots)
    slots.release()
    t.join(5)
    assert got == [True] and slots.free() == 0


def test_a_blocked_taker_sleeps_until_a_batch_is_free():
    slots = Slots(4, wake_batch=3)
    for _ in range(4):
        assert slots.acquire()
    t, got = _taker(slots)
    _wait_until(lambda: slots._waiters == 1)
    slots.release()
    slots.release()
    time.sleep(0.05)
    assert got == [] and slots.free() == 2  # two free: still asleep
    slots.release()
    t.join(5)
    assert got == [True] and slots.free() == 2  # woken at three, took one


def test_fast_path_takes_a_free_slot_without_waiting_for_a_batch():
    slots = Slots(4, wake_batch=3)
    for _ in range(4):
        slots.acquire()
    slots.release()
    t0 = time.monotonic()
    assert slots.acquire(timeout=5)
    assert time.monotonic() - t0 < 1.0


def test_at_the_deadline_a_batched_taker_takes_any_free_slot_or_fails():
    slots = Slots(4, wake_batch=3)
    for _ in range(4):
        slots.acquire()
    assert slots.acquire(timeout=0.05) is False  # none free at all
    t, got = _taker(slots, timeout=0.2)
    _wait_until(lambda: slots._waiters == 1)
    slots.release()  # one free, below the batch
    t.join(5)
    assert got == [True] and slots.free() == 0


def test_every_blocked_taker_gets_a_slot_as_queries_finish():
    slots = Slots(3, wake_batch=2)
    for _ in range(3):
        slots.acquire()
    takers = [_taker(slots) for _ in range(3)]
    _wait_until(lambda: slots._waiters == 3)
    for _ in range(3):  # the three queries inside finish
        slots.release()
    _wait_until(lambda: sum(len(got) for _, got in takers) >= 2)
    for _ in range(2):  # so do the two queries the first takers let in
        slots.release()
    for t, _ in takers:
        t.join(5)
    assert all(got == [True] for _, got in takers)


@pytest.mark.parametrize("batch", [0, 1, 9])
def test_wake_batch_is_clamped_to_the_limit(batch):
    assert Slots(4, wake_batch=batch).wake_batch == max(1, min(batch, 4))
