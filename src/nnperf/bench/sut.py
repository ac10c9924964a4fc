"""Systems under test: a Session, any executor, or an HTTP server behind one interface.

MLPerf LoadGen's split: the load generator (:mod:`nnperf.bench.scenarios`) owns timing and
traffic — how many queries are outstanding, when each is issued, what is recorded — and the
system under test only answers queries. In Python the cheapest way to keep queries outstanding
depends on where a system completes them, so each system says which of three ways it answers
(:class:`Mode`); the load generator decides everything else in all three:

* ``blocking``: :meth:`SystemUnderTest.client` gives each load-generator thread a call that runs
  one query on that thread (a :class:`~nnperf.runtime.session.Session`'s instance, or an
  executor's ``submit(...).result()``). The client thread is bound to an instance, and pinned to
  its core on a pinned device (``cpu:1``), before the first query.
* ``callback``: :meth:`SystemUnderTest.issue` hands a query in and returns; the system calls
  ``done(error)`` exactly once from one of its own threads (the Submitter/Receiver queue).
* ``loop``: the system lives on an asyncio event loop in a thread of its own; the load generator
  runs its client coroutines there (:meth:`acall`), and ``issue`` works from any thread (asyncio
  over an executor, the HTTP client).

Every system except a bare Session also answers :meth:`issue`, which the open-loop server
scenario needs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import numpy as np

from nnperf.bench.client import Connection, metadata, request_bytes, split_url, tensor_descs
from nnperf.errors import EngineError, InvalidInputError, NnperfError, UnsupportedError
from nnperf.protocol import HEADER_LENGTH, encode_request
from nnperf.runtime.executor import Executor
from nnperf.runtime.observers import Observers, RunEvent
from nnperf.runtime.runner import Runner
from nnperf.runtime.session import Session
from nnperf.runtime.split import SplitBatcher
from nnperf.types import StrEnum, TensorDesc

__all__ = [
    "OFFLINE_ASYNC_CLIENTS",
    "Done",
    "ExecutorSUT",
    "HttpSUT",
    "Mode",
    "SessionSUT",
    "SystemUnderTest",
]

Done = Callable[[BaseException | None], None]
"""Completion of one issued query: ``done(None)`` or ``done(error)``, called exactly once."""

OFFLINE_ASYNC_CLIENTS = 64
"""Coroutines the offline scenario runs through ``api="async"`` by default. Queries past the
runtime's in-flight limit wait outside it at no cost, and enough waiting coroutines hide the event
loop's round trip (zoo:mnist on cpu(1)*2: 16 k queries/s with 5 clients, 30 k with 64)."""

QUEUE_DEPTH = 100
"""Queries the queue API keeps waiting in its input queue beyond the runtime's in-flight bound
(FuriosaAI's example value, the queue's default): small models need the depth."""


class Mode(StrEnum):
    """How a system under test answers queries (see the module docstring)."""

    BLOCKING = "blocking"
    CALLBACK = "callback"
    LOOP = "loop"


class _EngineBusy:
    """Observer summing engine time, for utilisation."""

    def __init__(self) -> None:
        self.busy_ns = 0
        self._lock = threading.Lock()

    def on_run(self, event: RunEvent) -> None:
        with self._lock:
            self.busy_ns += event.engine_end_ns - event.engine_start_ns


class SystemUnderTest:
    """What the load generator sends queries to.

    Attributes:
        kind: ``session``, ``runner``, ``batcher``, ``pipeline`` or ``http``.
        mode: how it answers (:class:`Mode`).
        device: the device string that runs the queries (empty when unknown: a remote server).
        instances: engine instances that run them (0 when unknown).
        default_concurrency: queries the offline scenario keeps outstanding unless told.
    """

    kind = "system"
    mode = Mode.BLOCKING
    device = ""
    instances = 0
    default_concurrency = 1

    def start(self) -> None:
        """Get ready to answer (threads, event loop, connections); called once, before any
        query."""

    def stop(self) -> None:
        """Release what :meth:`start` made; every issued query has completed by now."""

    def client(self, index: int) -> Callable[[], None]:
        """``blocking``: bind the calling thread (load-generator client ``index``) and return
        the call that runs one query on it, raising the query's error."""
        raise UnsupportedError(f"{self.kind} answers {self.mode.value} queries, not blocking calls")

    def issue(self, done: Done) -> None:
        """Hand one query in; ``done`` is called once it completed. May be called from any thread,
        including from inside another query's ``done``.

        Raises:
            NnperfError: the query was refused (overloaded, closed); ``done`` is not called.
        """
        raise UnsupportedError(
            f"a bare {self.kind} answers blocking calls only; the server scenario issues queries "
            "through an executor (Runner)"
        )

    async def acall(self) -> None:
        """``loop``: run one query on the system's event loop, raising its error."""
        raise UnsupportedError(f"{self.kind} has no event loop")

    def run_on_loop(
        self, coro: Coroutine[Any, Any, Any]
    ) -> concurrent.futures.Future[Any]:  # pragma: no cover - loop systems override
        """``loop``: schedule ``coro`` on the system's event loop."""
        raise UnsupportedError(f"{self.kind} has no event loop")

    def busy_ns(self) -> int | None:
        """Engine-busy time of the queries answered since :meth:`start`, in ns (``None``: the
        system cannot say, e.g. a remote server)."""
        return None

    def instances_driven(self, clients: int) -> int:
        """Instances that ``clients`` load-generator clients keep busy (utilisation's
        denominator)."""
        return self.instances


