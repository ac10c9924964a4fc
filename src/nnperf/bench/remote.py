"""Load generation against a KServe v2 HTTP server (``nnperf bench --url``).

The same traffic patterns as the in-process bench, driven over HTTP, with latency measured on
the client (what a user of the server sees):

* ``single-stream``: one request at a time on one connection.
* ``offline`` (concurrency): ``concurrency`` connections, each sending its next request as soon
  as the previous answer arrives; reports throughput.
* ``server``: Poisson arrivals at ``target_qps`` over a pool of ``concurrency`` connections;
  latency runs from the *scheduled* arrival time, so time spent waiting for a free connection
  counts (no coordinated omission).

Works against any v2 server (nnperf, Triton, KServe, MLServer). The client is a small HTTP/1.1
keep-alive client on asyncio streams rather than an HTTP library: as in MLPerf LoadGen, the load
generator's own cost per query must stay small next to the system under test (a few tens of µs
here, against hundreds for a general-purpose async client), or it would be measured too.
Requests are encoded once per distinct input, with the binary tensor extension by default.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from nnperf.bench.stats import LatencyStats
from nnperf.errors import InvalidInputError, NnperfError, NotFoundError
from nnperf.protocol import DATATYPES, HEADER_LENGTH, encode_request
from nnperf.types import TensorDesc

__all__ = ["REMOTE_SCHEMA", "RemoteBenchResult", "bench_remote", "run_remote_benchmark"]

REMOTE_SCHEMA = "nnperf.bench.remote/1"
_SCENARIOS = ("single-stream", "offline", "server")


@dataclass(frozen=True)
class RemoteBenchResult:
    """What one remote benchmark measured (client side).

    Attributes:
        url: the server's base URL.
        model: the model name on the server.
        scenario: ``single-stream``, ``offline`` or ``server``.
        concurrency: connections used.
        target_qps: the server scenario's offered load, else ``None``.
        batch_size: rows per request.
        binary: whether tensors used the binary extension.
        queries: requests answered with 200 in the measured phase.
        errors: requests that failed (non-200 status or connection error).
        duration_s: wall time of the measured phase, in seconds.
        throughput_qps: answered requests per second.
        latency: client-side latency statistics of answered requests (``None`` if none).
        error_samples: up to 5 error messages.
    """

    url: str
    model: str
    scenario: str
    concurrency: int
    target_qps: float | None
    batch_size: int
    binary: bool
    queries: int
    errors: int
    duration_s: float
    throughput_qps: float
    latency: LatencyStats | None
    error_samples: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``schema`` ``nnperf.bench.remote/1``; latencies in ms)."""
        return {
            "schema": REMOTE_SCHEMA,
            "url": self.url,
            "model": self.model,
            "scenario": self.scenario,
            "concurrency": self.concurrency,
            "target_qps": self.target_qps,
            "batch_size": self.batch_size,
            "binary": self.binary,
            "queries": self.queries,
            "errors": self.errors,
            "duration_s": round(self.duration_s, 6),
            "throughput_qps": round(self.throughput_qps, 4),
            "latency_ms": self.latency.to_dict() if self.latency else None,
            "error_samples": list(self.error_samples),
        }

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [
            f"{self.scenario} against {self.url} model {self.model!r} "
            f"(concurrency {self.concurrency}"
            + (f", target {self.target_qps:g} QPS" if self.target_qps else "")
            + f", batch {self.batch_size}, {'binary' if self.binary else 'JSON'} tensors)",
            f"  queries {self.queries}, errors {self.errors}, duration {self.duration_s:.3f} s, "
            f"throughput {self.throughput_qps:.1f} QPS",
        ]
        if self.latency is not None:
            s = self.latency
            lines.append(
                f"  latency ms: min {s.min_ms:.3f}  p50 {s.p50_ms:.3f}  p90 {s.p90_ms:.3f}  "
                f"p95 {s.p95_ms:.3f}  p99 {s.p99_ms:.3f}  max {s.max_ms:.3f}"
            )
        for e in self.error_samples:
            lines.append(f"  error: {e}")
        return "\n".join(lines)


class _HttpError(Exception):
    pass


class _Connection:
    """One HTTP/1.1 keep-alive connection (reconnects after the server closes it)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, limit=1 << 20
            )
        return self._reader, self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(self, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send a ready-made request; return (status, lower-cased headers, body)."""
        reader, writer = await self._open()
        try:
            writer.write(payload)
            if len(payload) > 65536:
                await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if line:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                parts = []
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    parts.append(await reader.readexactly(size + 2))
                    if size == 0:
                        break
                body = b"".join(p[:-2] for p in parts)
            else:
                body = await reader.read()
                self.close()
            if headers.get("connection", "").lower() == "close":
                self.close()
            return status, headers, body
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            raise


