from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from models import failing_model, fixed_batch_model, identity_model, matmul_model, two_input_model

import nnperf
from nnperf import EngineError, InvalidInputError
from nnperf.device import available_cores


def test_run_accepts_array_list_and_dict():
    with nnperf.create(matmul_model()) as sess:
        x = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
        a = sess.run(x)[0]
        np.testing.assert_array_equal(a, sess.run([x])[0])
        np.testing.assert_array_equal(a, sess.run({"x": x})[0])
        assert a.shape == (2, 8) and (a >= 0).all()


def test_run_with_selects_outputs():
    with nnperf.create(two_input_model()) as sess:
        feed = {
            "a": np.ones((1, 3), np.float32),
            "b": np.ones((1, 3), np.float32),
            "k": np.full((1, 1), 5, np.int64),
        }
        (scaled,) = sess.run_with(["scaled"], feed)
        np.testing.assert_array_equal(scaled, np.full((1, 3), 5, np.float32))
        scaled2, total = sess.run_with(["scaled", "sum"], feed)
        np.testing.assert_array_equal(total, np.full((1, 3), 2, np.float32))
        with pytest.raises(InvalidInputError, match=r"unknown output\(s\) \['nope'\]"):
            sess.run_with(["nope"], feed)


@pytest.mark.parametrize(
    ("feed", "fragment"),
    [
        (
            np.ones((2, 16), np.float64),
            "input 'x': got float64 (2, 16), expected float32 (batch, 16); convert with .astype(np.float32)",
        ),
        (
            np.ones((2, 15), np.float32),
            "input 'x': got float32 (2, 15), expected float32 (batch, 16)",
        ),
        (np.ones(16, np.float32), "expected rank 2, got rank 1"),
        (
            {"X": np.ones((2, 16), np.float32)},
            "unknown input 'X' (did you mean 'x'?); missing input(s) ['x']",
        ),
        ([np.ones((2, 16), np.float32)] * 2, "got 2 input array(s), expected 1"),
        ({"x": [[1.0] * 16]}, "input 'x': got list, expected a numpy array"),
        ("text", "inputs: got str"),
    ],
)
def test_bad_inputs_name_what_was_received_and_expected(feed, fragment):
    with nnperf.create(matmul_model()) as sess:
        with pytest.raises(InvalidInputError) as info:
            sess.run(feed)
        assert fragment in str(info.value)


def test_shared_symbolic_dims_must_agree():
    with nnperf.create(two_input_model()) as sess:
        feed = {
            "a": np.ones((2, 3), np.float32),
            "b": np.ones((3, 3), np.float32),
            "k": np.ones((2, 1), np.int64),
        }
        with pytest.raises(InvalidInputError, match="dimension 'batch' differs"):
            sess.run(feed)
        with pytest.raises(InvalidInputError, match="got one array"):
            sess.run(np.ones((2, 3), np.float32))


def test_engine_failure_is_an_engine_error():
    with nnperf.create(failing_model()) as sess:
        ok = sess.run({"x": np.ones((2, 4), np.float32), "shape": np.array([4, 2], np.int64)})
        assert ok[0].shape == (4, 2)
        with pytest.raises(EngineError, match="onnxruntime run failed"):
            sess.run({"x": np.ones((2, 4), np.float32), "shape": np.array([3, 3], np.int64)})


def test_batch_size_and_summary():
    with nnperf.create(matmul_model(), batch_size=4) as sess:
        assert sess.inputs[0].shape == (4, 16)
        with pytest.raises(InvalidInputError, match=r"expected float32 \(4, 16\)"):
            sess.run(np.ones((2, 16), np.float32))
        text = sess.summary()
        assert "Inputs:" in text and "x: float32 (4, 16)" in text and "Providers:" in text
    with pytest.raises(InvalidInputError, match="fixed leading dimension 1"):
        nnperf.create(fixed_batch_model(), batch_size=2)


def test_closed_session_refuses_runs():
    sess = nnperf.create(identity_model())
    sess.close()
    sess.close()  # idempotent
    with pytest.raises(InvalidInputError, match="session is closed"):
        sess.run(np.ones((1, 4), np.float32))


def test_device_env_and_explicit_precedence(monkeypatch):
    monkeypatch.setenv("NNPERF_DEVICES", "cpu(1)*2")
    with nnperf.create(identity_model()) as sess:
        assert len(sess.instances) == 2
    with nnperf.create(identity_model(), device="cpu(1)") as sess:
        assert len(sess.instances) == 1
    with nnperf.create(identity_model(), config=nnperf.RunConfig(device="cpu(2)")) as sess:
        assert sess.device.instances[0].threads == 2


def test_config_file_path(tmp_path):
    path = tmp_path / "cfg.json"
    nnperf.RunConfig(device="cpu(1)*2").with_options(graph_level="basic").save(path)
    with nnperf.create(matmul_model(), config=str(path)) as sess:
        assert len(sess.instances) == 2 and sess.config.engine_options.graph_level == "basic"


def test_multi_instance_session_is_thread_safe_and_spreads_threads():
    with nnperf.create(matmul_model(), device="cpu(1)*2") as sess:
        rng = np.random.default_rng(3)
        xs = [rng.standard_normal((1, 16)).astype(np.float32) for _ in range(4)]
        expected = [sess.run(x)[0] for x in xs]
        used: set[int] = set()
        bad: list[int] = []

        class Seen:
            def on_run(self, event):
                used.add(event.instance)

        seen = Seen()
        sess.observers.add(seen)
        try:

            def work(i: int) -> None:
                for _ in range(100):
                    if not np.array_equal(sess.run(xs[i])[0], expected[i]):
                        bad.append(i)

            threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            sess.observers.remove(seen)
        assert bad == [] and used == {0, 1}


