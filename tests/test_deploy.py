"""``nnperf.create_executor``: the executor a (tuned) RunConfig describes, technique included.

Before it, ``nnperf.create(config=tuned)`` loaded a plain Session and dropped the merge batching,
pipeline or split batching that ``nnperf tune`` had measured, without a word.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
from models import conv_model, gather_model, matmul_model

import nnperf
from nnperf.engines.config import RunConfig
from nnperf.errors import EngineError, InvalidInputError
from nnperf.runtime.batcher import DynamicBatcher
from nnperf.runtime.executor import Executor
from nnperf.runtime.pipeline import Pipeline
from nnperf.runtime.runner import Runner
from nnperf.runtime.split import SplitBatcher

RNG = np.random.default_rng(0)


def _reference(model, x):
    with nnperf.create(model) as s:
        return s.run(x)


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        (RunConfig(device="cpu(1)*2"), Runner),
        (RunConfig(device="cpu(1)*2", max_batch_size=4, max_delay_ms=2.0), DynamicBatcher),
        (RunConfig(device="cpu(1)*2", pipeline_stages=2), Pipeline),
        (RunConfig(device="cpu(1)*2", batch_size=5, split_batch=2), SplitBatcher),
    ],
    ids=["plain", "merge", "pipeline", "split"],
)
def test_each_technique_builds_its_executor(config: RunConfig, kind: type, tmp_path: Path) -> None:
    path = tmp_path / "tuned.json"
    config.save(path)
    rows = config.batch_size or 1
    xs = [RNG.standard_normal((rows, 3, 16, 16)).astype(np.float32) for _ in range(8)]
    with nnperf.create_executor(conv_model(), config=str(path)) as ex:
        assert isinstance(ex, kind) and isinstance(ex, Executor)
        futures = [ex.submit(x) for x in xs]  # concurrent: merge batching can form batches
        outs = [f.result(timeout=30) for f in futures]
        np.testing.assert_allclose(ex.run(xs[0])[0], outs[0][0], rtol=1e-5, atol=1e-5)
    for x, out in zip(xs, outs):
        np.testing.assert_allclose(out[0], _reference(conv_model(), x)[0], rtol=1e-4, atol=1e-4)
    if kind is DynamicBatcher:
        assert ex.stats().max_batch_size == 4


def test_overrides_win_over_the_config() -> None:
    cfg = RunConfig(device="cpu(1)*2", max_batch_size=4)
    with nnperf.create_executor(matmul_model(), config=cfg, device="cpu(1)") as ex:
        assert isinstance(ex, DynamicBatcher) and ex.instances == 1


def test_a_session_or_runner_warns_that_it_drops_the_technique() -> None:
    cfg = RunConfig(max_batch_size=8)
    with pytest.warns(UserWarning, match=r"merge batching \(max_batch_size=8\).*create_executor"):
        nnperf.create(matmul_model(), config=cfg).close()
    with pytest.warns(UserWarning, match="a Runner does not apply"):
        nnperf.create_runner(matmul_model(), config=RunConfig(pipeline_stages=2)).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no technique: no warning
        nnperf.create(matmul_model(), config=RunConfig(device="cpu(1)")).close()


def test_async_runner_applies_the_configs_merge_batching() -> None:
    cfg = RunConfig(device="cpu(1)", max_batch_size=4, max_delay_ms=5.0)
    xs = [RNG.standard_normal((1, 16)).astype(np.float32) for _ in range(8)]

    async def main() -> list[list[np.ndarray]]:
        async with nnperf.AsyncRunner(matmul_model(), config=cfg) as runner:
            assert isinstance(runner.backend, DynamicBatcher)
            assert runner.backend.max_delay_ms == 5.0
            return await asyncio.gather(*(runner.run(x) for x in xs))

    outs = asyncio.run(main())
    for x, out in zip(xs, outs):
        np.testing.assert_allclose(out[0], _reference(matmul_model(), x)[0], rtol=1e-5)


def test_split_executor_answers_every_query_once() -> None:
    # A 7-row batch runs as chunks 2+2+2+1 (the tail padded) on two instances; a chunk that
    # fails fails its query alone, with the engine's error.
    cfg = RunConfig(device="cpu(1)*2", batch_size=7, split_batch=2)
    good = np.arange(7, dtype=np.int64) % 10
    bad = good.copy()
    bad[5] = 99  # out of range for the Gather: chunk 3 fails at run time
    with nnperf.create_executor(gather_model(), config=cfg) as ex:
        assert isinstance(ex, SplitBatcher) and ex.instances == 2
        futures: list[Future[list[np.ndarray]]] = [
            ex.submit(good if i % 3 else bad) for i in range(12)
        ]
        done = threading.Event()
        futures[-1].add_done_callback(lambda _f: done.set())
        results = []
        for i, f in enumerate(futures):
            if i % 3:
                results.append(f.result(timeout=30)[0])
            else:
                with pytest.raises(EngineError, match="out of data bounds|indices"):
                    f.result(timeout=30)
        assert done.wait(5)
        ref = _reference(gather_model(), good)[0]
        for out in results:
            np.testing.assert_array_equal(out, ref)
        with pytest.raises(InvalidInputError, match="0 rows"):
            ex.submit(np.zeros((0,), np.int64))
    with pytest.raises(InvalidInputError, match="closed"):
        ex.submit(good)
    with pytest.raises(InvalidInputError, match="closed"):
        ex.target.submit(good[:2])  # closing the executor closed the runner it built
