"""Issue 15: one load generator (MLPerf LoadGen's shape): one benchmark configuration, one arrival
schedule, one system-under-test interface for a Session, any executor and the HTTP client, the
scenarios written once, one result type in process and remote."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from models import matmul_model

import nnperf
from nnperf import InvalidInputError
from nnperf.bench import BenchConfig, BenchResult, run_benchmark
from nnperf.bench.scenarios import run_scenario
from nnperf.bench.schedule import poisson_arrivals
from nnperf.bench.sut import ExecutorSUT, HttpSUT, SessionSUT


def test_poisson_arrivals_are_seeded_and_at_the_rate():
    a = list(itertools.islice(poisson_arrivals(1000.0, seed=1), 5000))
    b = list(itertools.islice(poisson_arrivals(1000.0, seed=1), 5000))
    assert a == b and all(x < y for x, y in itertools.pairwise(a))
    assert np.mean(np.diff(a)) == pytest.approx(1e6, rel=0.05)
    with pytest.raises(InvalidInputError):
        next(poisson_arrivals(0.0, seed=0))


def test_bench_config_validates_and_round_trips():
    cfg = BenchConfig(scenario="server", target_qps=100.0, latency_bound_ms=5.0)
    assert BenchConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InvalidInputError, match="target_qps"):
        BenchConfig(scenario="server")
    with pytest.raises(InvalidInputError, match="queries"):
        BenchConfig(queries=0)


@pytest.mark.parametrize("scenario", ["single-stream", "offline", "server"])
def test_the_same_scenarios_drive_a_session_an_executor_and_http(scenario):
    from nnperf.runtime import Runner
    from nnperf.serve.dataplane import DataPlane, ModelSettings
    from nnperf.serve.http import ServerHandle, create_app

    extra = {"target_qps": 300.0} if scenario == "server" else {}
    cfg = BenchConfig(scenario=scenario, queries=40, duration_s=0.0, **extra)
    feed = {"x": np.ones((1, 16), np.float32)}
    with nnperf.create(matmul_model(), device="cpu(1)*2") as sess:
        suts = [
            ExecutorSUT(Runner(sess, workers=2, close_session=False), feed, api="sync"),
            ExecutorSUT(Runner(sess, workers=2, close_session=False), feed, api="queue"),
            ExecutorSUT(Runner(sess, workers=2, close_session=False), feed, api="async"),
        ]
        if scenario != "server":  # a bare Session answers blocking calls only
            suts.insert(0, SessionSUT(sess, feed))
        for sut in suts:
            m = run_scenario(sut, cfg)
            assert m.completed >= 40 and m.errors == 0, sut
            assert np.all(m.end_ns >= m.start_ns)
    plane = DataPlane([ModelSettings(name="mm", model=matmul_model())])
    with ServerHandle(create_app(plane)) as server:
        m = run_scenario(HttpSUT(server.url, "mm", feeds=[feed]), cfg)
        assert m.completed >= 40 and m.errors == 0


def test_remote_and_in_process_results_are_one_type():
    from nnperf.bench.remote import run_remote_benchmark
    from nnperf.serve.dataplane import DataPlane, ModelSettings
    from nnperf.serve.http import ServerHandle, create_app

    local = run_benchmark(matmul_model(), queries=20, duration_s=0.0)
    plane = DataPlane([ModelSettings(name="mm", model=matmul_model())])
    with ServerHandle(create_app(plane)) as server:
        remote = run_remote_benchmark(server.url, "mm", queries=20, duration_s=0.0)
    assert isinstance(local, BenchResult) and isinstance(remote, BenchResult)
    ld, rd = local.to_dict(), remote.to_dict()
    assert ld["schema"] == rd["schema"] == "nnperf.bench/2"
    assert rd["sut"] == "http" and rd["server_url"] == server.url
    assert set(ld) == set(rd)
    assert rd["inputs"][0]["shape"] == [1, 16]