class SessionSUT(SystemUnderTest):
    """A :class:`Session` answering blocking calls: each client thread runs on one instance
    (round robin), calling the engine directly after validating the feed, so the load generator
    adds nothing a caller of ``Session.run`` would not pay. With a profiler (or any observer)
    attached, queries go through ``Session.run`` so each becomes a span."""

    kind = "session"
    mode = Mode.BLOCKING

    def __init__(self, session: Session, feed: Mapping[str, np.ndarray]) -> None:
        self.session = session
        self._feed = dict(feed)
        self._cells: list[list[int]] = []
        self._watch: _EngineBusy | None = None
        self.device = session.device.text
        self.instances = len(session.instances)
        self.default_concurrency = self.instances

    def client(self, index: int) -> Callable[[], None]:
        sess = self.session
        inst = sess.bind_thread(index)
        feed = self._feed
        if sess.observers:
            if self._watch is None:
                self._watch = _EngineBusy()
                sess.observers.add(self._watch)
            run = sess.run

            def traced() -> None:
                run(feed)

            return traced
        cell = [0]
        self._cells.append(cell)
        validate = sess.validator.validate
        engine_run = inst.run
        clock = time.perf_counter_ns

        def call() -> None:
            validate(feed)
            t = clock()
            engine_run(feed)
            cell[0] += clock() - t

        return call

    def stop(self) -> None:
        if self._watch is not None:
            self.session.observers.remove(self._watch)

    def busy_ns(self) -> int | None:
        return sum(c[0] for c in self._cells) + (self._watch.busy_ns if self._watch else 0)

    def instances_driven(self, clients: int) -> int:
        return min(self.instances, clients)


class SplitSUT(SystemUnderTest):
    """Split batching (AWS Neuron's dynamic batching) answering blocking calls: each call cuts
    its query into chunks and runs them at once across a Runner's instances, so a large query
    takes about 1/N of its time on N instances."""

    kind = "split"
    mode = Mode.BLOCKING

    def __init__(self, split: SplitBatcher, runner: Runner, feed: Mapping[str, np.ndarray]) -> None:
        self.split = split
        self.runner = runner
        self._feed = dict(feed)
        self._watch = _EngineBusy()
        self.device = runner.session.device.text
        self.instances = runner.instances
        self.default_concurrency = 1

    def start(self) -> None:
        self.runner.observers.add(self._watch)

    def stop(self) -> None:
        self.runner.observers.remove(self._watch)

    def client(self, index: int) -> Callable[[], None]:
        run = self.split.run
        feed = self._feed

        def call() -> None:
            run(feed)

        return call

    def busy_ns(self) -> int | None:
        return self._watch.busy_ns


