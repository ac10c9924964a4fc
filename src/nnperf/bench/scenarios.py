"""``run_benchmark``: the load generator behind ``nnperf bench``.

The load generator owns timing and traffic (MLPerf LoadGen's split); the system under test only
answers queries. Scenarios:

* ``single-stream``: one query in flight; latency of each, back to back.
* ``offline``: every worker busy; throughput. Each worker is a host thread running queries in a
  loop on its instance (threads are spread over instances round robin).
* ``server``: queries arrive as a Poisson process at ``target_qps``; each query's latency runs
  from its *scheduled* arrival, so a backlog shows up as latency (no coordinated omission).

Both ``queries`` and ``duration_s`` are minimums: a run stops once it has done at least that many
queries *and* run at least that long (furiosa-bench's ``-n`` and ``--duration``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from nnperf.bench.drivers import APIS, StopCondition, drive, watch_progress
from nnperf.bench.inputs import make_feeds
from nnperf.bench.machine import machine_info
from nnperf.bench.stats import LatencyStats
from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError
from nnperf.model import ModelSource
from nnperf.runtime.batching import DynamicBatcher
from nnperf.runtime.executor import Executor
from nnperf.runtime.observers import RunEvent
from nnperf.runtime.runner import Runner
from nnperf.runtime.session import Session, resolve_config
from nnperf.types import concrete_shape

__all__ = ["BENCH_SCHEMA", "OFFLINE_ASYNC_CLIENTS", "BenchResult", "Scenario", "run_benchmark"]

OFFLINE_ASYNC_CLIENTS = 64
"""Coroutines the offline scenario runs through ``api="async"`` by default. Queries past the
runtime's in-flight limit wait outside it at no cost, and enough waiting coroutines hide the event
loop's round trip (zoo:mnist on cpu(1)*2: 16 k queries/s with 5 clients, 30 k with 64)."""

BENCH_SCHEMA = "nnperf.bench/1"
ProgressFn = Callable[[int, int, float, float], None]
"""progress(done_queries, min_queries, elapsed_s, min_duration_s)."""


