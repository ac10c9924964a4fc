"""Issue 15: bench measures the experiment the user means and reports it as it ran.

Each test reproduces one finding of the issue (named in its docstring).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from models import (
    conv_model,
    deep_matmul_model,
    exported_conv_model,
    identity_model,
    matmul_model,
    seq_model,
    spatial_model,
)

from nnperf import InvalidInputError
from nnperf.bench import run_benchmark
from nnperf.cli import main
from nnperf.device import available_cores
from nnperf.engines.config import RunConfig
from nnperf.runtime.observers import RunEvent, unwatch_sessions, watch_sessions

QUICK = {"queries": 20, "duration_s": 0.0, "warmup_iters": 1}


def _save(tmp_path, model, name="m.onnx"):
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return str(path)


# -- F1: shapes ------------------------------------------------------------------------------------


def test_f1_symbolic_sequence_dim_is_an_error_until_set():
    """F1: a (batch, seq, 64) model ran with seq = 1 without a word."""
    with pytest.raises(InvalidInputError, match=r"'seq'.*--dim seq=VALUE"):
        run_benchmark(seq_model(), **QUICK)
    r = run_benchmark(seq_model(), dims={"seq": 8}, **QUICK)
    assert r.inputs[0].shape == (1, 8, 64)
    assert r.to_dict()["inputs"] == [
        {"name": "x", "shape": [1, 8, 64], "dtype": "float32", "spec": "random"}
    ]


def test_f1_spatial_dims_need_a_shape():
    """F1: a [1, 3, h, w] model ran at 1x3x1x1."""
    with pytest.raises(InvalidInputError, match=r"--shape images:1x3xNxN"):
        run_benchmark(spatial_model(), **QUICK)
    r = run_benchmark(spatial_model(), shapes={"images": (1, 3, 32, 24)}, **QUICK)
    assert r.inputs[0].shape == (1, 3, 32, 24)
    with pytest.raises(InvalidInputError, match="no input 'imgs'.*did you mean 'images'"):
        run_benchmark(spatial_model(), shapes={"imgs": (1, 3, 32, 32)}, **QUICK)
    with pytest.raises(InvalidInputError, match="no symbolic dimension 'height'"):
        run_benchmark(spatial_model(), dims={"height": 32, "w": 32}, **QUICK)


def test_f1_exported_model_with_minus_one_dims_needs_a_shape():
    """F1 on a real export (dims stored as -1): bench ran a detector at 1x3x1x1."""
    with pytest.raises(InvalidInputError, match=r"axis 2.*--shape x:"):
        run_benchmark(exported_conv_model(), **QUICK)
    r = run_benchmark(exported_conv_model(), shapes={"x": (1, 3, 64, 64)}, **QUICK)
    assert r.inputs[0].shape == (1, 3, 64, 64) and r.batch_size == 1


def test_f1_cli_shape_and_dim_flags_print_and_record_inputs(tmp_path, capsys):
    """F1: the report showed no input shapes."""
    out = tmp_path / "o.json"
    path = _save(tmp_path, seq_model())
    assert main(["bench", path, "--dim", "seq=8", "--queries", "5", "--duration", "0",
                 "--json", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "Inputs" in text and "x  float32 [1, 8, 64]  random" in text
    assert json.loads(out.read_text())["inputs"][0]["shape"] == [1, 8, 64]
    path = _save(tmp_path, spatial_model(), "s.onnx")
    assert main(["bench", path, "--shape", "images:1x3x16x16", "--queries", "5",
                 "--duration", "0"]) == 0  # fmt: skip
    assert "images  float32 [1, 3, 16, 16]" in capsys.readouterr().out
    assert main(["bench", path, "--queries", "5"]) == 2
    assert "--shape images:" in capsys.readouterr().err


def test_f2_input_shape_sets_the_batch_accounting(tmp_path, capsys):
    """F2: --input input:random:4x1x28x28 fed 4 rows but reported batch=1."""
    out = tmp_path / "o.json"
    argv = ["bench", "zoo:mnist", "--queries", "10", "--duration", "0", "--json", str(out)]
    assert main([*argv, "--input", "input:random:4x1x28x28"]) == 0
    data = json.loads(out.read_text())
    assert data["batch_size"] == 4 and data["inputs"][0]["shape"] == [4, 1, 28, 28]
    assert data["throughput_samples_per_s"] == pytest.approx(4 * data["throughput_qps"], rel=1e-3)
    assert "batch=4" in capsys.readouterr().out
    # An unnamed spec applies to the only input.
    assert main([*argv, "--input", "random:2x1x28x28"]) == 0
    assert json.loads(out.read_text())["batch_size"] == 2
    capsys.readouterr()
    assert main([*argv, "--input", "zeros:3x1x28x28", "--batch-size", "2"]) == 2
    assert "batch" in capsys.readouterr().err


# -- F3: what ran ---------------------------------------------------------------------------------


def test_f3_devices_from_the_environment_are_reported(tmp_path, capsys, monkeypatch):
    """F3: NNPERF_DEVICES='cpu(1)*2' printed device=cpu and JSON config.device null."""
    monkeypatch.setenv("NNPERF_DEVICES", "cpu(1)*2")
    out = tmp_path / "o.json"
    assert main(["bench", "zoo:identity", "--queries", "5", "--duration", "0",
                 "--json", str(out)]) == 0  # fmt: skip
    assert "device=cpu(1)*2 (2 instances x 1 thread)" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["config"]["device"] == "cpu(1)*2" and data["device"] == "cpu(1)*2"
    assert data["instances"] == 2 and data["threads_per_instance"] == [1, 1]


def test_f3_pipeline_loads_and_warms_only_its_stages():
    """F3: --pipeline-stages timed an extra unsplit session and never warmed the stages up."""
    created = []
    stage_runs = []

    class Count:
        def on_run(self, event: RunEvent) -> None:
            if event.stage == 0:
                stage_runs.append(event)

    counter = Count()

    def watch(session):
        created.append(session)
        session.observers.add(counter)

    watch_sessions(watch, existing=False)
    try:
        r = run_benchmark(
            conv_model(), scenario="offline", pipeline_stages=2, queries=30, duration_s=0.0,
            warmup_iters=2,
        )  # fmt: skip
    finally:
        unwatch_sessions(watch)
    assert len(created) == 2  # the two stage sessions, no unsplit model
    assert r.device == "cpu(1)*2" and r.instances == 2 and r.sut == "pipeline"
    assert len(r.stages_ms["warmup_ms"]) == 2
    assert len(stage_runs) >= r.queries + 2  # the warm-up queries went through the stages
    assert r.stages_ms["load_ms"] > 0 and r.stages_ms["prepare_ms"] > 0


# -- F5 / F6: validity ----------------------------------------------------------------------------


def test_f5_short_run_is_invalid_and_rare_percentiles_are_na():
    """F5: a 100-query run printed p99.9 and was reported without comment."""
    from nnperf.bench.report import render_report

    r = run_benchmark(identity_model(), queries=100, duration_s=0.0)
    d = r.to_dict()
    assert d["latency_ms"]["n"] == r.queries < 1000
    assert d["latency_ms"]["p99_9"] is None and d["latency_ms"]["p50"] is not None
    assert d["validity"]["valid"] is False
    assert any("at least 1 s" in reason for reason in d["validity"]["reasons"])
    text = render_report(r)
    assert "p99.9 n/a (< 1000 samples)" in text and "INVALID" in text


def test_f5_default_run_lasts_the_minimum_duration():
    """F5: runs of 2 ms were accepted; the default now measures at least 1 s."""
    r = run_benchmark(identity_model(), queries=1)
    assert r.duration_s >= 1.0 and r.queries > 100
    assert r.to_dict()["stability"]["windows"] >= 3


def test_f5_unstable_windows_invalidate_a_run():
    """F5: two runs differing 2x were both reported as fine: a rate change within a run is
    caught by the windowed stability check."""
    from nnperf.bench.stats import stability

    rng = np.random.default_rng(0)
    fast = np.cumsum(rng.exponential(1e6, 500))  # ~1000 q/s for 0.5 s
    slow = fast[-1] + np.cumsum(rng.exponential(2e6, 250))  # then ~500 q/s for 0.5 s
    ends = np.concatenate([fast, slow]).astype(np.int64)
    st = stability(ends, start_ns=0, wall_ns=int(ends[-1]), windows=5, tolerance=0.10)
    assert not st.stable and "spread" in st.reason
    steady = np.cumsum(rng.exponential(1e6, 2000)).astype(np.int64)
    assert stability(steady, start_ns=0, wall_ns=int(steady[-1]), windows=5, tolerance=0.15).stable


def test_f6_server_reports_achieved_over_offered_and_the_latency_bound():
    """F6: the server scenario reached 1 754 of 2 000 offered q/s with no verdict."""
    r = run_benchmark(
        deep_matmul_model(), scenario="server", device="cpu(1)", target_qps=20000.0,
        queries=300, duration_s=0.0, latency_bound_ms=0.001, warmup_iters=1,
    )  # fmt: skip
    d = r.to_dict()
    assert d["server"]["target_qps"] == 20000.0 and d["server"]["achieved_ratio"] < 0.9
    assert d["server"]["latency_bound_met"] is False
    reasons = " ".join(d["validity"]["reasons"])
    assert "offered" in reasons and "latency bound" in reasons and not d["validity"]["valid"]


# -- options, pinning, oversubscription ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"target_qps": 100.0}, "target_qps applies to the server scenario"),
        ({"workers": 4}, "workers"),
        ({"concurrency": 4}, "concurrency"),
        ({"latency_bound_ms": 5.0}, "latency_bound_ms applies to the server scenario"),
        ({"scenario": "server", "target_qps": 100.0, "concurrency": 4}, "concurrency"),
        ({"scenario": "offline", "max_delay_ms": 2.0}, "max_batch_size"),
    ],
)
def test_options_that_do_not_apply_are_errors(kwargs, fragment):
    """--target-qps on single-stream printed a Poisson line; --workers said 1 and N; ..."""
    with pytest.raises(InvalidInputError, match=fragment):
        run_benchmark(identity_model(), **{**QUICK, **kwargs})


def test_concurrency_applies_offline():
    """--concurrency was ignored offline."""
    r = run_benchmark(matmul_model(), scenario="offline", device="cpu(1)*2", concurrency=3, **QUICK)
    assert r.concurrency == 3 and r.workers == 3
    d = r.to_dict()
    assert d["concurrency"] == 3 and d["workers"] == 3


def test_single_stream_reports_one_worker_everywhere():
    """--workers on single-stream said 1 in text and N in JSON."""
    with pytest.warns(UserWarning, match="single-stream"):
        r = run_benchmark(identity_model(), config=RunConfig(workers=4), **QUICK)
    d = r.to_dict()
    assert r.workers == 1 and d["workers"] == 1 and d["config"]["workers"] is None


@pytest.mark.skipif(len(available_cores()) < 2, reason="needs two cores")
def test_single_stream_bench_runs_on_the_pinned_core():
    """device='cpu:1' was not pinned for single-stream bench."""
    core = available_cores()[-1]
    before = os.sched_getaffinity(0)
    where = set()

    class Probe:
        def on_run(self, event: RunEvent) -> None:
            where.add(frozenset(os.sched_getaffinity(0)))

    probe = Probe()

    def watch(session):
        session.observers.add(probe)

    watch_sessions(watch, existing=False)
    try:
        run_benchmark(matmul_model(), device=f"cpu:{core}", **QUICK)
    finally:
        unwatch_sessions(watch)
    assert where == {frozenset({core})}
    assert os.sched_getaffinity(0) == before  # the caller's thread is left as it was


def test_oversubscribed_device_warns():
    """--device 'cpu(3)*2' on 2 cores was accepted silently."""
    from nnperf.bench.config import BenchWarning

    cores = len(available_cores())
    with pytest.warns(BenchWarning, match="oversubscribed"):
        r = run_benchmark(identity_model(), device=f"cpu({cores + 1})*2", **QUICK)
    assert any("oversubscribed" in w for w in r.warnings)
    assert any("oversubscribed" in w for w in r.to_dict()["warnings"])


def test_single_stream_utilisation_counts_only_the_driven_instance():
    """Single-stream utilisation counted the idle instance."""
    r = run_benchmark(deep_matmul_model(), device="cpu(1)*2", queries=30, duration_s=0.0)
    assert r.to_dict()["instances_driven"] == 1
    assert r.utilization > 0.5


def test_memory_and_cpu_are_reported():
    """No memory figure anywhere."""
    r = run_benchmark(matmul_model(), scenario="offline", device="cpu(1)*2", **QUICK)
    d = r.to_dict()
    assert d["memory"]["peak_rss_mib"] > 0
    assert len(d["memory"]["per_instance_mib"]) == 2
    assert d["cpu_percent"] > 0