class _LoopThread:
    """An asyncio event loop running in a daemon thread of its own."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.submit(coro).result()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Start ``coro`` as a task (on the loop thread), keeping a reference until it ends."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class _LoopSUT(SystemUnderTest):
    """Base of systems on an event loop: ``open``/``acall``/``aclose`` run on the loop thread."""

    mode = Mode.LOOP

    def __init__(self) -> None:
        self._lt: _LoopThread | None = None

    async def open(self) -> None:
        """Set up on the loop (connections, AsyncRunner)."""

    async def aclose(self) -> None:
        """Tear down on the loop."""

    def start(self) -> None:
        self._lt = _LoopThread(f"nnperf-bench-{self.kind}")
        try:
            self._lt.call(self.open())
        except BaseException:
            self._lt.close()
            self._lt = None
            raise

    def stop(self) -> None:
        if self._lt is None:
            return
        try:
            self._lt.call(self.aclose())
        finally:
            self._lt.close()
            self._lt = None

    def _thread(self) -> _LoopThread:
        if self._lt is None:
            raise InvalidInputError(f"{self.kind}: start() the system under test first")
        return self._lt

    def run_on_loop(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return self._thread().submit(coro)

    def issue(self, done: Done) -> None:
        lt = self._thread()

        async def one() -> None:
            try:
                await self.acall()
            except BaseException as exc:  # the query's own error, reported to the generator
                done(exc)
                return
            done(None)

        lt.loop.call_soon_threadsafe(lt.spawn, one())


class ExecutorSUT(_LoopSUT):
    """Any :class:`~nnperf.runtime.executor.Executor` (Runner, DynamicBatcher, Pipeline) through
    one of its APIs: ``sync`` (``submit(...).result()`` from the client threads; ``issue``
    through the future's callback), ``queue`` (the Submitter/Receiver queue: ``issue`` submits
    with the completion as context, a receiver thread completes) or ``async`` (an AsyncRunner on
    an event loop of its own). The executor is closed by :meth:`stop`."""

    def __init__(
        self,
        executor: Executor,
        feed: Mapping[str, np.ndarray],
        *,
        api: str = "sync",
        kind: str | None = None,
        device: str = "",
    ) -> None:
        super().__init__()
        if api not in ("sync", "queue", "async"):
            raise InvalidInputError(f"api: got {api!r}, expected one of sync, queue, async")
        self.executor = executor
        self.api = api
        self.kind = kind or type(executor).__name__.lower().replace("dynamic", "")
        self.mode = {"sync": Mode.BLOCKING, "queue": Mode.CALLBACK, "async": Mode.LOOP}[api]
        self.device = device
        self.instances = executor.instances
        self._feed = dict(feed)
        self._busy = _EngineBusy()
        self._watched: Observers | None = None
        self._receiver_thread: threading.Thread | None = None
        self._submitter: Any = None
        self._runner: Any = None
        inflight = executor.max_inflight
        self.default_concurrency = {
            "sync": inflight,
            "queue": inflight + QUEUE_DEPTH,
            "async": max(OFFLINE_ASYNC_CLIENTS, inflight),
        }[api]

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self._watched = self.executor.observers
        self._watched.add(self._busy)
        if self.api == "queue":
            from nnperf.runtime.queue import queue_over

            self._submitter, receiver = queue_over(self.executor)
            self._receiver_thread = threading.Thread(
                target=self._receive, args=(receiver,), name="nnperf-bench-recv", daemon=True
            )
            self._receiver_thread.start()
        elif self.api == "async":
            super().start()

    def stop(self) -> None:
        try:
            if self.api == "queue":
                self._submitter.close()
                if self._receiver_thread is not None:
                    self._receiver_thread.join()
            elif self.api == "async":
                super().stop()
        finally:
            self.executor.close()
            if self._watched is not None:
                self._watched.remove(self._busy)

    def busy_ns(self) -> int | None:
        return self._busy.busy_ns

    # -- sync ---------------------------------------------------------------------------------------
    def client(self, index: int) -> Callable[[], None]:
        if self.api != "sync":
            return super().client(index)
        submit = self.executor.submit
        feed = self._feed

        def call() -> None:
            submit(feed).result()

        return call

    def issue(self, done: Done) -> None:
        if self.api == "async":
            super().issue(done)
        elif self.api == "queue":
            self._submitter.submit(self._feed, context=done)
        else:
            fut = self.executor.submit(self._feed)

            def finished(f: concurrent.futures.Future[list[np.ndarray]]) -> None:
                done(concurrent.futures.CancelledError() if f.cancelled() else f.exception())

            fut.add_done_callback(finished)

    # -- queue --------------------------------------------------------------------------------------
    @staticmethod
    def _receive(receiver: Any) -> None:
        from nnperf.runtime.queue import QueryFailedError

        try:
            while True:
                try:
                    done, _ = receiver.recv()
                except QueryFailedError as exc:
                    exc.context(exc.error)
                    continue
                except NnperfError:  # QueueClosedError: submitter closed, everything received
                    return
                done(None)
        finally:
            receiver.close()

    # -- async --------------------------------------------------------------------------------------
    async def open(self) -> None:
        from nnperf.runtime.aio import AsyncRunner

        self._runner = AsyncRunner(backend=self.executor)

    async def acall(self) -> None:
        await self._runner.run(self._feed)

    async def aclose(self) -> None:
        await self._runner.close()


class HttpSUT(_LoopSUT):
    """A KServe v2 server (nnperf, Triton, KServe, MLServer) over HTTP/1.1 keep-alive
    connections, measured from the client side. Requests are encoded once per distinct feed, with
    the binary tensor extension by default; :meth:`start` opens every connection and sends the
    warm-up requests.

    Attributes:
        feeds: the feeds sent in turn (built from the model's metadata when none are given).
        descs: the inputs the server declares (empty when feeds were given).
        warmup_ms: wall time of each warm-up round (one request per connection).
    """

    kind = "http"

    def __init__(
        self,
        url: str,
        model_name: str,
        *,
        feeds: Sequence[Mapping[str, np.ndarray]] | None = None,
        make: Callable[[Sequence[TensorDesc]], dict[str, np.ndarray]] | None = None,
        connections: int = 1,
        binary: bool = True,
        version: str | None = None,
        token: str | None = None,
        warmup_queries: int = 10,
    ) -> None:
        super().__init__()
        if connections < 1:
            raise InvalidInputError(f"concurrency: got {connections}, expected >= 1")
        if feeds is not None and not feeds:
            raise InvalidInputError("inputs: got an empty list; expected at least one feed")
        self.url = url
        self.model_name = model_name
        self.host, self.port = split_url(url)
        self.base = f"/v2/models/{model_name}" + (f"/versions/{version}" if version else "")
        self.auth = {"Authorization": f"Bearer {token}"} if token else {}
        self.binary = binary
        self.feeds: list[dict[str, np.ndarray]] = [dict(f) for f in feeds or []]
        self._make = make
        self.descs: list[TensorDesc] = []
        self.connections = connections
        self.default_concurrency = connections
        self.warmup_queries = warmup_queries
        self.warmup_ms: list[float] = []
        self._payloads: list[bytes] = []
        self._next = 0
        self._free: asyncio.Queue[Connection] | None = None
        self._conns: list[Connection] = []

    async def open(self) -> None:
        first = Connection(self.host, self.port)
        self._conns = [first] + [
            Connection(self.host, self.port) for _ in range(self.connections - 1)
        ]
        if not self.feeds:
            meta = await metadata(first, self.host, self.port, self.base, self.auth)
            self.descs = tensor_descs(meta)
            if self._make is None:
                raise InvalidInputError("HttpSUT: no feeds and no way to make them")
            self.feeds = [self._make(self.descs)]
        for feed in self.feeds:
            body, header_length = encode_request(
                feed, binary=self.binary, binary_output=self.binary
            )
            headers = dict(self.auth)
            if header_length is not None:
                headers[HEADER_LENGTH] = str(header_length)
                headers["Content-Type"] = "application/octet-stream"
            else:
                headers["Content-Type"] = "application/json"
            self._payloads.append(
                request_bytes(self.host, self.port, self.base + "/infer", body, headers)
            )
        self._free = asyncio.Queue()
        for conn in self._conns:
            self._free.put_nowait(conn)
        # Warm-up: every connection opened and a few requests answered, none measured.
        rounds = max(1, self.warmup_queries // self.connections)
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            for i, conn in enumerate(self._conns):
                status, _, body = await conn.request(self._payloads[i % len(self._payloads)])
                if status != 200:
                    raise InvalidInputError(
                        f"warm-up request to {self.url}{self.base}/infer failed: HTTP {status}: "
                        f"{body[:300].decode('utf-8', 'replace')}"
                    )
            self.warmup_ms.append((time.perf_counter_ns() - t0) / 1e6)

    async def acall(self) -> None:
        assert self._free is not None  # set by open()
        payload = self._payloads[self._next % len(self._payloads)]
        self._next += 1
        conn = await self._free.get()
        try:
            status, _, body = await conn.request(payload)
        except (OSError, asyncio.IncompleteReadError, ValueError, asyncio.LimitOverrunError) as e:
            raise EngineError(f"{type(e).__name__}: {e}") from e
        finally:
            self._free.put_nowait(conn)
        if status != 200:
            raise EngineError(f"HTTP {status}: {body[:300].decode('utf-8', 'replace')}")

    async def aclose(self) -> None:
        for conn in self._conns:
            conn.close()
