"""Load generation against a KServe v2 HTTP server (``nnperf bench --url``).

The same load generator as in process (:mod:`nnperf.bench.scenarios`), with the server behind an
:class:`~nnperf.bench.sut.HttpSUT`, latency measured on the client (what a user of the server
sees) and the same :class:`~nnperf.bench.scenarios.BenchResult` (``nnperf.bench/2``):

* ``single-stream``: one request at a time on one connection.
* ``offline``: ``concurrency`` connections, each sending its next request as soon as the
  previous answer arrives; reports throughput.
* ``server``: Poisson arrivals at ``target_qps`` over a pool of ``concurrency`` connections;
  latency runs from the *scheduled* arrival time, so time spent waiting for a free connection
  counts (no coordinated omission).

Works against any v2 server (nnperf, Triton, KServe, MLServer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nnperf.bench.config import BenchConfig, Scenario, scenario_of
from nnperf.bench.inputs import batch_of, describe_feeds, make_feeds
from nnperf.bench.resources import MemoryMeter
from nnperf.bench.scenarios import BenchResult, build_result, run_scenario
from nnperf.bench.sut import HttpSUT
from nnperf.errors import InvalidInputError, NnperfError
from nnperf.types import ProgressFn, TensorDesc, check_dims_and_shapes

__all__ = ["bench_remote", "run_remote_benchmark"]

_CONNECTIONS = {Scenario.SINGLE_STREAM: 1, Scenario.OFFLINE: 8, Scenario.SERVER: 64}


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
    specs: Mapping[str, str] | None = None,
    dims: Mapping[str, int] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
    latency_bound_ms: float | None = None,
    progress: ProgressFn | None = None,
    argv: Sequence[str] | None = None,
) -> BenchResult:
    """Drive a KServe v2 server at ``url`` and measure it from the client side.

    Args:
        url: ``http://HOST:PORT`` of the server.
        model_name: the model's name on the server.
        scenario: ``single-stream`` (default), ``offline`` (closed loop over ``concurrency``
            connections) or ``server`` (Poisson arrivals at ``target_qps``).
        queries: minimum requests to measure (default 100).
        duration_s: minimum measured time, in seconds (default 1.0; under 1 s is INVALID).
        concurrency: connections (default 1 single-stream, 8 offline, 64 server).
        target_qps: offered load of the server scenario, in requests per second.
        inputs: one feed ``{name: array}`` or a list of feeds sent in turn; default one feed
            built from the model's metadata (``GET /v2/models/NAME``) and ``specs``.
        batch_size: rows per request for generated inputs (default 1).
        binary: use the binary tensor extension (default) instead of JSON data.
        version: the model version to address (default: the server's choice).
        token: bearer token for ``Authorization``.
        warmup_queries: unmeasured requests first (default 10, at least one per connection).
        seed: random seed for generated inputs and arrival times (default 0).
        specs / dims / shapes: generated inputs as ``nnperf bench --input/--dim/--shape``.
        latency_bound_ms: server scenario: the p99 the run must meet to be VALID.
        progress: called now and then with the run's :class:`~nnperf.types.Progress`.
        argv: the command line recorded in the provenance (default ``sys.argv``).

    Raises:
        InvalidInputError: bad arguments, or the server refused the warm-up requests (or cannot
            be reached); NotFoundError: the server does not serve ``model_name``; EngineError:
            every measured request failed.
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
    scen = scenario_of(scenario)
    bench = BenchConfig(
        scenario=scen,
        queries=100 if queries is None else queries,
        duration_s=1.0 if duration_s is None else duration_s,
        warmup_iters=warmup_queries,
        target_qps=target_qps,
        latency_bound_ms=latency_bound_ms,
        # server: the connection pool (the open loop issues on its schedule); offline: the
        # outstanding requests, one per connection; single-stream: an error
        concurrency=None if scen is Scenario.SERVER else concurrency,
        seed=seed,
    )
    connections = concurrency or _CONNECTIONS[scen]
    if isinstance(inputs, Mapping):
        feed_list: list[Mapping[str, np.ndarray]] | None = [inputs]
    else:
        feed_list = None if inputs is None else list(inputs)

    def make(descs: Sequence[TensorDesc]) -> dict[str, np.ndarray]:
        check_dims_and_shapes(descs, dims=dims, shapes=shapes)
        return make_feeds(
            descs, batch_size=batch_size, specs=specs, seed=seed, dims=dims, shapes=shapes
        )

    sut = HttpSUT(
        url,
        model_name,
        feeds=feed_list,
        make=make,
        connections=connections,
        binary=binary,
        version=version,
        token=token,
        warmup_queries=warmup_queries,
    )
    meter = MemoryMeter()
    meter.start()
    try:
        measured = run_scenario(sut, bench, progress=progress)
    except (ConnectionError, OSError) as exc:
        if isinstance(exc, NnperfError):
            raise
        raise InvalidInputError(
            f"cannot reach {url}: {exc}; is 'nnperf serve' (or another v2 server) running there?"
        ) from None
    memory = meter.report()
    first = sut.feeds[0]
    default = "array" if inputs is not None else "random"
    fed = describe_feeds(first, specs, default=default)
    descs = sut.descs or [TensorDesc(n, (None,) * a.ndim, str(a.dtype)) for n, a in first.items()]
    return build_result(
        bench,
        measured,
        model={"name": model_name, "path": None, "sha256": None},
        engine=None,
        config=None,
        sut=sut,
        workers=1,  # one event-loop thread drives every connection
        batch_size=batch_of(descs, first),
        stages_ms={
            "load_ms": 0.0,
            "prepare_ms": 0.0,
            "fake_first_ms": None,
            "warmup_ms": list(sut.warmup_ms),
        },
        inputs=fed,
        threads_per_instance=(),
        memory=memory,
        warnings_=[],
        extra={"api": "http", "binary": binary, "connections": connections},
        argv=argv,
        server_url=url,
    )


async def bench_remote(url: str, model_name: str, **kwargs: Any) -> BenchResult:
    """:func:`run_remote_benchmark` from inside a running event loop (it runs in a worker
    thread: the load generator keeps its own loop and threads)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: run_remote_benchmark(url, model_name, **kwargs))
