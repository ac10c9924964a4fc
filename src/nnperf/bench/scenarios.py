"""The load generator behind ``nnperf bench``: three scenarios written once over any system under
test, and :func:`run_benchmark`.

The load generator owns timing and traffic (MLPerf LoadGen's split); the system under test
(:mod:`nnperf.bench.sut`: a Session, any executor, an HTTP server) only answers queries.

* ``single-stream``: one query in flight; latency of each, back to back (closed loop of 1).
* ``offline``: ``concurrency`` queries in flight, each issued when one completes (closed loop);
  throughput.
* ``server``: queries arrive as a Poisson process at ``target_qps`` (:mod:`nnperf.bench.
  schedule`); each query's latency runs from its *scheduled* arrival, so a backlog shows up as
  latency (no coordinated omission).

Both ``queries`` and ``duration_s`` are minimums: a run stops once it has done at least that many
queries *and* run at least that long (furiosa-bench's ``-n`` and ``--duration``). Queries still
in flight then complete and are counted. Ctrl-C (``KeyboardInterrupt``) stops the measured phase
early: what was measured is kept and the result is marked ``partial``.
"""

from __future__ import annotations

import concurrent.futures
import copy
import functools
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from nnperf.bench.config import (
    DEFAULT_DURATION_S,
    MAX_SAMPLES,
    MIN_VALID_DURATION_S,
    BenchConfig,
    BenchWarning,
    Scenario,
    scenario_of,
)
from nnperf.bench.inputs import (
    FedInput,
    batch_of,
    describe_feeds,
    make_feeds,
)
from nnperf.bench.machine import machine_info
from nnperf.bench.resources import CpuClock, MemoryMeter, MemoryReport, rss_mib
from nnperf.bench.schedule import poisson_arrivals
from nnperf.bench.stats import LatencyStats, Stability, Validity, stability, thin_samples
from nnperf.bench.sut import ExecutorSUT, Mode, SessionSUT, SplitSUT, SystemUnderTest
from nnperf.device import DEVICES_ENV, available_cores, parse_device
from nnperf.engines.base import Engine
from nnperf.engines.config import RunConfig
from nnperf.engines.registry import get_engine
from nnperf.errors import EngineError, InvalidInputError, NnperfError
from nnperf.model import ModelBlob, ModelSource, graph_io, load_model
from nnperf.runtime.session import Session, resolve_config
from nnperf.types import Progress, ProgressFn, check_dims_and_shapes

__all__ = [
    "BENCH_SCHEMA",
    "BenchResult",
    "Measured",
    "Scenario",
    "judge",
    "provenance",
    "run_benchmark",
    "run_scenario",
]

BENCH_SCHEMA = "nnperf.bench/2"
ACHIEVED_MIN = 0.9
"""The server scenario is INVALID below this share of the offered load completed."""


_TICK_S = 0.2


