"""nnperf's executors under MLPerf LoadGen (the independent harness), Offline scenario.

LoadGen issues every query at once from one thread (``issue_queries``) and times completions
itself, so its samples/s is a figure nnperf did not compute. Systems under test, side by side in
one process on the same sessions' configuration (MobileNetV2, ``cpu(1)*2``), interleaved rounds:

* **raw**: the minimal SUT — two Python threads, each with its own ``InferenceSession``, fed from a
  ``queue.SimpleQueue`` (LoadGen's own overhead and Python's, nothing more);
* **submit**: ``Runner.submit`` per sample with a done-callback (back-pressure at ``max_inflight``:
  the issuing thread blocks and is woken for every freed slot);
* **submit_call**: ``Runner.submit_call`` (no Future), same bound;
* **offer**: ``Runner.offer``: queries past the bound wait outside the runtime and the worker
  that frees a slot admits the next one, so the issuing thread never blocks.

Target (issue 14): nnperf ÷ raw >= 0.98.

    python benchmarks/loadgen.py [--quick] [--model zoo:mobilenetv2] [--seconds 10] [--rounds 3]

Needs ``pip install mlcommons-loadgen``; skips otherwise.
"""

from __future__ import annotations

import argparse
import queue
import re
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from _common import header, interleave, median

import nnperf
from nnperf.bench.inputs import make_feeds
from nnperf.model import load_model


def _loadgen_samples_per_s(
    issue: Callable[[Any], None], samples: int, seconds: float, expected_qps: float
) -> float:
    import mlperf_loadgen as lg

    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.Offline
    settings.mode = lg.TestMode.PerformanceOnly
    settings.offline_expected_qps = expected_qps
    settings.min_duration_ms = int(seconds * 1000)
    settings.min_query_count = 1
    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(samples, samples, lambda _s: None, lambda _s: None)
    with tempfile.TemporaryDirectory() as tmp:
        logs = lg.LogSettings()
        logs.log_output.outdir = tmp
        logs.log_output.copy_summary_to_stdout = False
        lg.StartTestWithLogSettings(sut, qsl, settings, logs)
        text = (Path(tmp) / "mlperf_log_summary.txt").read_text()
    lg.DestroyQSL(qsl)
    lg.DestroySUT(sut)
    found = re.search(r"Samples per second\s*:\s*([0-9.]+)", text)
    if found is None:
        raise RuntimeError(f"LoadGen wrote no samples/s:\n{text[:2000]}")
    return float(found.group(1))


class RawSUT:
    """Two threads with their own sessions, fed from one SimpleQueue."""

    def __init__(self, data: bytes, feed: dict[str, np.ndarray], instances: int) -> None:
        import mlperf_loadgen as lg

        self.lg = lg
        self.feed = feed
        self.q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        self.sessions = [
            ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
            for _ in range(instances)
        ]
        self.threads = [
            threading.Thread(target=self._work, args=(s,), daemon=True) for s in self.sessions
        ]
        for t in self.threads:
            t.start()

    def _work(self, sess: ort.InferenceSession) -> None:
        lg = self.lg
        feed = self.feed
        while True:
            qs = self.q.get()
            if qs is None:
                return
            sess.run(None, feed)
            lg.QuerySamplesComplete([lg.QuerySampleResponse(qs.id, 0, 0)])

    def issue(self, samples: Any) -> None:
        put = self.q.put
        for qs in samples:
            put(qs)

    def close(self) -> None:
        for _ in self.threads:
            self.q.put(None)
        for t in self.threads:
            t.join()


class RunnerSUT:
    """nnperf's Runner behind LoadGen, through one of its three ways in."""

    def __init__(self, model: Any, feed: dict[str, np.ndarray], device: str, how: str) -> None:
        import mlperf_loadgen as lg

        self.lg = lg
        self.feed = feed
        self.how = how
        self.runner = nnperf.create_runner(model, device=device)

    def issue(self, samples: Any) -> None:
        lg = self.lg
        complete = lg.QuerySamplesComplete
        response = lg.QuerySampleResponse
        feed = self.feed
        runner = self.runner
        for qs in samples:
            sample_id = qs.id

            def done(outputs: Any, error: Any, sample_id: int = sample_id) -> None:
                complete([response(sample_id, 0, 0)])

            if self.how == "offer":
                runner.offer(feed, done)
            elif self.how == "submit_call":
                runner.submit_call(feed, done)
            else:
                runner.submit(feed).add_done_callback(
                    lambda _f, sample_id=sample_id: complete([response(sample_id, 0, 0)])
                )

    def close(self) -> None:
        self.runner.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--model", default="zoo:mobilenetv2", help="model (default zoo:mobilenetv2)")
    ap.add_argument("--device", default="cpu(1)*2", help="device (default cpu(1)*2)")
    ap.add_argument("--seconds", type=float, default=10.0, help="LoadGen min duration (default 10)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    args = ap.parse_args()
    if args.quick:
        args.model, args.seconds, args.rounds = "zoo:mnist", 1.0, 1
    print(header(f"MLPerf LoadGen Offline: nnperf executors vs a raw SUT, {args.model}"))
    try:
        import mlperf_loadgen  # noqa: F401
    except ImportError:
        print("mlcommons-loadgen is not installed (pip install mlcommons-loadgen); skipped")
        return
    blob = load_model(args.model)
    instances = len(nnperf.parse_device(args.device).instances)
    with nnperf.create(blob, device="cpu(1)") as probe:
        feed = make_feeds(probe.inputs, batch_size=1, seed=0)
        probe.run(feed)
        import time

        t0 = time.perf_counter()
        for _ in range(20):
            probe.run(feed)
        per_query_s = (time.perf_counter() - t0) / 20
    expected = instances / per_query_s
    samples = 1024

    def measure(make: Callable[[], Any]) -> Callable[[], float]:
        def run() -> float:
            sut = make()
            try:
                return _loadgen_samples_per_s(sut.issue, samples, args.seconds, expected)
            finally:
                sut.close()

        return run

    contenders = {
        "raw": measure(lambda: RawSUT(blob.data, feed, instances)),
        "submit": measure(lambda: RunnerSUT(blob, feed, args.device, "submit")),
        "submit_call": measure(lambda: RunnerSUT(blob, feed, args.device, "submit_call")),
        "offer": measure(lambda: RunnerSUT(blob, feed, args.device, "offer")),
    }
    res = interleave(contenders, args.rounds)
    raw = median(res["raw"])
    print(f"{'SUT':<12} {'samples/s':>10} {'÷ raw':>7}  rounds")
    for name, values in res.items():
        v = median(values)
        print(f"{name:<12} {v:>10.2f} {v / raw:>7.3f}  {[round(x, 1) for x in values]}")
    print("target: nnperf / raw >= 0.98")


if __name__ == "__main__":
    main()
