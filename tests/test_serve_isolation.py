"""Failure isolation in merged batches (issue 13, finding 1): one client's bad query must fail
alone, not the good queries the dynamic batcher merged with it.

The model is a Gather whose indices come from the request (``tests.models.gather_model``): an
out-of-range index makes onnxruntime fail at run time for the whole merged batch. Checked on
both paths of :class:`~nnperf.runtime.batching.DynamicBatcher` (``submit`` on the batcher
thread, ``submit_async`` on the event loop), through the data plane in process, and over a real
loopback socket.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Future

import numpy as np
import pytest
from starlette.testclient import TestClient

import nnperf
from nnperf.errors import EngineError
from nnperf.runtime.batching import DynamicBatcher
from nnperf.serve import DataPlane, ModelSettings
from nnperf.serve.http import ServerHandle, create_app
from tests.models import gather_model

ROWS, WIDTH = 10, 4
BAD = 99  # out of range for a 10-row table


def _expected(i: int) -> np.ndarray:
    return np.arange(i * WIDTH, (i + 1) * WIDTH, dtype=np.float32)[None]


def _indices(n: int, bad_every: int) -> list[int]:
    """Index of query ``k``: ``BAD`` for every ``bad_every``-th query, else ``k % ROWS``."""
    return [BAD if k % bad_every == bad_every - 1 else k % ROWS for k in range(n)]


def _check(indices: list[int], outcomes: list[np.ndarray | BaseException]) -> None:
    for i, got in zip(indices, outcomes):
        if i == BAD:
            assert isinstance(got, EngineError), got
            assert "out of data bounds" in str(got)
        else:
            assert isinstance(got, np.ndarray), f"good query {i} failed: {got!r}"
            np.testing.assert_array_equal(got, _expected(i))


def test_thread_path_fails_only_the_bad_query() -> None:
    runner = nnperf.create_runner(gather_model(ROWS, WIDTH), device="cpu(1)")
    with DynamicBatcher(runner, max_batch_size=8, max_delay_ms=200) as batcher:
        indices = _indices(32, bad_every=8)
        # A long delay and submits from one thread: the queries merge into batches of 8, each
        # holding one bad query.
        futures: list[Future[list[np.ndarray]]] = [
            batcher.submit(np.array([i], np.int64)) for i in indices
        ]
        outcomes: list[np.ndarray | BaseException] = []
        for f in futures:
            exc = f.exception(timeout=30)
            outcomes.append(exc if exc is not None else f.result()[0])
        _check(indices, outcomes)
        stats = batcher.stats()
    # Every query counted once; the failed merged batches are counted, and so are the batches
    # that ran again to isolate the bad query.
    assert stats.requests == 32
    assert stats.split_batches >= 4
    assert stats.batches > 4 + stats.split_batches


def test_event_loop_path_fails_only_the_bad_query() -> None:
    async def main() -> None:
        runner = nnperf.create_runner(gather_model(ROWS, WIDTH), device="cpu(1)")
        batcher = DynamicBatcher(runner, max_batch_size=8, max_delay_ms=200)
        try:
            indices = _indices(40, bad_every=5)
            futures = [batcher.submit_async(np.array([i], np.int64)) for i in indices]
            results = await asyncio.gather(*futures, return_exceptions=True)
            _check(indices, [r if isinstance(r, BaseException) else r[0] for r in results])
            stats = batcher.stats()
            assert stats.requests == 40 and stats.split_batches >= 5
            # The batcher's admission slots all came back.
            assert batcher._room.free() == batcher.max_inflight
        finally:
            batcher.close()

    asyncio.run(main())


def test_a_batch_of_only_bad_queries_fails_each_with_its_own_error() -> None:
    async def main() -> None:
        runner = nnperf.create_runner(gather_model(ROWS, WIDTH), device="cpu(1)")
        with DynamicBatcher(runner, max_batch_size=4, max_delay_ms=200) as batcher:
            futures = [batcher.submit_async(np.array([BAD + k], np.int64)) for k in range(4)]
            results = await asyncio.gather(*futures, return_exceptions=True)
        for k, r in enumerate(results):
            assert isinstance(r, EngineError) and f"idx={BAD + k}" in str(r)

    asyncio.run(main())


def _plane() -> DataPlane:
    return DataPlane(
        [
            ModelSettings(
                name="gather", model=gather_model(ROWS, WIDTH), max_batch_size=8, max_delay_ms=20
            )
        ]
    )


def _body(i: int) -> dict[str, object]:
    return {"inputs": [{"name": "idx", "datatype": "INT64", "shape": [1], "data": [i]}]}


def test_data_plane_in_process_isolates_failures() -> None:
    plane = _plane()
    with TestClient(create_app(plane)) as client:
        import concurrent.futures as cf

        indices = _indices(48, bad_every=8)
        with cf.ThreadPoolExecutor(16) as pool:
            replies = list(
                pool.map(lambda i: client.post("/v2/models/gather/infer", json=_body(i)), indices)
            )
        for i, r in zip(indices, replies):
            if i == BAD:
                assert r.status_code == 500, r.text
                assert "out of data bounds" in r.json()["error"]
            else:
                assert r.status_code == 200, f"good request {i}: {r.status_code} {r.text}"
                assert r.json()["outputs"][0]["data"] == _expected(i).ravel().tolist()
        metrics = client.get("/metrics").text
    ok = _counter(metrics, 'nnperf_requests_total{model="gather",outcome="ok"}')
    assert ok == sum(i != BAD for i in indices)
    assert _counter(metrics, 'nnperf_engine_failures_total{model="gather"}') >= 1


def _counter(text: str, key: str) -> float:
    for line in text.splitlines():
        if line.startswith(key):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("batching", [True, False])
def test_loopback_mixed_traffic_no_good_request_fails(batching: bool) -> None:
    import aiohttp

    settings = ModelSettings(
        name="gather",
        model=gather_model(ROWS, WIDTH),
        max_batch_size=8 if batching else 1,
        max_delay_ms=5,
    )
    with ServerHandle(create_app(DataPlane([settings]))) as server:
        url = f"{server.url}/v2/models/gather/infer"
        indices = _indices(160, bad_every=8)

        async def main() -> list[tuple[int, bytes]]:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as s:

                async def one(i: int) -> tuple[int, bytes]:
                    async with s.post(url, json=_body(i)) as r:
                        return r.status, await r.read()

                return await asyncio.gather(*(one(i) for i in indices))

        replies = asyncio.run(main())
    good_failed = [(i, st) for i, (st, _) in zip(indices, replies) if i != BAD and st != 200]
    assert good_failed == []
    for i, (status, body) in zip(indices, replies):
        if i == BAD:
            assert status == 500 and "out of data bounds" in json.loads(body)["error"]