class Scenario(str, Enum):
    """Traffic patterns (MLPerf LoadGen's names)."""

    SINGLE_STREAM = "single-stream"
    OFFLINE = "offline"
    SERVER = "server"

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class BenchResult:
    """Everything one benchmark measured; ``to_dict`` is the ``nnperf.bench/1`` JSON.

    Attributes:
        model: name, path and sha256 of the model.
        engine: engine name, version, providers in use and what it reported about loading.
        machine: CPU, cores, platform, versions.
        config: the RunConfig used.
        scenario: traffic pattern.
        workers: host threads issuing queries.
        batch_size: rows per query.
        stages_ms: load, prepare, fake_first (or None) and each warm-up iteration, in ms.
        latency: per-query latency statistics.
        queries: measured queries (warm-up excluded).
        errors: queries that failed.
        duration_s: wall time of the measured phase.
        throughput_qps: queries per second.
        utilization: engine-busy time ÷ (wall time × instances), 0..1.
        target_qps: the server scenario's offered load, else None.
        device: the device that ran (a pipeline's stage instances, not the session's device).
        instances: engine instances that ran.
    """

    model: dict[str, Any]
    engine: dict[str, Any]
    machine: dict[str, Any]
    config: RunConfig
    scenario: Scenario
    workers: int
    batch_size: int
    stages_ms: dict[str, Any]
    latency: LatencyStats
    queries: int
    errors: int
    duration_s: float
    throughput_qps: float
    utilization: float
    target_qps: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    device: str = ""
    instances: int = 1

    @property
    def throughput_samples_per_s(self) -> float:
        """Samples (rows) per second: QPS × batch size."""
        return self.throughput_qps * self.batch_size

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON form (DESIGN.md §3)."""
        return {
            "schema": BENCH_SCHEMA,
            "model": self.model,
            "engine": self.engine,
            "machine": self.machine,
            "config": self.config.to_dict(),
            "scenario": self.scenario.value,
            "workers": self.workers,
            "batch_size": self.batch_size,
            "stages": self.stages_ms,
            "latency_ms": self.latency.to_dict(),
            "throughput_qps": round(self.throughput_qps, 4),
            "throughput_samples_per_s": round(self.throughput_samples_per_s, 4),
            "queries": self.queries,
            "errors": self.errors,
            "duration_s": round(self.duration_s, 6),
            "utilization": round(self.utilization, 4),
            "target_qps": self.target_qps,
            "device": self.device,
            "instances": self.instances,
            **({"extra": self.extra} if self.extra else {}),
        }


class _EngineBusy:
    """Observer summing engine time (for utilisation) and counting failures."""

    def __init__(self) -> None:
        self.busy_ns = 0
        self.errors = 0
        self._lock = threading.Lock()

    def add(self, busy_ns: int) -> None:
        with self._lock:
            self.busy_ns += busy_ns

    def on_run(self, event: RunEvent) -> None:
        with self._lock:
            self.busy_ns += event.engine_end_ns - event.engine_start_ns
            if event.error is not None:
                self.errors += 1


def run_benchmark(
    model: ModelSource,
    *,
    scenario: Scenario | str = Scenario.SINGLE_STREAM,
    device: str | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    config: RunConfig | str | None = None,
    queries: int = 100,
    duration_s: float = 0.0,
    warmup_iters: int = 3,
    fake_first: bool = False,
    inputs: Mapping[str, str] | None = None,
    feeds: Mapping[str, np.ndarray] | None = None,
    target_qps: float | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
    session: Session | None = None,
    api: str = "sync",
    concurrency: int | None = None,
    max_batch_size: int | None = None,
    max_delay_ms: float = 1.0,
    pipeline_stages: int | None = None,
) -> BenchResult:
    """Load ``model``, warm it up and measure one scenario.

    Args:
        model: path, ``zoo:NAME``, bytes or ``onnx.ModelProto``.
        scenario: ``single-stream``, ``offline`` or ``server``.
        device: device string (default: config, ``$NNPERF_DEVICES``, ``cpu``).
        workers: host threads issuing queries (default: one per instance; single-stream: 1).
        batch_size: rows per query; fixes a free batch dimension (default 1).
        config: RunConfig or JSON path; explicit arguments override it.
        queries: minimum number of measured queries (default 100).
        duration_s: minimum measured time in seconds (default 0).
        warmup_iters: untimed-for-stats runs before measuring, each reported (default 3).
        fake_first: run once on zeros before warm-up and report it as its own stage.
        inputs: ``{name: SPEC}`` (see :mod:`nnperf.bench.inputs`).
        feeds: ready-made arrays, used instead of ``inputs``.
        target_qps: offered load of the ``server`` scenario (required there).
        seed: random seed for synthetic inputs and Poisson arrivals.
        progress: called now and then with (done, min_queries, elapsed_s, min_duration_s).
        session: an already loaded session to measure (its load stages are reported as 0).
        api: how queries are issued: ``sync`` (default), ``queue`` (Submitter/Receiver) or
            ``async`` (AsyncRunner); see :mod:`nnperf.bench.drivers`.
        concurrency: queries kept outstanding by the offline scenario through a non-sync api,
            batching or a pipeline (default: the backend's in-flight limit; with ``api="async"``
            at least :data:`OFFLINE_ASYNC_CLIENTS` coroutines).
        max_batch_size: merge concurrent queries into batches of up to this many rows
            (DynamicBatcher); ``None`` (default): no merging.
        max_delay_ms: with merging, the longest a query waits for others, in ms (default 1.0).
        pipeline_stages: split the model into this many stages, one instance each
            (``create_pipeline``); ``None`` (default): no pipeline.

    Raises:
        InvalidInputError: bad arguments or inputs; ModelLoadError for bad models.
    """
    try:
        scen = Scenario(scenario)
    except ValueError:
        raise InvalidInputError(
            f"scenario: got {scenario!r}, expected one of {[s.value for s in Scenario]}"
        ) from None
    if queries < 1:
        raise InvalidInputError(f"queries: got {queries}, expected >= 1")
    if duration_s < 0:
        raise InvalidInputError(f"duration_s: got {duration_s}, expected >= 0")
    if warmup_iters < 0:
        raise InvalidInputError(f"warmup_iters: got {warmup_iters}, expected >= 0")
    if scen is Scenario.SERVER and (target_qps is None or target_qps <= 0):
        raise InvalidInputError(
            "the server scenario needs target_qps > 0 (--target-qps): the Poisson arrival rate"
        )
    if api not in APIS:
        raise InvalidInputError(f"api: got {api!r}, expected one of {list(APIS)}")
    if concurrency is not None and concurrency < 1:
        raise InvalidInputError(f"concurrency: got {concurrency}, expected >= 1")
    if pipeline_stages is not None and pipeline_stages < 1:
        raise InvalidInputError(f"pipeline_stages: got {pipeline_stages}, expected >= 1")
    if pipeline_stages is not None and max_batch_size is not None:
        raise InvalidInputError(
            "pipeline_stages and max_batch_size cannot be combined; measure them separately"
        )
    cfg = resolve_config(config, device=device, batch_size=batch_size, workers=workers)
    rows = cfg.batch_size or 1
    owns_session = session is None
    sess = session if session is not None else Session(model, config=cfg)
    try:
        if feeds is None:
            feed = make_feeds(sess.inputs, batch_size=rows, specs=inputs, seed=seed)
        else:
            feed = dict(feeds)
        sess.validator.validate(feed)
        stages: dict[str, Any] = {
            "load_ms": (sess.stages.load_ns / 1e6) if owns_session else 0.0,
            "prepare_ms": (sess.stages.prepare_ns / 1e6) if owns_session else 0.0,
            "fake_first_ms": None,
            "warmup_ms": [],
        }
        if fake_first:
            zeros = {
                d.name: np.zeros(concrete_shape(d, batch=rows, default=1), np.dtype(d.dtype))
                for d in sess.inputs
            }
            for name, arr in feed.items():
                zeros[name] = np.zeros_like(arr)
            t0 = time.perf_counter_ns()
            for inst in sess.instances:
                inst.run(zeros)
            stages["fake_first_ms"] = (time.perf_counter_ns() - t0) / 1e6
        for _ in range(warmup_iters):
            t0 = time.perf_counter_ns()
            for inst in sess.instances:
                inst.run(feed)
            stages["warmup_ms"].append((time.perf_counter_ns() - t0) / 1e6)
        n_workers = cfg.workers or (1 if scen is Scenario.SINGLE_STREAM else len(sess.instances))
        busy = _EngineBusy()
        extra: dict[str, Any] = {"api": api}
        n_instances = len(sess.instances)
        ran_on = sess.device.text
        watched = sess.observers
        watched.add(busy)
        try:
            if api != "sync" or max_batch_size is not None or pipeline_stages is not None:
                backend, ran_on = _backend(
                    sess, cfg, n_workers, max_batch_size, max_delay_ms, pipeline_stages, extra
                )
                n_instances = backend.instances
                if backend.observers is not watched:  # a pipeline's stages: their own list
                    watched.remove(busy)
                    watched = backend.observers
                    watched.add(busy)
                if scen is Scenario.SERVER:
                    assert target_qps is not None  # checked above
                    lat_ns, wall_ns = _server(
                        backend, feed, queries, duration_s, target_qps, seed, progress
                    )
                else:
                    if scen is Scenario.SINGLE_STREAM:
                        clients = 1
                    elif concurrency:
                        clients = concurrency
                    elif api == "async":
                        clients = max(OFFLINE_ASYNC_CLIENTS, backend.max_inflight)
                    else:
                        clients = backend.max_inflight
                    extra["concurrency"] = clients
                    lat_ns, wall_ns, _errors = drive(
                        backend,
                        feed,
                        api=api,
                        concurrency=clients,
                        queries=queries,
                        duration_s=duration_s,
                        progress=progress,
                    )
                if isinstance(backend, DynamicBatcher):
                    extra["batching"] = backend.stats().to_dict()
            elif scen is Scenario.SINGLE_STREAM:
                lat_ns, wall_ns = _single_stream(sess, feed, queries, duration_s, progress)
                n_workers = 1
            elif scen is Scenario.OFFLINE:
                lat_ns, wall_ns = _offline(
                    sess, feed, n_workers, queries, duration_s, progress, busy.add
                )
            else:
                assert target_qps is not None  # checked above
                # A Runner over the loaded session with a deep in-flight bound: the load
                # generator, not the runtime, decides when a query is issued. Should a backlog
                # ever reach the bound, issuing waits, and the wait still counts as latency
                # because latency runs from the scheduled arrival.
                runner = Runner(sess, workers=n_workers, max_inflight=4096, close_session=False)
                lat_ns, wall_ns = _server(
                    runner, feed, queries, duration_s, target_qps, seed, progress
                )
        finally:
            watched.remove(busy)
        wall_s = wall_ns / 1e9
        engine = sess.engine
        return BenchResult(
            model={"name": sess.model.name, "path": sess.model.path, "sha256": sess.model.sha256},
            engine={
                "name": engine.name,
                "version": engine.version,
                "providers": list(sess.instances[0].providers),
                "load": [dict(i) for i in sess.stages.engine],
            },
            machine=machine_info(),
            config=cfg,
            scenario=scen,
            workers=n_workers,
            batch_size=rows,
            stages_ms=stages,
            latency=LatencyStats.from_ns(lat_ns),
            queries=len(lat_ns),
            errors=busy.errors,
            duration_s=wall_s,
            throughput_qps=len(lat_ns) / wall_s if wall_s > 0 else 0.0,
            utilization=min(1.0, busy.busy_ns / (wall_ns * n_instances)) if wall_ns else 0.0,
            target_qps=target_qps,
            extra=extra,
            device=ran_on,
            instances=n_instances,
        )
    finally:
        if owns_session:
            sess.close()


def _single_stream(
    sess: Session,
    feed: dict[str, np.ndarray],
    queries: int,
    duration_s: float,
    progress: ProgressFn | None,
) -> tuple[np.ndarray, int]:
    duration_ns = int(duration_s * 1e9)
    lat: list[int] = []
    run = sess.run
    clock = time.perf_counter_ns
    start = clock()
    next_report = start + 200_000_000
    while True:
        t0 = clock()
        run(feed)
        t1 = clock()
        lat.append(t1 - t0)
        if len(lat) >= queries and t1 - start >= duration_ns:
            break
        if progress is not None and t1 >= next_report:
            progress(len(lat), queries, (t1 - start) / 1e9, duration_s)
            next_report = t1 + 200_000_000
    wall = clock() - start
    return np.asarray(lat, dtype=np.int64), wall


def _offline(
    sess: Session,
    feed: dict[str, np.ndarray],
    n_workers: int,
    queries: int,
    duration_s: float,
    progress: ProgressFn | None,
    on_busy: Callable[[int], None],
) -> tuple[np.ndarray, int]:
    """Workers call the engine directly (no per-query hook) and sum their own busy time."""
    per_thread: list[list[int]] = [[] for _ in range(n_workers)]
    stop = StopCondition(queries, int(duration_s * 1e9))
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_workers + 1)
    busy_box = [0] * n_workers

    def worker(i: int) -> None:
        inst = sess.bind_thread(i)
        lat = per_thread[i]
        clock = time.perf_counter_ns
        validate = sess.validator.validate
        # With a profiler attached, queries go through Session.run so each becomes a span (the
        # observer then counts engine time); otherwise the engine is called directly.
        traced = len(sess.observers) > 1
        barrier.wait()
        try:
            busy = 0
            while not stop.event.is_set():
                t0 = clock()
                if traced:
                    sess.run(feed)
                    t1 = te = clock()
                else:
                    validate(feed)
                    te = clock()
                    inst.run(feed)
                    t1 = clock()
                busy += t1 - te
                lat.append(t1 - t0)
                stop.done(t1)
            busy_box[i] = busy
        except BaseException as exc:
            errors.append(exc)
            stop.event.set()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n_workers)]
    for t in threads:
        t.start()
    stop.start_ns = time.perf_counter_ns()
    barrier.wait()
    watch_progress(stop, progress)
    for t in threads:
        t.join()
    wall = time.perf_counter_ns() - stop.start_ns
    if errors:
        raise errors[0]
    on_busy(sum(busy_box))
    return np.concatenate([np.asarray(x, dtype=np.int64) for x in per_thread]), wall


def _backend(
    sess: Session,
    cfg: RunConfig,
    n_workers: int,
    max_batch_size: int | None,
    max_delay_ms: float,
    pipeline_stages: int | None,
    extra: dict[str, Any],
) -> tuple[Executor, str]:
    """The executor queries are submitted to, and the device it runs on."""
    if pipeline_stages is not None:
        from nnperf.optimize.partition import create_pipeline

        device = cfg.device if cfg.device and "*" in cfg.device else f"cpu(1)*{pipeline_stages}"
        pipe = create_pipeline(
            sess.model, stages=pipeline_stages, device=device, config=cfg.replace(device=device)
        )
        extra["pipeline"] = [info.to_dict() for info in pipe.stages]
        return pipe, pipe.device
    runner = Runner(sess, workers=n_workers, close_session=False)
    if max_batch_size is None:
        return runner, sess.device.text
    batcher = DynamicBatcher(runner, max_batch_size=max_batch_size, max_delay_ms=max_delay_ms)
    extra["batching"] = {}
    return batcher, sess.device.text


def _server(
    runner: Any,
    feed: dict[str, np.ndarray],
    queries: int,
    duration_s: float,
    target_qps: float,
    seed: int,
    progress: ProgressFn | None,
) -> tuple[np.ndarray, int]:
    rng = np.random.default_rng(seed)
    duration_ns = int(duration_s * 1e9)
    lat: list[int] = []
    lock = threading.Lock()
    issued = 0
    clock = time.perf_counter_ns
    start = clock()
    scheduled = start
    pending: list[Any] = []
    try:
        while True:
            scheduled += int(rng.exponential(1e9 / target_qps))
            now = clock()
            if scheduled > now:
                time.sleep((scheduled - now) / 1e9)
            fut = runner.submit(feed)
            sched = scheduled

            def record(f: Any, sched: int = sched) -> None:
                end = clock()
                if f.exception() is None:
                    with lock:
                        lat.append(end - sched)

            fut.add_done_callback(record)
            pending.append(fut)
            issued += 1
            if issued >= queries and clock() - start >= duration_ns:
                break
            if progress is not None and issued % 50 == 0:
                progress(issued, queries, (clock() - start) / 1e9, duration_s)
        for f in pending:
            try:
                f.result()
            except Exception:
                pass
    finally:
        runner.close()
    wall = clock() - start
    return np.asarray(lat, dtype=np.int64), wall