def test_observer_sees_each_run_with_ordered_timestamps():
    events = []

    class Rec:
        def on_run(self, event):
            events.append(event)

    rec = Rec()
    with nnperf.create(matmul_model()) as sess:
        sess.run(np.ones((3, 16), np.float32))  # no observer: nothing recorded
        sess.observers.add(rec)
        try:
            sess.run(np.ones((3, 16), np.float32))
            with pytest.raises(InvalidInputError):
                sess.run(np.ones((3, 15), np.float32))
        finally:
            sess.observers.remove(rec)
        sess.run(np.ones((3, 16), np.float32))
    assert len(events) == 2
    ok, failed = events
    assert ok.batch == 3 and ok.error is None
    assert ok.submit_ns <= ok.start_ns <= ok.engine_start_ns <= ok.engine_end_ns <= ok.end_ns
    assert failed.error == "InvalidInputError"


def test_runner_submit_and_errors():
    with nnperf.create_runner(matmul_model(), device="cpu(1)*2", workers=3) as runner:
        assert runner.max_inflight == 6
        rng = np.random.default_rng(4)
        xs = [rng.standard_normal((1, 16)).astype(np.float32) for _ in range(200)]
        futures = [runner.submit(x) for x in xs]
        with nnperf.create(matmul_model()) as ref:
            for x, fut in zip(xs, futures):
                np.testing.assert_allclose(fut.result()[0], ref.run(x)[0], rtol=1e-6)
        with pytest.raises(InvalidInputError, match="got float64"):
            runner.submit(np.ones((1, 16)))
        assert runner.run(xs[0])[0].shape == (1, 8)
    with pytest.raises(InvalidInputError, match="runner is closed"):
        runner.submit(xs[0])


def test_runner_engine_errors_arrive_through_the_future():
    with nnperf.create_runner(failing_model()) as runner:
        bad = runner.submit({"x": np.ones((2, 4), np.float32), "shape": np.array([3, 3], np.int64)})
        good = runner.submit(
            {"x": np.ones((2, 4), np.float32), "shape": np.array([8, 1], np.int64)}
        )
        with pytest.raises(EngineError):
            bad.result()
        assert good.result()[0].shape == (8, 1)


def test_runner_max_inflight_env(monkeypatch):
    monkeypatch.setenv("NNPERF_MAX_INFLIGHT", "2")
    with nnperf.create_runner(identity_model()) as runner:
        assert runner.max_inflight == 2
    monkeypatch.setenv("NNPERF_MAX_INFLIGHT", "lots")
    with pytest.raises(InvalidInputError, match="NNPERF_MAX_INFLIGHT='lots'"):
        nnperf.create_runner(identity_model())


def test_runner_close_cancels_or_finishes_pending():
    before = threading.active_count()
    runner = nnperf.create_runner(matmul_model(), workers=1)
    futures = [runner.submit(np.ones((64, 16), np.float32)) for _ in range(4)]
    runner.close()
    assert all(f.done() and not f.cancelled() for f in futures)
    runner2 = nnperf.create_runner(
        matmul_model(), workers=1, config=nnperf.RunConfig(max_inflight=100)
    )
    futures = [runner2.submit(np.ones((256, 16), np.float32)) for _ in range(50)]
    runner2.close(cancel_pending=True)
    assert all(f.done() for f in futures)
    assert any(f.cancelled() for f in futures)
    assert threading.active_count() == before


def test_pinned_device_runs(tmp_path):
    import os

    cores = sorted(os.sched_getaffinity(0))
    with nnperf.create_runner(matmul_model(), device=f"cpu:{cores[0]}") as runner:
        assert runner.run(np.ones((1, 16), np.float32))[0].shape == (1, 8)
    if len(cores) >= 2:
        with nnperf.create(matmul_model(), device=f"cpu:{cores[0]}-{cores[1]}") as sess:
            assert sess.run(np.ones((1, 16), np.float32))[0].shape == (1, 8)


@pytest.mark.skipif(len(available_cores()) < 2, reason="needs two cores")
def test_pinned_device_pins_session_run():
    """Issue 15: device='cpu:1' was not pinned for Session.run (only runner workers were).

    The query runs with the calling thread on the instance's core, seen from another thread
    while it runs; the caller's own affinity is back when run returns.
    """
    from models import deep_matmul_model

    core = available_cores()[-1]
    before = os.sched_getaffinity(0)
    x = np.ones((64, 256), np.float32)
    seen: set[frozenset[int]] = set()
    done = threading.Event()
    tid: list[int] = []
    with nnperf.create(deep_matmul_model(), device=f"cpu:{core}") as sess:

        def work():
            tid.append(threading.get_native_id())
            while not done.is_set():
                sess.run(x)

        t = threading.Thread(target=work)
        t.start()
        while not tid:
            pass
        for _ in range(400):
            try:
                seen.add(frozenset(os.sched_getaffinity(tid[0])))
            except OSError:
                break
        done.set()
        t.join()
        sess.run(x)  # on this thread too: it is not left pinned afterwards
    assert frozenset({core}) in seen
    assert os.sched_getaffinity(0) == before
