"""create_pipeline: graph split into stages on separate instances."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
from models import small_convnet

import nnperf
from nnperf import InvalidInputError


@pytest.mark.parametrize(("stages", "balance"), [(2, "flops"), (3, "nodes"), (1, "flops")])
def test_pipeline_outputs_equal_unsplit(stages, balance):
    model = small_convnet()
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, 3, 16, 16)).astype(np.float32) for _ in range(20)]
    with nnperf.create(model) as sess:
        expected = [sess.run(x) for x in xs]
    before = threading.active_count()
    with nnperf.create_pipeline(model, stages=stages, balance=balance) as pipe:
        assert len(pipe.stages) == stages
        assert sum(s.nodes for s in pipe.stages) >= stages
        futures = [pipe.submit(x) for x in xs]
        for fut, exp in zip(futures, expected):
            for got, want in zip(fut.result(timeout=30), exp):
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        with pytest.raises(InvalidInputError):
            pipe.submit(np.ones((1, 3, 16, 16), np.float64))
        assert pipe._slots._value == pipe.max_inflight
        info = pipe.stages[0].to_dict()
        assert info["index"] == 0 and info["outputs"]
    assert threading.active_count() == before


def test_pipeline_errors():
    with pytest.raises(InvalidInputError, match="stages"):
        nnperf.create_pipeline(small_convnet(), stages=0)
    with pytest.raises(InvalidInputError, match="balance"):
        nnperf.create_pipeline(small_convnet(), balance="magic")
    with pytest.raises(InvalidInputError, match="instances"):
        nnperf.create_pipeline(small_convnet(), stages=3, device="cpu(1)*2")


def test_runtime_import_loads_no_graph_tooling():
    code = (
        "import sys, nnperf.runtime, nnperf.runtime.pipeline, nnperf.runtime.queue, "
        "nnperf.runtime.aio, nnperf.runtime.batching; "
        "bad = [m for m in ('onnx', 'pandas', 'fastapi') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pipeline_leaves_the_callers_feed_alone():
    x = np.ones((1, 3, 16, 16), np.float32)
    feed = {"input": x}
    with nnperf.create_pipeline(small_convnet(), stages=2) as pipe:
        pipe.run(feed)
        pipe.run(feed)
    assert list(feed) == ["input"]