def _split_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise InvalidInputError(
            f"url: got {url!r}, expected http://HOST:PORT (https is not supported by the load "
            "generator)"
        )
    return parts.hostname, parts.port or 80


def _request_bytes(
    host: str, port: int, path: str, body: bytes, extra: Mapping[str, str], method: str = "POST"
) -> bytes:
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in extra.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


async def _metadata(
    conn: _Connection, host: str, port: int, path: str, auth: Mapping[str, str]
) -> dict[str, Any]:
    status, _, body = await conn.request(_request_bytes(host, port, path, b"", auth, "GET"))
    if status == 404:
        raise NotFoundError(f"the server has no model at {path}: {body[:300]!r}")
    if status != 200:
        raise InvalidInputError(f"GET {path}: HTTP {status}: {body[:300]!r}")
    data: dict[str, Any] = json.loads(body)
    return data


def _descs(meta: Mapping[str, Any]) -> list[TensorDesc]:
    out = []
    for t in meta.get("inputs", []):
        dtype = DATATYPES.get(t["datatype"])
        if dtype is None or dtype == "object":
            raise InvalidInputError(
                f"input {t['name']!r} has datatype {t['datatype']}; the load generator makes "
                "numeric inputs only — pass inputs= explicitly"
            )
        shape = tuple(
            "batch" if i == 0 and d < 0 else (1 if d < 0 else d) for i, d in enumerate(t["shape"])
        )
        out.append(TensorDesc(t["name"], shape, dtype))
    return out


