"""Queue API (Submitter / Receiver) on the real engine."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from models import failing_model, matmul_model

import nnperf
from nnperf import InvalidInputError, OverloadedError
from nnperf.errors import EngineError
from nnperf.runtime.queue import QueryFailedError, QueueClosedError

ROOT = Path(__file__).resolve().parents[1]


def test_20000_requests_every_context_once_outputs_equal_sync():
    model = matmul_model()
    n = 20_000
    xs = np.random.default_rng(0).standard_normal((n, 1, 16)).astype(np.float32)
    with nnperf.create(model) as sess:
        expected = sess.run(xs.reshape(n, 16))[0]
    before = threading.active_count()
    submitter, receiver = nnperf.create_queue(model, device="cpu(1)*2", workers=4)

    def produce() -> None:
        for i in range(n):
            submitter.submit(xs[i], context=i)
        submitter.close()

    producer = threading.Thread(target=produce)
    producer.start()
    seen = np.zeros(n, dtype=np.int64)
    got = np.empty((n, 8), np.float32)
    for ctx, outputs in receiver:
        seen[ctx] += 1
        got[ctx] = outputs[0][0]
    producer.join()
    assert (seen == 1).all()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(QueueClosedError):
        receiver.recv(timeout_s=0.1)
    receiver.close()
    assert threading.active_count() == before


def test_bad_inputs_fail_alone():
    model = failing_model()
    submitter, receiver = nnperf.create_queue(model, device="cpu(1)*2")
    x = np.ones((2, 4), np.float32)
    good = np.array([4, 2], np.int64)
    bad_engine = np.array([3, 3], np.int64)
    sent = 0
    for i in range(60):
        if i % 10 == 3:
            with pytest.raises(InvalidInputError):
                submitter.submit({"x": x.astype(np.float64), "shape": good}, context=i)
            continue
        submitter.submit({"x": x, "shape": bad_engine if i % 10 == 7 else good}, context=i)
        sent += 1
    submitter.close()
    ok, failed = set(), set()
    while True:
        try:
            ctx, out = receiver.recv(timeout_s=10)
        except QueryFailedError as exc:
            assert isinstance(exc.error, EngineError)
            assert exc.context % 10 == 7
            failed.add(exc.context)
            continue
        except QueueClosedError:
            break
        assert out[0].shape == (4, 2)
        ok.add(ctx)
    assert len(ok) + len(failed) == sent
    assert failed == {i for i in range(60) if i % 10 == 7}
    receiver.close()


def test_recv_timeout_and_submit_timeout():
    submitter, receiver = nnperf.create_queue(
        matmul_model(), device="cpu(1)", input_queue_size=1, output_queue_size=1
    )
    with pytest.raises(TimeoutError):
        receiver.recv(timeout_s=0.05)
    x = np.ones((1, 16), np.float32)
    # max_inflight inside (1 instance + 3) + 1 waiting at the door + 1 finished result waiting
    # for recv: nothing is received, so the next submit has no room.
    room = submitter.runner.max_inflight + 1 + 1
    assert room == 6
    for i in range(room):
        submitter.submit(x, context=i)
    with pytest.raises(OverloadedError):
        submitter.submit(x, context=room, timeout_s=0.2)
    got = {receiver.recv(timeout_s=5)[0] for _ in range(room)}
    assert got == set(range(room))
    with pytest.raises(InvalidInputError, match="input_queue_size"):
        nnperf.create_queue(matmul_model(), input_queue_size=0)
    receiver.close()
    submitter.close()


def test_close_receiver_while_busy_leaves_nothing_behind():
    before = threading.active_count()
    submitter, receiver = nnperf.create_queue(matmul_model(k=256, n=256), device="cpu(1)*2")
    runner = submitter.runner
    x = np.ones((64, 256), np.float32)
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set():
            try:
                submitter.submit(x, context=i)
            except InvalidInputError:
                return
            i += 1

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.05)
    receiver.close()
    stop.set()
    producer.join(5)
    assert not producer.is_alive()
    with pytest.raises(InvalidInputError, match="receiver is closed"):
        submitter.submit(x, context="late")
    # Every in-flight slot came back.
    assert runner._slots._value == runner.max_inflight  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


def test_context_managers_and_allocate():
    submitter, receiver = nnperf.create_queue(matmul_model())
    with submitter, receiver:
        (x,) = submitter.allocate()
        assert x.shape == (1, 16)
        submitter.submit(x, context="a")
        assert receiver.recv(timeout_s=5)[0] == "a"
    with pytest.raises(InvalidInputError):
        submitter.submit(x)


def test_queue_example_runs():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "queue_example.py")],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "received 32 results" in proc.stdout
