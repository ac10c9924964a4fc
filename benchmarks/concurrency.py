"""Concurrency APIs side by side: queue / async / sync vs a hand-written threaded onnxruntime loop,
merge batching vs none, pipeline vs one instance.

Run:  .venv/bin/python benchmarks/concurrency.py [--quick] [--repeats N] [--json FILE]

Every configuration runs in this one process, interleaved, ``--repeats`` times; the table shows
medians and ratios. Targets (issue 14), zoo:mnist, same run: queue and async >= 0.95 of the bare
Python floor and >= 0.8 of the hand loop; merge batching with 64 asyncio clients >= 0.7 of the
engine's own batching bound (two sessions alone at the best batch size, rows/s). The last lines
print each target with its measured figure.

Two reference points make the ratios readable:

* the *Python floor* (``floor q`` / ``floor a``): the least any Python queue or asyncio bridge
  can cost, a few lines of SimpleQueue and ``call_soon_threadsafe`` over the same two sessions
  with no validation, bounds or bookkeeping. A query API cannot beat it, so ``q/floor`` and
  ``a/floor`` say how much of the gap to the loop is nnperf's own.
* the *engine's batching gain*: rows/s of the hand loop at the batch cap over rows/s at batch 1
  (two sessions). Merge batching saves per-call costs; it cannot make a row cheaper than the
  engine does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import queue
import statistics
import threading
import time
from collections import deque
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

import nnperf
from nnperf import create_pipeline
from nnperf.runtime import AsyncRunner, create_queue
from nnperf.zoo import model_bytes


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu}, {cores} cores | python {platform.python_version()} | onnxruntime "
        f"{ort.__version__} | onnx {onnx.__version__} | numpy {np.__version__} | nnperf "
        f"{nnperf.__version__}"
    )


def feeds_for(name: str, n: int) -> list[dict[str, np.ndarray]]:
    """``n`` distinct batch-1 feeds for a zoo model."""
    rng = np.random.default_rng(0)
    sess = nnperf.create(f"zoo:{name}", device="cpu(1)")
    out = []
    for _ in range(min(n, 16)):
        feed = {}
        for d in sess.inputs:
            shape = [1, *[s if isinstance(s, int) else 1 for s in d.shape[1:]]]
            if d.dtype == "int64":
                feed[d.name] = rng.integers(0, 1000, size=shape, dtype=np.int64)
            else:
                feed[d.name] = rng.standard_normal(shape).astype(d.dtype)
        out.append(feed)
    sess.close()
    return [out[i % len(out)] for i in range(n)]


# -- the configurations (each returns queries per second) ----------------------------------------
def hand_loop(
    data: bytes, feeds: list[dict[str, np.ndarray]], sessions: int, threads: int
) -> float:
    """``sessions`` InferenceSessions x ``threads`` intra-op threads, one Python thread each."""
    sess = _sessions(data, sessions, threads)
    for s in sess:
        s.run(None, feeds[0])
    share = [feeds[i::sessions] for i in range(sessions)]

    def loop(s: ort.InferenceSession, part: list[dict[str, np.ndarray]]) -> None:
        for f in part:
            s.run(None, f)

    ts = [threading.Thread(target=loop, args=(s, p)) for s, p in zip(sess, share)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return len(feeds) / (time.perf_counter() - t0)


def nnperf_sync(data: bytes, feeds: list[dict[str, np.ndarray]]) -> float:
    """Two caller threads on one Session with two 1-thread instances."""
    sess = nnperf.create(data, device="cpu(1)*2")
    for f in feeds[:2]:
        sess.run(f)
    share = [feeds[0::2], feeds[1::2]]

    def loop(part: list[dict[str, np.ndarray]]) -> None:
        for f in part:
            sess.run(f)

    ts = [threading.Thread(target=loop, args=(p,)) for p in share]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    qps = len(feeds) / (time.perf_counter() - t0)
    sess.close()
    return qps


def nnperf_queue(data: bytes, feeds: list[dict[str, np.ndarray]]) -> float:
    submitter, receiver = create_queue(data, device="cpu(1)*2")
    submitter.submit(feeds[0], context=-1)
    receiver.recv()

    def produce() -> None:
        for i, f in enumerate(feeds):
            submitter.submit(f, context=i)
        submitter.close()

    t0 = time.perf_counter()
    producer = threading.Thread(target=produce)
    producer.start()
    n = sum(1 for _ in receiver)
    qps = n / (time.perf_counter() - t0)
    producer.join()
    receiver.close()
    return qps


def nnperf_async(data: bytes, feeds: list[dict[str, np.ndarray]]) -> float:
    async def main() -> float:
        async with AsyncRunner(data, device="cpu(1)*2") as runner:
            await runner.run(feeds[0])
            t0 = time.perf_counter()
            await asyncio.gather(*(runner.run(f) for f in feeds))
            return len(feeds) / (time.perf_counter() - t0)

    return asyncio.run(main())


def clients_async(
    data: bytes, feeds: list[dict[str, np.ndarray]], clients: int, **kw: Any
) -> tuple[float, float]:
    """``clients`` coroutines, each sending its share of single-sample queries back to back."""

    async def main() -> tuple[float, float]:
        async with AsyncRunner(data, device="cpu(1)*2", **kw) as runner:
            for f in feeds[:clients]:
                await runner.run(f)

            async def client(part: list[dict[str, np.ndarray]]) -> None:
                for f in part:
                    await runner.run(f)

            stats = getattr(runner.backend, "reset_stats", None)
            if stats is not None:
                stats()
            t0 = time.perf_counter()
            await asyncio.gather(*(client(feeds[i::clients]) for i in range(clients)))
            qps = len(feeds) / (time.perf_counter() - t0)
            mean = runner.backend.stats().mean_batch_size if kw else 1.0  # type: ignore[attr-defined]
            return qps, mean

    return asyncio.run(main())


def _sessions(data: bytes, n: int, threads: int = 1) -> list[ort.InferenceSession]:
    """``n`` plain InferenceSessions with ``threads`` intra-op threads each."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return [ort.InferenceSession(data, so, providers=["CPUExecutionProvider"]) for _ in range(n)]