# -- the measured phase ------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """The raw outcome of one measured phase.

    Attributes:
        start_ns / end_ns: issue (closed loop) or scheduled arrival (server) and completion of
            every query that succeeded, on the ``perf_counter_ns`` clock, in completion order.
        errors: queries that failed (or were refused).
        error_samples: up to five of their messages.
        t0_ns / wall_ns: start and length of the measured phase (until the last query completed).
        issued: queries issued.
        issue_span_ns: server: from the start to the last issue as it happened.
        schedule_span_ns: server: from the start to the last scheduled arrival.
        clients: closed loop: queries kept outstanding; ``None`` for the open loop.
        busy_ns: engine-busy time (``None``: unknown, e.g. a remote server).
        cpu_percent: process CPU over the phase, % of one core.
        partial: interrupted before the minimums were met.
    """

    start_ns: np.ndarray
    end_ns: np.ndarray
    errors: int
    error_samples: tuple[str, ...]
    t0_ns: int
    wall_ns: int
    issued: int
    issue_span_ns: int
    schedule_span_ns: int
    clients: int | None
    busy_ns: int | None
    cpu_percent: float
    partial: bool

    @property
    def completed(self) -> int:
        """Queries that succeeded."""
        return int(self.end_ns.size)

    @property
    def latency_ns(self) -> np.ndarray:
        """Per-query latency in ns."""
        lat: np.ndarray = self.end_ns - self.start_ns
        return lat


class _Recorder:
    """What the scenarios record; the stop condition; Ctrl-C."""

    def __init__(self, bench: BenchConfig) -> None:
        self.queries = bench.queries
        self.duration_ns = int(bench.duration_s * 1e9)
        self.duration_s = bench.duration_s
        self.done: list[tuple[int, int]] = []  # one append per query: safe from any thread
        self.failures = 0
        self.samples: list[str] = []
        self.event = threading.Event()
        self.lock = threading.Lock()
        self.t0 = time.perf_counter_ns()
        self.partial = False
        self.fatal: list[BaseException] = []
        # The open loop's issue counts (closed loops issue one query per completion).
        self.issued: int | None = None
        self.issue_span = 0
        self.schedule_span = 0

    def ok(self, t0: int, t1: int) -> None:
        done = self.done
        done.append((t0, t1))
        if len(done) + self.failures >= self.queries and t1 - self.t0 >= self.duration_ns:
            self.event.set()

    def failed(self, t1: int, exc: BaseException) -> None:
        with self.lock:
            self.failures += 1
            if len(self.samples) < 5:
                self.samples.append(f"{type(exc).__name__}: {exc}")
        if len(self.done) + self.failures >= self.queries and t1 - self.t0 >= self.duration_ns:
            self.event.set()

    def finish(self, t0: int, exc: BaseException | None) -> None:
        """One completion reported by a system under test (``done(error)``)."""
        t1 = time.perf_counter_ns()
        if exc is None:
            self.ok(t0, t1)
        else:
            self.failed(t1, exc)

    def abort(self, exc: BaseException) -> None:
        self.fatal.append(exc)
        self.event.set()

    def count(self) -> int:
        return len(self.done) + self.failures

    def wait(self, progress: ProgressFn | None) -> None:
        """Until the stop condition (or Ctrl-C: then the run is partial), reporting progress."""
        try:
            while not self.event.wait(_TICK_S):
                if progress is not None:
                    elapsed = (time.perf_counter_ns() - self.t0) / 1e9
                    progress(Progress(self.count(), self.queries, elapsed, self.duration_s))
        except KeyboardInterrupt:
            self.partial = True
            self.event.set()


class _Outstanding:
    """Queries issued and not yet completed, and the moment the last one completes."""

    def __init__(self) -> None:
        self.n = 0
        self.closing = False
        self.lock = threading.Lock()
        self.drained = threading.Event()

    def add(self) -> None:
        with self.lock:
            self.n += 1

    def remove(self) -> None:
        with self.lock:
            self.n -= 1
            if self.closing and self.n == 0:
                self.drained.set()

    def close_and_wait(self) -> None:
        with self.lock:
            self.closing = True
            if self.n == 0:
                self.drained.set()
        while not self.drained.wait(_TICK_S):
            pass


def _closed_blocking(
    sut: SystemUnderTest, clients: int, rec: _Recorder, progress: ProgressFn | None
) -> None:
    barrier = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        try:
            call = sut.client(index)
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        except BaseException as exc:
            rec.abort(exc)
            barrier.abort()
            return
        clock = time.perf_counter_ns
        stop = rec.event
        ok = rec.ok
        while not stop.is_set():
            t0 = clock()
            try:
                call()
            except NnperfError as exc:  # the query's failure; the run goes on
                rec.failed(clock(), exc)
                continue
            except BaseException as exc:  # a bug: stop and report it
                rec.abort(exc)
                return
            ok(t0, clock())

    threads = [
        threading.Thread(target=client, args=(i,), name=f"nnperf-bench-{i}", daemon=True)
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    rec.t0 = time.perf_counter_ns()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    rec.wait(progress)
    for t in threads:
        t.join()


def _closed_callback(
    sut: SystemUnderTest, clients: int, rec: _Recorder, progress: ProgressFn | None
) -> None:
    out = _Outstanding()
    clock = time.perf_counter_ns

    def complete(t0: int, exc: BaseException | None) -> None:
        rec.finish(t0, exc)
        if not rec.event.is_set():
            issue()
        out.remove()

    def issue() -> None:
        while not rec.event.is_set():
            out.add()
            t0 = clock()
            try:
                sut.issue(functools.partial(complete, t0))
                return
            except NnperfError as exc:  # refused: count it and try again
                out.remove()
                rec.failed(clock(), exc)

    rec.t0 = clock()
    for _ in range(clients):
        issue()
    rec.wait(progress)
    out.close_and_wait()


def _closed_loop(
    sut: SystemUnderTest, clients: int, rec: _Recorder, progress: ProgressFn | None
) -> None:
    import asyncio

    async def client() -> None:
        clock = time.perf_counter_ns
        stop = rec.event
        acall = sut.acall
        while not stop.is_set():
            t0 = clock()
            try:
                await acall()
            except NnperfError as exc:
                rec.failed(clock(), exc)
                continue
            rec.ok(t0, clock())

    async def main() -> None:
        try:
            await asyncio.gather(*(client() for _ in range(clients)))
        except BaseException as exc:
            rec.abort(exc)
        finally:
            rec.event.set()

    rec.t0 = time.perf_counter_ns()
    fut = sut.run_on_loop(main())
    rec.wait(progress)
    while True:
        try:
            fut.result(timeout=_TICK_S)
            return
        except concurrent.futures.TimeoutError:
            continue


def _open_loop(
    sut: SystemUnderTest, bench: BenchConfig, rec: _Recorder, progress: ProgressFn | None
) -> None:
    """Poisson arrivals; latency runs from each scheduled arrival."""
    assert bench.target_qps is not None  # BenchConfig checks it for the server scenario
    out = _Outstanding()
    clock = time.perf_counter_ns

    def complete(scheduled: int, exc: BaseException | None) -> None:
        rec.finish(scheduled, exc)
        out.remove()

    issued = 0
    last_scheduled = last_issued = start = rec.t0 = clock()
    duration_ns = rec.duration_ns
    try:
        for offset in poisson_arrivals(bench.target_qps, seed=bench.seed):
            scheduled = start + offset
            now = clock()
            if scheduled > now:
                time.sleep((scheduled - now) / 1e9)
            out.add()
            try:
                sut.issue(functools.partial(complete, scheduled))
            except NnperfError as exc:  # refused (overloaded): a failed query
                out.remove()
                rec.failed(clock(), exc)
            issued += 1
            last_scheduled = scheduled
            last_issued = clock()
            if issued >= bench.queries and last_issued - start >= duration_ns:
                break
            if rec.fatal:
                break
            if progress is not None and issued % 64 == 0:
                elapsed_s = (last_issued - start) / 1e9
                progress(Progress(issued, bench.queries, elapsed_s, bench.duration_s))
    except KeyboardInterrupt:
        rec.partial = True
    out.close_and_wait()
    rec.issued = issued
    rec.issue_span = last_issued - start
    rec.schedule_span = last_scheduled - start


def run_scenario(
    sut: SystemUnderTest, bench: BenchConfig, *, progress: ProgressFn | None = None
) -> Measured:
    """Start ``sut``, measure ``bench.scenario`` on it, stop it.

    Closed-loop scenarios keep ``1`` (single-stream) or ``bench.concurrency`` (offline; default
    the system's own) queries outstanding, through the system's :class:`~nnperf.bench.sut.Mode`;
    the server scenario issues on the Poisson schedule from the calling thread.

    Raises:
        NnperfError: the system refused to start; any other exception a client hit (a bug).
    """
    rec = _Recorder(bench)
    cpu = CpuClock()
    clients: int | None = None
    sut.start()
    try:
        cpu.start()
        if bench.scenario is Scenario.SERVER:
            _open_loop(sut, bench, rec, progress)
        else:
            clients = (
                1
                if bench.scenario is Scenario.SINGLE_STREAM
                else (bench.concurrency or sut.default_concurrency)
            )
            if sut.mode is Mode.BLOCKING:
                _closed_blocking(sut, clients, rec, progress)
            elif sut.mode is Mode.CALLBACK:
                _closed_callback(sut, clients, rec, progress)
            else:
                _closed_loop(sut, clients, rec, progress)
        wall = time.perf_counter_ns() - rec.t0
        cpu_percent = cpu.percent()
        busy = sut.busy_ns()
    except BaseException:
        rec.event.set()  # no client thread goes on after this
        raise
    finally:
        sut.stop()
    if rec.fatal:
        raise rec.fatal[0]
    pairs = np.asarray(rec.done, dtype=np.int64).reshape(-1, 2)
    issued = rec.issued if rec.issued is not None else len(rec.done) + rec.failures
    return Measured(
        start_ns=pairs[:, 0].copy(),
        end_ns=pairs[:, 1].copy(),
        errors=rec.failures,
        error_samples=tuple(rec.samples),
        t0_ns=rec.t0,
        wall_ns=wall,
        issued=issued,
        issue_span_ns=rec.issue_span,
        schedule_span_ns=rec.schedule_span,
        clients=clients,
        busy_ns=busy,
        cpu_percent=cpu_percent,
        partial=rec.partial,
    )


# -- the verdict ---------------------------------------------------------------------------------


def judge(
    bench: BenchConfig,
    m: Measured,
    latency: LatencyStats,
    server: Mapping[str, Any] | None,
) -> tuple[Validity, Stability]:
    """MLPerf LoadGen's VALID / INVALID with every reason, and the stability windows."""
    reasons: list[str] = []
    duration_s = m.wall_ns / 1e9
    if m.partial:
        reasons.append(
            f"interrupted (Ctrl-C) after {duration_s:.3g} s: the figures cover what was "
            "measured until then"
        )
    if m.errors:
        total = m.errors + m.completed
        first = f" (first: {m.error_samples[0]})" if m.error_samples else ""
        reasons.append(f"{m.errors} of {total} queries failed{first}")
    if duration_s < MIN_VALID_DURATION_S:
        reasons.append(
            f"measured {duration_s:.3g} s; a valid run needs at least {MIN_VALID_DURATION_S:g} s "
            "for stable figures (raise --duration)"
        )
    st = stability(
        m.end_ns,
        start_ns=m.t0_ns,
        wall_ns=m.wall_ns,
        windows=bench.windows,
        tolerance=bench.stability,
    )
    if not st.stable:
        reasons.append(st.reason)
    if server is not None:
        # The schedule's own rate (a Poisson draw: it varies around the target) is what was
        # offered; the generator lagged if it issued more slowly than its schedule.
        offered = server["offered_qps"]
        if server["issued_qps"] < ACHIEVED_MIN * offered:
            reasons.append(
                f"the load generator issued only {server['issued_qps']:,.1f} of the "
                f"{offered:,.1f} queries/s its schedule offered: it, not the system, is the limit"
            )
        if server["achieved_ratio"] < ACHIEVED_MIN:
            reasons.append(
                f"the system completed {server['achieved_qps']:,.1f} of {server['offered_qps']:,.1f}"
                f" offered queries/s ({server['achieved_ratio']:.2f} < {ACHIEVED_MIN}): it did not"
                " keep up, and the backlog shows in the latency"
            )
        bound = bench.latency_bound_ms
        if bound is not None:
            if server["latency_bound_met"] is None:
                reasons.append(
                    f"{latency.count} samples are too few to check p99 against the latency "
                    f"bound of {bound:g} ms (need 100)"
                )
            elif not server["latency_bound_met"]:
                reasons.append(
                    f"p99 {latency.p99_ms:.4g} ms exceeds the latency bound {bound:g} ms"
                )
    return Validity.of(reasons), st


def _server_figures(bench: BenchConfig, m: Measured, latency: LatencyStats) -> dict[str, Any]:
    assert bench.target_qps is not None
    offered = m.issued / (m.schedule_span_ns / 1e9) if m.schedule_span_ns > 0 else bench.target_qps
    issued = m.issued / (m.issue_span_ns / 1e9) if m.issue_span_ns > 0 else bench.target_qps
    achieved = m.completed / (m.wall_ns / 1e9) if m.wall_ns > 0 else 0.0
    met: bool | None = None
    if bench.latency_bound_ms is not None and latency.supported(99.0):
        met = latency.p99_ms <= bench.latency_bound_ms
    return {
        "target_qps": bench.target_qps,
        "offered_qps": round(offered, 3),
        "issued_qps": round(issued, 3),
        "achieved_qps": round(achieved, 3),
        "achieved_ratio": round(achieved / offered, 4) if offered > 0 else 0.0,
        "latency_bound_ms": bench.latency_bound_ms,
        "latency_bound_met": met,
    }


def provenance(
    *, seed: int, warmup_iters: int, argv: Sequence[str] | None = None
) -> dict[str, Any]:
    """Where a document came from: command line, UTC time, host, seed, warm-up count."""
    return {
        "argv": list(sys.argv if argv is None else argv),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "seed": seed,
        "warmup_iters": warmup_iters,
    }


# -- the result ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchResult:
    """Everything one benchmark measured, in process or remote; ``to_dict`` is the
    ``nnperf.bench/2`` JSON (``src/nnperf/schemas/bench-2.json``).

    Attributes:
        model: name, path and sha256 of the model (remote: the served name).
        engine: engine name, version, providers in use and what it reported about loading
            (``None`` remote).
        machine: CPU, cores, platform, versions of the machine that ran the load generator.
        config: the RunConfig that ran, device resolved (``None`` remote).
        scenario: traffic pattern.
        workers: host threads running queries (Runner workers, or the load generator's client
            threads on a Session; 1 for single-stream).
        batch_size: rows per query, from the shapes fed.
        stages_ms: load, prepare, fake_first (or None) and each warm-up iteration, in ms.
        latency: per-query latency statistics.
        queries: measured queries that succeeded (warm-up excluded).
        errors: queries that failed.
        duration_s: wall time of the measured phase.
        throughput_qps: queries per second.
        utilization: engine-busy time ÷ (wall time × instances driven), 0..1 (``None`` when the
            system cannot say).
        target_qps: the server scenario's offered load, else None.
        extra: api, merge-batching statistics, pipeline stages.
        device: the device that ran (a pipeline's stage instances).
        instances: engine instances that ran.
        sut: the system under test (``session``, ``runner``, ``batcher``, ``pipeline``, ``http``).
        bench: the load generator's settings.
        concurrency: queries kept outstanding (closed loop), ``None`` for the server scenario.
        threads_per_instance: intra-op threads of each instance.
        instances_driven: instances the traffic could keep busy (single-stream on a Session: 1).
        inputs: what was fed: shape, dtype, spec of each input.
        samples_ns: raw per-query latencies (at most ``MAX_SAMPLES``, evenly thinned).
        samples_stride: 1 when every sample is kept, else the thinning stride.
        validity: VALID / INVALID with reasons; stability: the windows behind it.
        memory: resident memory of the run; cpu_percent: process CPU, % of one core.
        server: the server scenario's target, offered, issued and achieved rates and the
            latency-bound verdict.
        warnings: what the reader should know (oversubscribed cores, ignored settings).
        partial: interrupted before the minimums were met.
        provenance: argv, timestamp, host, seed, warm-up count.
        error_samples: up to five failure messages.
        server_url: the server measured over HTTP, else ``None``.
    """

    model: dict[str, Any]
    engine: dict[str, Any] | None
    machine: dict[str, Any]
    config: RunConfig | None
    scenario: Scenario
    workers: int
    batch_size: int
    stages_ms: dict[str, Any]
    latency: LatencyStats
    queries: int
    errors: int
    duration_s: float
    throughput_qps: float
    utilization: float | None
    target_qps: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    device: str = ""
    instances: int = 1
    sut: str = "session"
    bench: BenchConfig = field(default_factory=BenchConfig)
    concurrency: int | None = None
    threads_per_instance: tuple[int, ...] = ()
    instances_driven: int = 1
    inputs: tuple[FedInput, ...] = ()
    samples_ns: tuple[int, ...] = ()
    samples_stride: int = 1
    validity: Validity = field(default_factory=lambda: Validity(True))
    stability: Stability | None = None
    memory: MemoryReport = field(default_factory=MemoryReport)
    cpu_percent: float = 0.0
    server: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    partial: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)
    error_samples: tuple[str, ...] = ()
    server_url: str | None = None

    @property
    def throughput_samples_per_s(self) -> float:
        """Samples (rows) per second: QPS × batch size."""
        return self.throughput_qps * self.batch_size

    @property
    def valid(self) -> bool:
        """Whether the run is VALID."""
        return self.validity.valid

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON form (``nnperf.bench/2``)."""
        return {
            "schema": BENCH_SCHEMA,
            "partial": self.partial,
            "model": self.model,
            "engine": self.engine,
            "machine": self.machine,
            "config": None if self.config is None else self.config.to_dict(),
            "bench": self.bench.to_dict(),
            "scenario": self.scenario.value,
            "sut": self.sut,
            "server_url": self.server_url,
            "device": self.device,
            "instances": self.instances,
            "threads_per_instance": list(self.threads_per_instance),
            "instances_driven": self.instances_driven,
            "workers": self.workers,
            "concurrency": self.concurrency,
            "batch_size": self.batch_size,
            "inputs": [i.to_dict() for i in self.inputs],
            "stages": self.stages_ms,
            "latency_ms": self.latency.to_dict(),
            "samples": {
                "latency_ns": list(self.samples_ns),
                "stride": self.samples_stride,
                "count": self.queries,
            },
            "throughput_qps": round(self.throughput_qps, 4),
            "throughput_samples_per_s": round(self.throughput_samples_per_s, 4),
            "queries": self.queries,
            "errors": self.errors,
            "error_samples": list(self.error_samples),
            "duration_s": round(self.duration_s, 6),
            "utilization": None if self.utilization is None else round(self.utilization, 4),
            "cpu_percent": round(self.cpu_percent, 1),
            "memory": self.memory.to_dict(),
            "target_qps": self.target_qps,
            "server": self.server,
            "stability": None
            if self.stability is None
            else {**self.stability.to_dict(), "latency_cv": round(self.latency.cv, 6)},
            "validity": self.validity.to_dict(),
            "warnings": list(self.warnings),
            "provenance": self.provenance,
            "extra": self.extra,
        }


def build_result(
    bench: BenchConfig,
    m: Measured,
    *,
    model: dict[str, Any],
    engine: dict[str, Any] | None,
    config: RunConfig | None,
    sut: SystemUnderTest,
    workers: int,
    batch_size: int,
    stages_ms: dict[str, Any],
    inputs: tuple[FedInput, ...],
    threads_per_instance: tuple[int, ...],
    memory: MemoryReport,
    warnings_: Sequence[str],
    extra: dict[str, Any],
    argv: Sequence[str] | None,
    server_url: str | None = None,
) -> BenchResult:
    """Statistics, verdict and provenance of one measured phase: the one result type of every
    system under test."""
    if m.completed == 0:
        if m.partial:
            raise KeyboardInterrupt
        first = m.error_samples[0] if m.error_samples else "no query completed"
        raise EngineError(f"every measured query failed ({m.errors}); first error: {first}")
    latency = LatencyStats.from_ns(m.latency_ns)
    server = _server_figures(bench, m, latency) if bench.scenario is Scenario.SERVER else None
    validity, st = judge(bench, m, latency, server)
    wall_s = m.wall_ns / 1e9
    driven = sut.instances_driven(m.clients or sut.instances or 1)
    utilization = None
    if m.busy_ns is not None and m.wall_ns > 0 and driven > 0:
        utilization = min(1.0, m.busy_ns / (m.wall_ns * driven))
    samples, stride = thin_samples(m.latency_ns, MAX_SAMPLES)
    return BenchResult(
        model=model,
        engine=engine,
        machine=machine_info(),
        config=config,
        scenario=bench.scenario,
        workers=workers,
        batch_size=batch_size,
        stages_ms=stages_ms,
        latency=latency,
        queries=m.completed,
        errors=m.errors,
        duration_s=wall_s,
        throughput_qps=m.completed / wall_s if wall_s > 0 else 0.0,
        utilization=utilization,
        target_qps=bench.target_qps,
        extra=extra,
        device=sut.device,
        instances=sut.instances,
        sut=sut.kind,
        bench=bench,
        concurrency=m.clients,
        threads_per_instance=threads_per_instance,
        instances_driven=driven,
        inputs=inputs,
        samples_ns=tuple(samples),
        samples_stride=stride,
        validity=validity,
        stability=st,
        memory=memory,
        cpu_percent=m.cpu_percent,
        server=server,
        warnings=tuple(warnings_),
        partial=m.partial,
        provenance=provenance(seed=bench.seed, warmup_iters=bench.warmup_iters, argv=argv),
        error_samples=m.error_samples,
        server_url=server_url,
    )


# -- in process ---------------------------------------------------------------------------------


def _metered(engine: Engine, deltas: list[float]) -> Engine:
    """``engine`` with each ``load`` measured for the resident memory it adds.

    A shallow copy whose ``load`` is an instance attribute: the class, and so every capability an
    ``isinstance`` check finds (operator profiling, graph dumps), stays the engine's own.
    """
    metered = copy.copy(engine)
    original = engine.load

    def load(model: ModelBlob, config: RunConfig, instance: Any) -> Any:
        before = rss_mib()
        inst = original(model, config, instance)
        deltas.append(rss_mib() - before)
        return inst

    object.__setattr__(metered, "load", load)
    return metered


def _warn(message: str, notes: list[str]) -> None:
    notes.append(message)
    warnings.warn(message, BenchWarning, stacklevel=3)


@dataclass
class _Run:
    """What the in-process preparation produced for the measured phase."""

    sut: SystemUnderTest
    workers: int
    batch: int
    feed: dict[str, np.ndarray]
    inputs: tuple[FedInput, ...]
    stages: dict[str, Any]
    engine: dict[str, Any]
    model: dict[str, Any]
    threads: tuple[int, ...]
    extra: dict[str, Any]
    closers: list[Callable[[], None]] = field(default_factory=list)
    load_mib: float | None = None
    per_instance_mib: tuple[float, ...] = ()


def _warm(
    instances: Sequence[Any], feed: Mapping[str, np.ndarray], bench: BenchConfig
) -> tuple[dict[str, Any], list[float]]:
    """Fake-first and warm-up runs on every instance: stage times, and what each instance's
    first run added to resident memory (empty without any warm-up run)."""
    first = [0.0] * len(instances)
    seen = [False] * len(instances)

    def run(k: int, inst: Any, f: Mapping[str, np.ndarray]) -> None:
        if seen[k]:
            inst.run(f)
            return
        before = rss_mib()
        inst.run(f)
        first[k] = rss_mib() - before
        seen[k] = True

    stages: dict[str, Any] = {"fake_first_ms": None, "warmup_ms": []}
    if bench.fake_first:
        zeros = {name: np.zeros_like(arr) for name, arr in feed.items()}
        t0 = time.perf_counter_ns()
        for k, inst in enumerate(instances):
            run(k, inst, zeros)
        stages["fake_first_ms"] = (time.perf_counter_ns() - t0) / 1e6
    for _ in range(bench.warmup_iters):
        t0 = time.perf_counter_ns()
        for k, inst in enumerate(instances):
            run(k, inst, feed)
        stages["warmup_ms"].append((time.perf_counter_ns() - t0) / 1e6)
    return stages, first if all(seen) else []


def _session_run(
    model: ModelSource,
    session: Session | None,
    cfg: RunConfig,
    bench: BenchConfig,
    *,
    specs: Mapping[str, str] | None,
    feeds: Mapping[str, np.ndarray] | None,
) -> _Run:
    owns = session is None
    load_deltas: list[float] = []
    split = bench.split_batch
    if split is not None:
        if session is not None:
            raise InvalidInputError(
                "split batching loads its own instances, built for the chunk; pass the model, "
                "not a loaded session"
            )
        if (cfg.batch_size or 1) <= split:
            raise InvalidInputError(
                f"split_batch={split}: each query must carry more rows than a chunk; got "
                f"batch_size={cfg.batch_size or 1}. Set a larger batch_size (--batch-size)"
            )
    if session is None:
        blob = load_model(model)
        declared = graph_io(blob).inputs
        check_dims_and_shapes(declared, dims=cfg.dims, shapes=cfg.shapes)
        # split batching: the instances run chunks of ``split`` rows; queries keep their rows
        load_cfg = cfg if split is None else cfg.replace(batch_size=split, split_batch=None)
        sess = Session(blob, config=load_cfg, engine=_metered(get_engine(cfg.engine), load_deltas))
    else:
        sess = session
        declared = sess.inputs
    try:
        feed = _feed_for(declared if split else sess.inputs, cfg, bench, specs, feeds)
        if split is None:
            sess.validator.validate(feed)
        chunk_feed = {k: v[:split] for k, v in feed.items()} if split else feed
        stages: dict[str, Any] = {
            "load_ms": (sess.stages.load_ns / 1e6) if owns else 0.0,
            "prepare_ms": (sess.stages.prepare_ns / 1e6) if owns else 0.0,
        }
        warm, first_run = _warm(sess.instances, chunk_feed, bench)
        stages.update(warm)
        n_instances = len(sess.instances)
        extra: dict[str, Any] = {"api": bench.api}
        direct = (
            bench.api == "sync"
            and bench.max_batch_size is None
            and bench.scenario is not Scenario.SERVER
            and split is None
        )
        closers: list[Callable[[], None]] = []
        sut: SystemUnderTest
        if split is not None:
            from nnperf.runtime.batching import SplitBatcher
            from nnperf.runtime.runner import Runner

            workers = (
                1
                if bench.scenario is Scenario.SINGLE_STREAM
                else (bench.concurrency or bench.workers or 1)
            )
            runner = Runner(sess, workers=max(n_instances, cfg.workers or 0), close_session=False)
            closers.append(runner.close)
            sut = SplitSUT(SplitBatcher(runner, chunk_size=split), runner, feed)
            extra["split"] = {"chunk_rows": split, "query_rows": batch_of(declared, feed)}
        elif direct:
            sut = SessionSUT(sess, feed)
            workers = 1
            if bench.scenario is Scenario.OFFLINE:
                if bench.concurrency and bench.workers and bench.concurrency != bench.workers:
                    raise InvalidInputError(
                        f"concurrency {bench.concurrency} and workers {bench.workers}: on a "
                        "Session each worker thread keeps one query outstanding, so both name "
                        "the same threads; give one of --concurrency and --workers"
                    )
                workers = bench.concurrency or bench.workers or cfg.workers or n_instances
        else:
            from nnperf.runtime.batching import DynamicBatcher
            from nnperf.runtime.runner import Runner

            workers = cfg.workers or n_instances
            # The server scenario: a deep in-flight bound, so the load generator, not the
            # runtime, decides when a query is issued; should a backlog ever reach it, issuing
            # waits, and the wait still counts because latency runs from the scheduled arrival.
            runner = Runner(
                sess,
                workers=workers,
                max_inflight=4096 if bench.scenario is Scenario.SERVER else None,
                close_session=False,
            )
            executor: Any = runner
            if bench.max_batch_size is not None:
                executor = DynamicBatcher(
                    runner, max_batch_size=bench.max_batch_size, max_delay_ms=bench.delay_ms
                )
                extra["batching"] = {}
            sut = ExecutorSUT(executor, feed, api=bench.api, device=sess.device.text)
        return _Run(
            sut=sut,
            workers=workers,
            batch=batch_of(declared if split else sess.inputs, feed),
            feed=feed,
            inputs=describe_feeds(feed, specs, default="array" if feeds is not None else "random"),
            stages=stages,
            engine={
                "name": sess.engine.name,
                "version": sess.engine.version,
                "providers": list(sess.instances[0].providers),
                "load": [dict(i) for i in sess.stages.engine],
            },
            model={"name": sess.model.name, "path": sess.model.path, "sha256": sess.model.sha256},
            threads=tuple(i.threads for i in sess.device.instances),
            extra=extra,
            closers=[*closers, *([sess.close] if owns else [])],
            load_mib=sum(load_deltas) if owns else None,
            per_instance_mib=tuple(
                a + b for a, b in zip(load_deltas, first_run or [0.0] * len(load_deltas))
            ),
        )
    except BaseException:
        if owns:
            sess.close()
        raise


def _feed_for(
    inputs: Sequence[Any],
    cfg: RunConfig,
    bench: BenchConfig,
    specs: Mapping[str, str] | None,
    feeds: Mapping[str, np.ndarray] | None,
) -> dict[str, np.ndarray]:
    if feeds is not None:
        return dict(feeds)
    return make_feeds(
        inputs,
        batch_size=cfg.batch_size or 1,
        specs=specs,
        seed=bench.seed,
        dims=cfg.dims,
        shapes=cfg.shapes,
    )


def _pipeline_run(
    model: ModelSource,
    cfg: RunConfig,
    bench: BenchConfig,
    *,
    specs: Mapping[str, str] | None,
    feeds: Mapping[str, np.ndarray] | None,
) -> _Run:
    """The model split into stages; only the stage sessions are loaded, timed and warmed up."""
    from nnperf.model import inline_external_data
    from nnperf.optimize.partition import create_pipeline
    from nnperf.runtime.feeds import FeedValidator

    assert bench.pipeline_stages is not None
    t0 = time.perf_counter_ns()
    blob = load_model(model)
    check_dims_and_shapes(graph_io(blob).inputs, dims=cfg.dims, shapes=cfg.shapes)
    # Stage models are cut from the graph in memory, so tensors stored beside the file must be
    # read into it first.
    whole = inline_external_data(blob)
    t1 = time.perf_counter_ns()
    before = rss_mib()
    pipe = create_pipeline(whole, stages=bench.pipeline_stages, config=cfg)
    t2 = time.perf_counter_ns()
    load_mib = rss_mib() - before
    try:
        feed = _feed_for(pipe.inputs, cfg, bench, specs, feeds)
        FeedValidator(pipe.inputs).validate(feed)
        stages: dict[str, Any] = {
            "load_ms": (t1 - t0) / 1e6,
            "prepare_ms": (t2 - t1) / 1e6,
            "fake_first_ms": None,
            "warmup_ms": [],
        }
        if bench.fake_first:
            zeros = {name: np.zeros_like(arr) for name, arr in feed.items()}
            s = time.perf_counter_ns()
            pipe.run(zeros)
            stages["fake_first_ms"] = (time.perf_counter_ns() - s) / 1e6
        for _ in range(bench.warmup_iters):
            s = time.perf_counter_ns()
            pipe.run(feed)  # through every stage session
            stages["warmup_ms"].append((time.perf_counter_ns() - s) / 1e6)
        first = pipe.sessions[0]
        extra = {"api": bench.api, "pipeline": [info.to_dict() for info in pipe.stages]}
        return _Run(
            sut=ExecutorSUT(pipe, feed, api=bench.api, kind="pipeline", device=pipe.device),
            workers=len(pipe.stages),
            batch=batch_of(pipe.inputs, feed),
            feed=feed,
            inputs=describe_feeds(feed, specs, default="array" if feeds is not None else "random"),
            stages=stages,
            engine={
                "name": first.engine.name,
                "version": first.engine.version,
                "providers": list(first.instances[0].providers),
                "load": [dict(i) for s in pipe.sessions for i in s.stages.engine],
            },
            model={"name": blob.name, "path": blob.path, "sha256": blob.sha256},
            threads=tuple(s.device.instances[0].threads for s in pipe.sessions),
            extra=extra,
            load_mib=load_mib,
        )
    except BaseException:
        pipe.close()
        raise


def run_benchmark(
    model: ModelSource,
    *,
    scenario: Scenario | str = Scenario.SINGLE_STREAM,
    device: str | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    config: RunConfig | str | None = None,
    queries: int = 100,
    duration_s: float = DEFAULT_DURATION_S,
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
    max_delay_ms: float | None = None,
    pipeline_stages: int | None = None,
    split_batch: int | None = None,
    dims: Mapping[str, int] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
    latency_bound_ms: float | None = None,
    windows: int = 5,
    stability_tolerance: float = 0.10,
    argv: Sequence[str] | None = None,
) -> BenchResult:
    """Load ``model``, warm it up and measure one scenario.

    Args:
        model: path, ``zoo:NAME``, bytes or ``onnx.ModelProto``.
        scenario: ``single-stream``, ``offline`` or ``server``.
        device: device string (default: config, ``$NNPERF_DEVICES``, ``cpu``); the report and
            the JSON config name the device string resolved.
        workers: host threads running queries (offline, server; default: one per instance).
        batch_size: rows per query; fixes a free batch dimension (default 1).
        config: RunConfig or JSON path; explicit arguments override it.
        queries: minimum number of measured queries (default 100).
        duration_s: minimum measured time in seconds (default 1.0; a run under 1 s is INVALID).
        warmup_iters: untimed-for-stats runs per instance before measuring (default 3).
        fake_first: run once on zeros before warm-up and report it as its own stage (on
            onnxruntime and OpenVINO a run on zeros costs the full compute; see the README).
        inputs: ``{name: SPEC}`` (see :mod:`nnperf.bench.inputs`; an unnamed spec under ``""``).
        feeds: ready-made arrays, used instead of ``inputs``.
        target_qps: offered load of the ``server`` scenario (required there, an error elsewhere).
        seed: random seed for synthetic inputs and Poisson arrivals.
        progress: called now and then with the run's :class:`~nnperf.types.Progress` (queries
            done of the minimum, seconds elapsed of the minimum duration).
        session: an already loaded session to measure (its load stages are reported as 0).
        api: how queries are issued: ``sync`` (default), ``queue`` (Submitter/Receiver) or
            ``async`` (AsyncRunner); see :mod:`nnperf.bench.sut`.
        concurrency: offline: queries kept outstanding (default: the instances on a Session,
            the runtime's in-flight limit through an executor; at least 64 coroutines with
            ``api="async"``). An error on single-stream and the in-process server scenario.
        max_batch_size: merge concurrent queries into batches of up to this many rows
            (DynamicBatcher); ``None`` (default): no merging.
        max_delay_ms: with merging, the longest a query waits for others, in ms (default 1.0).
        pipeline_stages: split the model into this many stages, one instance each
            (``create_pipeline``); ``None`` (default): no pipeline.
        split_batch: split batching: each query of ``batch_size`` rows runs as chunks of this
            many rows across the instances (``SplitBatcher`` over a Runner; instances built for
            the chunk); ``None`` (default): no split.

    The runtime techniques (``max_batch_size``/``max_delay_ms``, ``pipeline_stages``,
    ``split_batch``) default to the config's, so a config ``nnperf tune`` wrote reruns the
    winner as it was measured.
        dims: sizes of named symbolic dimensions (``{"seq": 128}``), added to the config's.
        shapes: whole input shapes (``{"images": (1, 3, 640, 640)}``), added to the config's.
        latency_bound_ms: server: the p99 the run must meet to be VALID.
        windows / stability_tolerance: the stability check (default 5 windows, 10 % spread).
        argv: the command line recorded in the provenance (default ``sys.argv``).

    Raises:
        InvalidInputError: bad arguments, options that do not apply to the scenario, or inputs
            (a symbolic non-batch dim without a size); ModelLoadError for bad models;
            EngineError when every measured query failed.
    """
    bench = BenchConfig(
        scenario=scenario_of(scenario),
        queries=queries,
        duration_s=duration_s,
        warmup_iters=warmup_iters,
        fake_first=fake_first,
        target_qps=target_qps,
        latency_bound_ms=latency_bound_ms,
        concurrency=concurrency,
        workers=workers,
        api=api,
        max_batch_size=max_batch_size,
        max_delay_ms=max_delay_ms,
        pipeline_stages=pipeline_stages,
        seed=seed,
        windows=windows,
        stability=stability_tolerance,
    )
    if bench.scenario is Scenario.SERVER and bench.concurrency is not None:
        raise InvalidInputError(
            "concurrency does not apply to the in-process server scenario: arrivals are Poisson "
            "at target_qps and the runtime takes every query (with --url it is the connection "
            "pool); drop --concurrency"
        )
    notes: list[str] = []
    base = session.config if session is not None and config is None else config
    cfg = resolve_config(base, device=device, batch_size=batch_size, workers=workers)
    if not (max_batch_size or pipeline_stages or split_batch):
        # the config's runtime technique, when the call names none
        bench = bench.replace(
            max_batch_size=cfg.max_batch_size,
            max_delay_ms=cfg.max_delay_ms if max_delay_ms is None else max_delay_ms,
            pipeline_stages=cfg.pipeline_stages,
            split_batch=cfg.split_batch,
        )
    else:
        bench = bench.replace(split_batch=split_batch)
    cfg = cfg.replace(
        max_batch_size=bench.max_batch_size,
        max_delay_ms=bench.max_delay_ms,
        pipeline_stages=bench.pipeline_stages,
        split_batch=bench.split_batch,
    )
    if dims or shapes:
        cfg = cfg.replace(
            dims={**cfg.dims, **(dims or {})},
            shapes={**cfg.shapes, **{k: tuple(v) for k, v in (shapes or {}).items()}},
        )
    if bench.scenario is Scenario.SINGLE_STREAM and cfg.workers not in (None, 1):
        _warn(
            f"the config's workers={cfg.workers} is ignored: single-stream keeps one query in "
            "flight on one thread",
            notes,
        )
        cfg = cfg.replace(workers=None)
    chosen: str | None = cfg.device
    if bench.pipeline_stages is not None:
        chosen = chosen or os.environ.get(DEVICES_ENV) or f"cpu(1)*{bench.pipeline_stages}"
    elif session is not None:
        chosen = session.device.text
    spec = parse_device(chosen)
    cfg = cfg.replace(device=spec.text)
    cores = len(available_cores())
    if spec.kind == "cpu" and spec.total_threads > cores:
        _warn(
            f"device {spec.text!r} is oversubscribed: {len(spec.instances)} instance(s) x "
            f"{spec.instances[0].threads} thread(s) = {spec.total_threads} threads for {cores} "
            f"core(s); the instances take turns on the cores (try 'cpu(1)*{cores}')",
            notes,
        )
    meter = MemoryMeter()
    meter.start()
    if bench.pipeline_stages is not None:
        run = _pipeline_run(model, cfg, bench, specs=inputs, feeds=feeds)
    else:
        run = _session_run(model, session, cfg, bench, specs=inputs, feeds=feeds)
        if bench.scenario is Scenario.OFFLINE and isinstance(run.sut, SessionSUT):
            bench = bench.replace(concurrency=run.workers)
    if (
        bench.scenario is Scenario.SINGLE_STREAM
        and isinstance(run.sut, SessionSUT)
        and run.sut.instances > 1
    ):
        notes.append(
            f"single-stream drives 1 of the {run.sut.instances} instances; the others idle "
            "(utilisation counts the one driven)"
        )
    try:
        measured = run_scenario(run.sut, bench, progress=progress)
        if run.extra.get("batching") is not None:
            from nnperf.runtime.batching import DynamicBatcher

            executor = getattr(run.sut, "executor", None)
            if isinstance(executor, DynamicBatcher):
                run.extra["batching"] = executor.stats().to_dict()
    finally:
        for close in run.closers:
            close()
    memory = meter.report(run.load_mib, run.per_instance_mib)
    return build_result(
        bench,
        measured,
        model=run.model,
        engine=run.engine,
        config=cfg,
        sut=run.sut,
        workers=run.workers,
        batch_size=run.batch,
        stages_ms=run.stages,
        inputs=run.inputs,
        threads_per_instance=run.threads,
        memory=memory,
        warnings_=notes,
        extra=run.extra,
        argv=argv,
    )
