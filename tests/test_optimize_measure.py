"""The optimisers' one timing loop: interleaved rounds, host work timed with the engine call."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pytest
from models import conv_model

from nnperf.errors import InvalidInputError
from nnperf.optimize.measure import Contender, compare_before_after, measure_models


def _feeds(n: int = 3) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"input": rng.random((1, 3, 16, 16), dtype=np.float32)} for _ in range(n)]


def test_rounds_interleave_contenders_and_count_queries() -> None:
    order: list[str] = []

    def tag(label: str):  # host work that records who ran when
        def host(feed: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
            order.append(label)
            return feed

        return host

    m = conv_model()
    res = measure_models(
        {
            "a": Contender(m, _feeds(), host=tag("a")),
            "b": Contender(m, _feeds(), host=tag("b")),
        },
        iters=4,
        rounds=2,
        return_outputs=True,
    )
    # one warm-up each, then round 1 a a b b, round 2 starts with the other: b b a a,
    # then one untimed pass over the 3 feeds for the outputs
    assert order == ["a", "b", "a", "a", "b", "b", "b", "b", "a", "a", *"aaa", *"bbb"]
    for r in res.values():
        assert r.times.iters == 4
        assert r.times.latency_ms <= r.times.p90_ms
        assert r.times.throughput_qps > 0
        assert len(r.outputs) == 3 and r.output_names == ("logits",)


def test_host_work_is_timed_with_the_engine_call() -> None:
    def slow_host(feed: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        time.sleep(0.002)
        return feed

    m = conv_model()
    comp = compare_before_after(m, m, _feeds(), before_host=slow_host, iters=4, rounds=2)
    assert comp.before.latency_ms >= 2.0  # the sleep is inside the timed query
    assert comp.agreement is not None and comp.agreement.max_abs_err == 0.0


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInputError, match="no contenders"):
        measure_models({})
    with pytest.raises(InvalidInputError, match="no feeds"):
        measure_models({"a": Contender(conv_model(), [])})
    with pytest.raises(InvalidInputError, match="iters=0"):
        measure_models({"a": Contender(conv_model(), _feeds())}, iters=0)