async def bench_remote(
    url: str,
    model_name: str,
    *,
    scenario: str = "single-stream",
    queries: int | None = None,
    duration_s: float | None = None,
    concurrency: int | None = None,
    target_qps: float | None = None,
    inputs: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]] | None = None,
    batch_size: int = 1,
    binary: bool = True,
    version: str | None = None,
    token: str | None = None,
    warmup_queries: int = 10,
    seed: int = 0,
) -> RemoteBenchResult:
    """The coroutine behind :func:`run_remote_benchmark` (same arguments)."""
    if scenario not in _SCENARIOS:
        raise InvalidInputError(f"scenario: got {scenario!r}, expected one of {list(_SCENARIOS)}")
    if scenario == "server" and (target_qps is None or target_qps <= 0):
        raise InvalidInputError("the server scenario needs target_qps > 0 (e.g. --target-qps 100)")
    if queries is None and duration_s is None:
        queries = 100 if scenario == "single-stream" else 1000
    min_queries = queries or 0
    min_duration_ns = int((duration_s or 0.0) * 1e9)
    if concurrency is None:
        concurrency = {"single-stream": 1, "offline": 8, "server": 64}[scenario]
    if scenario == "single-stream":
        concurrency = 1
    if concurrency < 1:
        raise InvalidInputError(f"concurrency: got {concurrency}, expected >= 1")
    host, port = _split_url(url)
    base = f"/v2/models/{model_name}" + (f"/versions/{version}" if version else "")
    auth = {"Authorization": f"Bearer {token}"} if token else {}

    first = _Connection(host, port)
    if inputs is None:
        from nnperf.bench.inputs import make_feeds

        meta = await _metadata(first, host, port, base, auth)
        feed_list = [make_feeds(_descs(meta), batch_size=batch_size, seed=seed)]
    elif isinstance(inputs, Mapping):
        feed_list = [dict(inputs)]
    else:
        feed_list = [dict(x) for x in inputs]
        if not feed_list:
            raise InvalidInputError("inputs: got an empty list; expected at least one feed")
    payloads = []
    for feeds in feed_list:
        body, header_length = encode_request(feeds, binary=binary, binary_output=binary)
        headers = dict(auth)
        if header_length is not None:
            headers[HEADER_LENGTH] = str(header_length)
            headers["Content-Type"] = "application/octet-stream"
        else:
            headers["Content-Type"] = "application/json"
        payloads.append(_request_bytes(host, port, base + "/infer", body, headers))

    conns = [first] + [_Connection(host, port) for _ in range(concurrency - 1)]
    latencies: list[int] = []
    errors: list[str] = []
    n_errors = 0

    async def one(conn: _Connection, index: int, scheduled_ns: int | None = None) -> None:
        nonlocal n_errors
        t0 = time.perf_counter_ns() if scheduled_ns is None else scheduled_ns
        try:
            status, _, body = await conn.request(payloads[index % len(payloads)])
        except (OSError, asyncio.IncompleteReadError, ValueError, asyncio.LimitOverrunError) as e:
            status, body = -1, f"{type(e).__name__}: {e}".encode()
        t1 = time.perf_counter_ns()
        if status == 200:
            latencies.append(t1 - t0)
        else:
            n_errors += 1
            if len(errors) < 5:
                errors.append(f"HTTP {status}: {body[:300].decode('utf-8', 'replace')}")

    # Warm-up: every connection opened and a few requests answered, none measured.
    for conn in conns:
        for i in range(max(1, warmup_queries // concurrency)):
            status, _, body = await conn.request(payloads[i % len(payloads)])
            if status != 200:
                raise InvalidInputError(
                    f"warm-up request to {url}{base}/infer failed: HTTP {status}: "
                    f"{body[:300].decode('utf-8', 'replace')}"
                )

    issued = 0
    start = time.perf_counter_ns()

    def more() -> bool:
        return issued < min_queries or time.perf_counter_ns() - start < min_duration_ns

    if scenario in ("single-stream", "offline"):

        async def loop(conn: _Connection) -> None:
            nonlocal issued
            while more():
                index = issued
                issued += 1
                await one(conn, index)

        await asyncio.gather(*(loop(c) for c in conns))
    else:
        assert target_qps is not None
        rng = np.random.default_rng(seed)
        free: asyncio.Queue[_Connection] = asyncio.Queue()
        for c in conns:
            free.put_nowait(c)
        tasks: set[asyncio.Task[None]] = set()

        async def scheduled(index: int, at_ns: int) -> None:
            conn = await free.get()
            try:
                await one(conn, index, at_ns)
            finally:
                free.put_nowait(conn)

        next_ns = start
        while more():
            next_ns += int(rng.exponential(1e9 / target_qps))
            delay_ns = next_ns - time.perf_counter_ns()
            if delay_ns > 0:
                await asyncio.sleep(delay_ns / 1e9)
            task = asyncio.create_task(scheduled(issued, next_ns))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            issued += 1
        if tasks:
            await asyncio.gather(*list(tasks))
    elapsed_ns = time.perf_counter_ns() - start
    for c in conns:
        c.close()
    return RemoteBenchResult(
        url=url,
        model=model_name,
        scenario=scenario,
        concurrency=concurrency,
        target_qps=target_qps if scenario == "server" else None,
        batch_size=int(next(iter(feed_list[0].values())).shape[0]) if feed_list[0] else 1,
        binary=binary,
        queries=len(latencies),
        errors=n_errors,
        duration_s=elapsed_ns / 1e9,
        throughput_qps=len(latencies) / (elapsed_ns / 1e9) if elapsed_ns else 0.0,
        latency=LatencyStats.from_ns(latencies) if latencies else None,
        error_samples=tuple(errors),
    )


def run_remote_benchmark(
    url: str,
    model_name: str,
    *,
    scenario: str = "single-stream",
    queries: int | None = None,
    duration_s: float | None = None,
    concurrency: int | None = None,
    target_qps: float | None = None,
    inputs: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]] | None = None,
    batch_size: int = 1,
    binary: bool = True,
    version: str | None = None,
    token: str | None = None,
    warmup_queries: int = 10,
    seed: int = 0,
) -> RemoteBenchResult:
    """Drive a KServe v2 server at ``url`` and measure it from the client side.

    Args:
        url: ``http://HOST:PORT`` of the server.
        model_name: the model's name on the server.
        scenario: ``single-stream`` (default), ``offline`` (closed loop over ``concurrency``
            connections) or ``server`` (Poisson arrivals at ``target_qps``).
        queries: minimum requests to measure (default 100 single-stream, else 1000 when
            ``duration_s`` is not given either).
        duration_s: minimum measured time, in seconds (default: none).
        concurrency: connections (default 1 single-stream, 8 offline, 64 server).
        target_qps: offered load of the server scenario, in requests per second.
        inputs: one feed ``{name: array}`` or a list of feeds sent in turn; default one random
            feed built from the model's metadata (``GET /v2/models/NAME``).
        batch_size: rows per request for generated inputs (default 1).
        binary: use the binary tensor extension (default) instead of JSON data.
        version: the model version to address (default: the server's choice).
        token: bearer token for ``Authorization``.
        warmup_queries: unmeasured requests first (default 10, at least one per connection).
        seed: random seed for generated inputs and arrival times (default 0).

    Raises:
        InvalidInputError: bad arguments, or the server refused the warm-up requests.
        NotFoundError: the server does not serve ``model_name``.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise InvalidInputError(
            "run_remote_benchmark() was called inside a running event loop; await "
            "bench_remote(...) instead"
        )
    try:
        return asyncio.run(
            bench_remote(
                url,
                model_name,
                scenario=scenario,
                queries=queries,
                duration_s=duration_s,
                concurrency=concurrency,
                target_qps=target_qps,
                inputs=inputs,
                batch_size=batch_size,
                binary=binary,
                version=version,
                token=token,
                warmup_queries=warmup_queries,
                seed=seed,
            )
        )
    except (ConnectionError, OSError) as exc:
        if isinstance(exc, NnperfError):
            raise
        raise InvalidInputError(
            f"cannot reach {url}: {exc}; is 'nnperf serve' (or another v2 server) running there?"
        ) from None
