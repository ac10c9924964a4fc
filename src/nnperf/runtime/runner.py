"""``Runner``: queries submitted from any thread, run by worker threads over the device's instances.

Workers are host threads, each bound to one engine instance (worker ``i`` on instance
``i % instances``); several workers per instance keep an instance busy while another query's
host-side work happens (Furiosa's ``worker_num``). A bound on queries inside the runtime
(``max_inflight``, default instances + 3 as AWS Neuron) gives back-pressure instead of unbounded
memory.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from types import TracebackType

import numpy as np

from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError, OverloadedError
from nnperf.model import ModelSource
from nnperf.runtime.executor import Done
from nnperf.runtime.feeds import Inputs
from nnperf.runtime.observers import Observers, RunEvent
from nnperf.runtime.session import Session, _batch_of, resolve_config, warn_unapplied_technique
from nnperf.types import TensorDesc

__all__ = ["MAX_INFLIGHT_ENV", "Done", "Runner", "Slots", "create_runner", "default_max_inflight"]


MAX_INFLIGHT_ENV = "NNPERF_MAX_INFLIGHT"


def default_max_inflight(instances: int, workers: int) -> int:
    """``$NNPERF_MAX_INFLIGHT`` if set, else ``max(instances, workers) + 3``.

    Raises:
        InvalidInputError: the environment variable is not a positive integer.
    """
    env = os.environ.get(MAX_INFLIGHT_ENV)
    if env:
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value < 1:
            raise InvalidInputError(
                f"{MAX_INFLIGHT_ENV}={env!r}: expected a positive integer (queries inside the "
                "runtime at once)"
            )
        return value
    return max(instances, workers) + 3


class Slots:
    """A counting semaphore whose acquire and release are single C calls.

    ``threading.(Bounded)Semaphore`` is pure Python (a Condition, a lock, a notify: about 1 µs per
    acquire and per release, measured on the per-query path); this one is a
    ``queue.SimpleQueue`` holding one token per free slot, so taking and returning a slot costs a
    C-level ``get`` / ``put`` and a blocked taker sleeps on a C lock without the GIL.

    ``wake_batch`` > 1 adds hysteresis for a producer that fills every slot (a bulk issue): a
    blocked :meth:`acquire` sleeps until that many slots are free instead of waking for each one.
    Every wake-up of the issuing thread costs it tens of microseconds of a core the workers are
    using, once per query when it wakes per slot; woken per batch it refills the batch in one go
    (``benchmarks/loadgen.py``, ``benchmarks/concurrency.py``). Owners choose a batch below the
    slots that are waiting to run, so the workers never go idle meanwhile. While a taker sleeps,
    other blocking takers queue behind it rather than take freed slots one by one.
    """

    __slots__ = ("_cond", "_tokens", "_waiters", "limit", "wake_batch")

    def __init__(self, limit: int, *, wake_batch: int = 1) -> None:
        """``limit`` free slots (at most 1 000 000: one token each is allocated up front)."""
        if not 1 <= limit <= 1_000_000:
            raise InvalidInputError(
                f"max_inflight: got {limit}, expected 1 to 1000000 queries inside the runtime"
            )
        self.limit = limit
        self.wake_batch = max(1, min(wake_batch, limit))
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(limit):
            self._tokens.put(None)
        self._cond = threading.Condition(threading.Lock())
        self._waiters = 0

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a slot; False when none freed within ``timeout`` seconds (or at once if not blocking)."""
        if self.wake_batch == 1 or not blocking:
            try:
                self._tokens.get(blocking, timeout)
            except queue.Empty:
                return False
            return True
        if not self._waiters and self.try_acquire():
            return True
        return self._acquire_batched(timeout)

    def _acquire_batched(self, timeout: float | None) -> bool:
        """Sleep until ``wake_batch`` slots are free (or the deadline), then take one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        tokens = self._tokens
        while True:
            with self._cond:
                self._waiters += 1
                try:
                    while tokens.qsize() < self.wake_batch:
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            break  # out of time: take any one that is free
                        self._cond.wait(remaining)
                finally:
                    self._waiters -= 1
            if self.try_acquire():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            # another taker emptied the batch first: sleep again

    def release(self) -> None:
        """Return a slot (only ever after a successful :meth:`acquire`)."""
        tokens = self._tokens
        tokens.put(None)
        # ``_waiters`` is read without the lock: a taker counts itself in under the lock and
        # then looks at the tokens, so this put is either seen by it or followed by this notify.
        if self._waiters and tokens.qsize() >= self.wake_batch:
            with self._cond:
                self._cond.notify_all()

    def try_acquire(self) -> bool:
        """Take a slot if one is free now (no exception raised and caught when none is)."""
        if not self._tokens.qsize():
            return False
        try:
            self._tokens.get_nowait()
        except queue.Empty:  # taken by another thread since the look
            return False
        return True

    def free(self) -> int:
        """Free slots now."""
        return self._tokens.qsize()

    def trim(self) -> None:
        """Drop tokens beyond ``limit`` (returned by queries let in without one)."""
        while self._tokens.qsize() > self.limit:
            try:
                self._tokens.get_nowait()
            except queue.Empty:
                return

    @property
    def _value(self) -> int:
        """Free slots now (the name ``threading.Semaphore`` uses, for checks in tests)."""
        return self._tokens.qsize()


class _Job:
    __slots__ = ("done", "dropped", "feeds", "future", "names", "queued_ns", "submit_ns")

    def __init__(
        self,
        feeds: dict[str, np.ndarray],
        future: Future[list[np.ndarray]] | None,
        submit_ns: int,
        names: list[str] | None,
        queued_ns: int = 0,
        done: Done | None = None,
        dropped: Callable[[], bool] | None = None,
    ) -> None:
        self.feeds = feeds
        self.future = future
        self.submit_ns = submit_ns
        self.names = names
        self.queued_ns = queued_ns
        self.done = done
        self.dropped = dropped


_STOP = None


def _call(done: Done | None, outputs: list[np.ndarray] | None, error: BaseException | None) -> None:
    """Run a completion callback; one that raises must not kill the worker."""
    try:
        done(outputs, error)  # type: ignore[misc]  # set whenever future is None
    except BaseException:  # the callback's contract is not to raise
        pass


class Runner:
    """Runs queries on worker threads over every instance of a device.

    Build one with :func:`create_runner`. ``submit`` returns a ``concurrent.futures.Future``;
    ``run`` blocks for the result. Every submitted query gets exactly one result or one error.
    """

    def __init__(
        self,
        session: Session,
        *,
        workers: int | None = None,
        max_inflight: int | None = None,
        close_session: bool = True,
    ) -> None:
        """Start worker threads over ``session``'s instances.

        Args:
            session: the loaded model.
            workers: worker threads (default: the config's, else one per instance).
            max_inflight: bound on queries inside (default: the config's, else
                ``$NNPERF_MAX_INFLIGHT``, else max(instances, workers) + 3).
            close_session: close ``session`` when the runner closes (default true).
        """
        self.session = session
        self._observers = session.observers
        self._close_session = close_session
        n_instances = len(session.instances)
        self.workers = workers or session.config.workers or n_instances
        if self.workers < 1:
            raise InvalidInputError(f"workers: got {self.workers}, expected >= 1")
        self.max_inflight = (
            max_inflight
            or session.config.max_inflight
            or default_max_inflight(n_instances, self.workers)
        )
        # a blocked submit wakes when half the slots beyond the running queries are free
        self._slots = Slots(
            self.max_inflight, wake_batch=(self.max_inflight - min(self.workers, n_instances)) // 2
        )
        self._output_set = frozenset(o.name for o in session.outputs)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        # Queries offered (``offer``) while every slot was taken: they wait here, outside the
        # runtime, in arrival order, and the worker that frees a slot admits the next one.
        self._parked: deque[_Job] = deque()
        self._admit_lock = threading.Lock()
        self._closed = False
        self._close_lock = threading.Lock()
        self._threads = [
            threading.Thread(
                target=self._work,
                args=(i % n_instances,),
                name=f"nnperf-worker-{i}",
                daemon=True,
            )
            for i in range(self.workers)
        ]
        for t in self._threads:
            t.start()

    @property
    def inputs(self) -> tuple[TensorDesc, ...]:
        """Model inputs."""
        return self.session.inputs

    @property
    def outputs(self) -> tuple[TensorDesc, ...]:
        """Model outputs."""
        return self.session.outputs

    @property
    def observers(self) -> Observers:
        """Who watches this runner's runs (its session's observers)."""
        return self._observers

    @property
    def instances(self) -> int:
        """Engine instances the workers run on."""
        return len(self.session.instances)

    @property
    def free_slots(self) -> int:
        """In-flight slots free now (a snapshot: other threads may take or return one at once)."""
        return self._slots.free()

    @property
    def config(self) -> RunConfig:
        """The run configuration."""
        return self.session.config

    def submit(
        self,
        inputs: Inputs,
        *,
        outputs: list[str] | None = None,
        timeout_s: float | None = None,
    ) -> Future[list[np.ndarray]]:
        """Queue one query; the returned future holds its outputs or its error.

        Args:
            inputs: one array, a list in input order, or a dict by name (validated here, so a bad
                feed raises at the call site and never occupies a worker).
            outputs: names of the outputs to return (default: all, in model order).
            timeout_s: how long to wait for an in-flight slot when ``max_inflight`` queries are
                already inside; ``None`` waits as long as needed.

        Raises:
            InvalidInputError: a bad feed, or the runner is closed.
            OverloadedError: no slot freed within ``timeout_s``.
        """
        future: Future[list[np.ndarray]] = Future()
        self._enqueue(inputs, outputs, timeout_s, future, None)
        return future

    def submit_call(
        self,
        inputs: Inputs,
        done: Done,
        *,
        outputs: list[str] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """Queue one query whose outcome goes to ``done`` instead of a future (the cheap path).

        ``done(outputs, None)`` or ``done(None, error)`` is called exactly once, on the worker
        thread that ran the query (or on the closing thread with a ``CancelledError`` when
        ``close(cancel_pending=True)`` drops it). It must be quick and must not raise. No
        ``concurrent.futures.Future`` is made: the queue and asyncio APIs use this to save its
        locks and callbacks per query.

        Args and raises: as :meth:`submit` (an error raised here means ``done`` is never called).
        """
        self._enqueue(inputs, outputs, timeout_s, None, done)

    def offer(
        self,
        inputs: Inputs,
        done: Done,
        *,
        outputs: list[str] | None = None,
        dropped: Callable[[], bool] | None = None,
    ) -> None:
        """Queue one query without ever blocking (the asyncio path).

        With a free in-flight slot the query goes straight in, as :meth:`submit_call`. When
        ``max_inflight`` queries are already inside, it waits in a FIFO *outside* the runtime,
        and the worker that frees the next slot admits it. Admission needs no round trip through
        the caller's thread: an event loop wakes up in hundreds of microseconds under load, longer
        than a small model's query, so workers waiting for the loop to hand them the next query
        sit idle. The caller bounds how many queries it offers (an ``await`` holds each one).

        Args:
            inputs: as :meth:`submit` (validated here: a bad feed raises and nothing is queued).
            done: completion callback, as :meth:`submit_call`.
            outputs: names of the outputs to return (default: all, in model order).
            dropped: asked on the worker just before the query would run; ``True`` (the caller
                gave up, e.g. its asyncio future was cancelled) skips the run and calls
                ``done(None, CancelledError())``.

        Raises:
            InvalidInputError: a bad feed or output name, or the runner is closed.
        """
        submit_ns = time.perf_counter_ns()
        feeds = self._check(inputs, outputs)
        queued_ns = submit_ns if self._observers.items else 0
        job = _Job(feeds, None, submit_ns, outputs, queued_ns, done, dropped)
        parked = self._parked
        with self._close_lock:
            if self._closed:
                raise InvalidInputError("runner is closed; create a new one with create_runner()")
            if not parked and self._slots.try_acquire():
                self._queue.put(job)
                return
            parked.append(job)
        # A worker may have freed a slot between the failed acquire and the append; it looks at
        # ``_parked`` only after releasing, so one of the two always admits the job.
        if self._slots.free():
            self._admit()

    def _admit(self) -> None:
        """Move parked queries into the runtime while slots are free.

        Whoever changes one side (a query parked, a slot freed) looks at the other side
        afterwards, so a parked query never waits while a slot is free.
        """
        parked = self._parked
        slots = self._slots
        put = self._queue.put
        while parked:
            if not slots.try_acquire():
                return  # the next slot freed admits the next query
            # Pop and put as one step for close(), which must not queue its stop markers
            # between them (the query would land behind them and never run). Held for two C
            # calls, so it is rarely contended.
            with self._admit_lock:
                job = parked.popleft() if parked else None
                if job is not None:
                    put(job)
            if job is None:  # another thread admitted it first
                slots.release()
                # look again: a query may have been parked meanwhile

    def _check(self, inputs: Inputs, outputs: list[str] | None) -> dict[str, np.ndarray]:
        if self._closed:
            raise InvalidInputError("runner is closed; create a new one with create_runner()")
        feeds = self.session.validator.normalise(inputs)
        if outputs is not None:
            bad = [n for n in outputs if n not in self._output_set]
            if bad:
                raise InvalidInputError(
                    f"unknown output(s) {bad}; expected names among {[o.name for o in self.outputs]}"
                )
        return feeds

    def _enqueue(
        self,
        inputs: Inputs,
        outputs: list[str] | None,
        timeout_s: float | None,
        future: Future[list[np.ndarray]] | None,
        done: Done | None,
    ) -> None:
        submit_ns = time.perf_counter_ns()
        feeds = self._check(inputs, outputs)
        if not self._slots.acquire(True, timeout_s):
            raise OverloadedError(
                f"{self.max_inflight} queries already in flight and none finished within "
                f"{timeout_s} s; retry later, or raise max_inflight / ${MAX_INFLIGHT_ENV}"
            )
        queued_ns = time.perf_counter_ns() if self._observers.items else 0
        with self._close_lock:
            if self._closed:
                self._slots.release()
                raise InvalidInputError("runner is closed; create a new one with create_runner()")
            self._queue.put(_Job(feeds, future, submit_ns, outputs, queued_ns, done))

    def run(self, inputs: Inputs, *, timeout_s: float | None = None) -> list[np.ndarray]:
        """Submit one query and wait for its outputs.

        Raises:
            InvalidInputError, EngineError, OverloadedError, TimeoutError.
        """
        return self.submit(inputs).result(timeout=timeout_s)

    def _release(self) -> None:
        """Give a slot back; when a query is parked, hand the slot straight to it instead (one
        queue put, not a token returned and taken again)."""
        parked = self._parked
        if parked:
            with self._admit_lock:  # as in _admit: close() sees it parked or queued, never between
                job = parked.popleft() if parked else None
                if job is not None:
                    self._queue.put(job)
            if job is not None:
                return
        self._slots.release()
        if parked:
            self._admit()

    def _work(self, index: int) -> None:
        inst = self.session.bind_thread(index)
        obs_list = self._observers
        get = self._queue.get
        release = self._release
        while True:
            job = get()
            if job is None:
                return
            fut = job.future
            if fut is not None and not fut.set_running_or_notify_cancel():
                release()
                continue
            if job.dropped is not None and job.dropped():
                release()
                _call(job.done, None, CancelledError())
                continue
            observers = obs_list.items
            start = time.perf_counter_ns() if observers else 0
            error: str | None = None
            try:
                result = (
                    inst.run(job.feeds)
                    if job.names is None
                    else inst.run_outputs(job.names, job.feeds)
                )
            except BaseException as exc:  # the caller gets every error through its future
                error = type(exc).__name__
                end = time.perf_counter_ns() if observers else 0
                release()
                if fut is None:
                    _call(job.done, None, exc)
                else:
                    fut.set_exception(exc)
            else:
                end = time.perf_counter_ns() if observers else 0
                release()
                if fut is None:
                    _call(job.done, result, None)
                else:
                    fut.set_result(result)
            if observers:
                event = RunEvent(
                    session_id=id(self.session),
                    instance=index,
                    thread_id=threading.get_ident(),
                    batch=_batch_of(job.feeds),
                    submit_ns=job.submit_ns,
                    start_ns=start,
                    engine_start_ns=start,
                    engine_end_ns=end,
                    end_ns=end,
                    error=error,
                    queued_ns=job.queued_ns or None,
                )
                for obs in observers:
                    obs.on_run(event)

    def close(self, *, cancel_pending: bool = False) -> None:
        """Stop accepting queries, finish (or cancel) queued ones and join the workers.

        Args:
            cancel_pending: cancel queries not yet started instead of running them.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            with self._admit_lock:  # no admission half done: its query is in the queue now
                parked = list(self._parked)
                self._parked.clear()
                if not cancel_pending:
                    # Offered queries still run: they enter past the in-flight bound, once,
                    # ahead of the stop markers below.
                    for waiting in parked:
                        self._queue.put(waiting)
            if cancel_pending:
                for waiting in parked:
                    _call(waiting.done, None, CancelledError())
                while True:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        continue
                    if job.future is None:
                        self._slots.release()
                        _call(job.done, None, CancelledError())
                    elif job.future.cancel():
                        self._slots.release()
            for _ in self._threads:
                self._queue.put(_STOP)
        for t in self._threads:
            if t is not threading.current_thread():
                t.join()
        self._slots.trim()  # offered queries let in at close returned slots they never took
        if self._close_session:
            self.session.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Runner(model={self.session.model.name!r}, device={self.session.device.text!r}, "
            f"workers={self.workers})"
        )


def create_runner(
    model: ModelSource,
    *,
    device: str | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    config: RunConfig | str | None = None,
    engine: str | None = None,
    precision: str | None = None,
) -> Runner:
    """Load ``model`` on every instance of ``device`` and start ``workers`` worker threads.

    Args:
        model: path, ``zoo:NAME``, bytes or ``onnx.ModelProto``.
        device: device string; default the config's, then ``$NNPERF_DEVICES``, then ``cpu``.
        workers: worker threads (default: one per instance).
        batch_size: fix the model's free batch dimension.
        config: a :class:`RunConfig` or a JSON config path.
        engine: ``onnxruntime`` (default) or ``openvino``; default: the config's.
        precision: ``f32`` (default), ``bf16`` or ``f16`` where the engine offers it.
    """
    cfg = resolve_config(
        config,
        device=device,
        batch_size=batch_size,
        workers=workers,
        engine=engine,
        precision=precision,
    )
    warn_unapplied_technique(cfg, "a Runner")
    return Runner(Session(model, config=cfg), workers=cfg.workers)