def floor_queue(data: bytes, feeds: list[dict[str, np.ndarray]]) -> float:
    """The Python floor of a queue API: producer thread -> SimpleQueue -> 2 workers -> SimpleQueue."""
    sess = _sessions(data, 2)
    inq: queue.SimpleQueue[Any] = queue.SimpleQueue()
    outq: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def work(s: ort.InferenceSession) -> None:
        while (job := inq.get()) is not None:
            outq.put((job[1], s.run(None, job[0])))

    workers = [threading.Thread(target=work, args=(s,)) for s in sess]
    for t in workers:
        t.start()
    inq.put((feeds[0], -1))
    inq.put((feeds[0], -1))
    outq.get()
    outq.get()
    t0 = time.perf_counter()
    producer = threading.Thread(target=lambda: [inq.put((f, i)) for i, f in enumerate(feeds)])
    producer.start()
    for _ in feeds:
        outq.get()
    qps = len(feeds) / (time.perf_counter() - t0)
    producer.join()
    for _ in workers:
        inq.put(None)
    for t in workers:
        t.join()
    return qps


def floor_async(data: bytes, feeds: list[dict[str, np.ndarray]], clients: int = 0) -> float:
    """The Python floor of an asyncio API: futures completed in groups by two worker threads.

    ``clients=0`` gathers one coroutine per query (as ``nnperf_async``); otherwise ``clients``
    coroutines send their share back to back (as ``clients_async``).
    """
    sess = _sessions(data, 2)
    inq: queue.SimpleQueue[Any] = queue.SimpleQueue()
    done: deque[tuple[asyncio.Future[Any], Any]] = deque()
    state = {"wake": False}
    holder: dict[str, asyncio.AbstractEventLoop] = {}

    def drain() -> None:
        state["wake"] = False
        while done:
            fut, out = done.popleft()
            fut.set_result(out)

    def work(s: ort.InferenceSession) -> None:
        while (job := inq.get()) is not None:
            done.append((job[1], s.run(None, job[0])))
            if not state["wake"]:
                state["wake"] = True
                holder["loop"].call_soon_threadsafe(drain)

    workers = [threading.Thread(target=work, args=(s,)) for s in sess]

    async def main() -> float:
        loop = holder["loop"] = asyncio.get_running_loop()
        for t in workers:
            t.start()

        async def one(f: dict[str, np.ndarray]) -> Any:
            fut = loop.create_future()
            inq.put((f, fut))
            return await fut

        async def client(part: list[dict[str, np.ndarray]]) -> None:
            for f in part:
                await one(f)

        await one(feeds[0])
        t0 = time.perf_counter()
        if clients:
            await asyncio.gather(*(client(feeds[i::clients]) for i in range(clients)))
        else:
            await asyncio.gather(*(one(f) for f in feeds))
        return len(feeds) / (time.perf_counter() - t0)

    qps = asyncio.run(main())
    for _ in workers:
        inq.put(None)
    for t in workers:
        t.join()
    return qps


def batched_rows_per_s(data: bytes, rows: int, seconds: float = 0.3) -> float:
    """Rows/s of two 1-thread sessions, one Python thread each, at a fixed batch size."""
    sess = _sessions(data, 2)
    name = sess[0].get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((rows, 1, 28, 28)).astype(np.float32)
    for s in sess:
        s.run(None, {name: x})
    counts = [0, 0]
    stop = time.perf_counter() + seconds

    def loop(i: int) -> None:
        while time.perf_counter() < stop:
            sess[i].run(None, {name: x})
            counts[i] += rows

    t0 = time.perf_counter()
    ts = [threading.Thread(target=loop, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def pipeline_qps(data: bytes, feeds: list[dict[str, np.ndarray]], stages: int) -> float:
    with create_pipeline(data, stages=stages, device=f"cpu(1)*{stages}") as pipe:
        pipe.run(feeds[0])
        t0 = time.perf_counter()
        futures = [pipe.submit(f) for f in feeds]
        for fu in futures:
            fu.result()
        return len(feeds) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run (default off)")
    ap.add_argument(
        "--repeats", type=int, default=None, help="rounds per configuration (default 5, quick 1)"
    )
    ap.add_argument("--models", default=None, help="comma-separated zoo names (default: 4 models)")
    ap.add_argument("--json", default=None, help="write the figures as JSON to this file")
    args = ap.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 5)
    models = (
        args.models
        or ("mnist,mobilenetv2" if args.quick else "mnist,mobilenetv2,bert-tiny,resnet50")
    ).split(",")
    queries = {"mnist": 3000, "mobilenetv2": 300, "bert-tiny": 300, "resnet50": 40}
    if args.quick:
        queries = {k: max(8, v // 10) for k, v in queries.items()}
    print(machine())
    print(f"repeats {repeats}; medians of queries/s; ratios against the best hand-written loop\n")
    report: dict[str, Any] = {"machine": machine(), "repeats": repeats, "models": {}}
    cols = ["loop 2x1", "loop 1x2", "sync", "queue", "async", "floor q", "floor a"]
    ratios = ["s/best", "q/best", "a/best", "q/floor", "a/floor"]
    print(
        f"{'model':<12} {'queries':>7} "
        + " ".join(f"{c:>9}" for c in cols)
        + " "
        + " ".join(f"{r:>7}" for r in ratios)
    )
    for name in models:
        data = model_bytes(name)
        feeds = feeds_for(name, queries.get(name, 200))
        res: dict[str, list[float]] = {}
        for _ in range(repeats):
            res.setdefault("loop 2x1", []).append(hand_loop(data, feeds, 2, 1))
            res.setdefault("loop 1x2", []).append(hand_loop(data, feeds, 1, 2))
            res.setdefault("sync", []).append(nnperf_sync(data, feeds))
            res.setdefault("queue", []).append(nnperf_queue(data, feeds))
            res.setdefault("async", []).append(nnperf_async(data, feeds))
            res.setdefault("floor q", []).append(floor_queue(data, feeds))
            res.setdefault("floor a", []).append(floor_async(data, feeds))
        med = {k: statistics.median(v) for k, v in res.items()}
        best = max(med["loop 2x1"], med["loop 1x2"])
        row = {
            **med,
            "s/best": med["sync"] / best,
            "q/best": med["queue"] / best,
            "a/best": med["async"] / best,
            "q/floor": med["queue"] / med["floor q"],
            "a/floor": med["async"] / med["floor a"],
        }
        report["models"][name] = row
        print(
            f"{name:<12} {len(feeds):>7} "
            + " ".join(f"{med[c]:>9.1f}" for c in cols)
            + " "
            + " ".join(f"{row[r]:>7.3f}" for r in ratios)
        )

    # merge batching: 64 single-sample asyncio clients on mnist, over a few batch-size caps,
    # against the same clients unbatched and against the engine's own gain from batching
    n = 2000 if args.quick else 12800
    feeds = feeds_for("mnist", n)
    data = model_bytes("mnist")
    caps = (8, 16, 32, 64)
    res = {}
    means: dict[int, list[float]] = {c: [] for c in caps}
    for _ in range(repeats):
        res.setdefault("unbatched", []).append(clients_async(data, feeds, 64)[0])
        res.setdefault("floor_unbatched", []).append(floor_async(data, feeds, 64))
        res.setdefault("engine_1", []).append(batched_rows_per_s(data, 1))
        for cap in caps:
            qps, mean = clients_async(data, feeds, 64, max_batch_size=cap, max_delay_ms=2.0)
            res.setdefault(f"batched_{cap}", []).append(qps)
            res.setdefault(f"engine_{cap}", []).append(batched_rows_per_s(data, cap))
            means[cap].append(mean)
    med = {k: statistics.median(v) for k, v in res.items()}
    report["merge"] = {**med, "queries": n}
    print(
        f"\nmerge batching, zoo:mnist, 64 asyncio clients x batch 1, {n} queries: unbatched "
        f"{med['unbatched']:.0f}/s (Python floor {med['floor_unbatched']:.0f}/s); engine alone at "
        f"batch 1: {med['engine_1']:.0f} rows/s"
    )
    for cap in caps:
        ratio = med[f"batched_{cap}"] / med["unbatched"]
        gain = med[f"engine_{cap}"] / med["engine_1"]
        ceiling = med[f"engine_{cap}"] / med["unbatched"]
        report["merge"][f"ratio_{cap}"] = ratio
        report["merge"][f"engine_gain_{cap}"] = gain
        report["merge"][f"ceiling_{cap}"] = ceiling
        print(
            f"  max batch {cap:>3}, 2 ms: {med[f'batched_{cap}']:.0f}/s, ratio {ratio:.2f} "
            f"(mean batch {statistics.median(means[cap]):.1f}); engine alone at batch {cap}: "
            f"{med[f'engine_{cap}']:.0f} rows/s ({gain:.2f}x batch 1), so no batcher can pass "
            f"{ceiling:.2f}x unbatched here"
        )

    best_cap = max(caps, key=lambda c: med[f"batched_{c}"])
    bound = max(med[f"engine_{c}"] for c in caps)
    report["merge"]["of_engine_bound"] = med[f"batched_{best_cap}"] / bound
    print(
        f"  best: max batch {best_cap}, {med[f'batched_{best_cap}']:.0f}/s = "
        f"{report['merge']['of_engine_bound']:.2f} of the engine's bound {bound:.0f} rows/s"
    )

    # pipeline vs one instance and vs two data-parallel instances
    pname = "mobilenetv2"
    feeds = feeds_for(pname, 30 if args.quick else 300)
    data = model_bytes(pname)
    res = {}
    for _ in range(repeats):
        res.setdefault("single_1x1", []).append(hand_loop(data, feeds, 1, 1))
        res.setdefault("pipeline_2", []).append(pipeline_qps(data, feeds, 2))
        res.setdefault("data_parallel_2x1", []).append(hand_loop(data, feeds, 2, 1))
    med = {k: statistics.median(v) for k, v in res.items()}
    report["pipeline"] = {**med, "model": pname}
    print(
        f"pipeline, zoo:{pname}: one 1-thread instance {med['single_1x1']:.1f}/s, 2 stages "
        f"{med['pipeline_2']:.1f}/s ({med['pipeline_2'] / med['single_1x1']:.2f}x), 2 data-parallel "
        f"instances {med['data_parallel_2x1']:.1f}/s ({med['data_parallel_2x1'] / med['single_1x1']:.2f}x)"
    )
    if "mnist" in report["models"]:
        m = report["models"]["mnist"]
        print("\ntargets on zoo:mnist (issue 14):")
        for label, value, target in (
            ("queue / Python floor", m["q/floor"], 0.95),
            ("async / Python floor", m["a/floor"], 0.95),
            ("queue / hand loop", m["q/best"], 0.8),
            ("async / hand loop", m["a/best"], 0.8),
            ("merge / engine bound", report["merge"]["of_engine_bound"], 0.7),
        ):
            verdict = "met" if value >= target else "missed"
            print(f"  {label:<22} {value:.3f}  (target >= {target}: {verdict})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
