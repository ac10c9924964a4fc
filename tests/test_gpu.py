"""The CUDA and TensorRT paths of the onnxruntime engine.

The GPU tests run where onnxruntime-gpu sees a CUDA device and skip cleanly elsewhere (CI has no
GPU); ``NNPERF_TEST_GPU=0`` skips them on a GPU machine. The IO-binding steps CUDA graphs need are
checked on the CPU provider too, so that part runs everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import has_gpu
from models import conv_model, matmul_model

import nnperf
from nnperf.cli import main
from nnperf.device import InstanceSpec
from nnperf.engines.onnxruntime import _CudaGraphRun, provider_entry
from nnperf.engines.onnxruntime_options import OrtOptions
from nnperf.errors import EngineError, InvalidInputError

gpu = pytest.mark.skipif(not has_gpu(), reason="needs onnxruntime-gpu and a CUDA device")
TENSORRT = "TensorrtExecutionProvider" in ort.get_available_providers()


def _wrap(exc: Exception) -> EngineError:
    return EngineError(str(exc))


def test_graph_binding_steps_on_the_cpu_provider() -> None:
    # The same binding steps as on CUDA (fixed buffers, update_inplace, outputs bound to the
    # OrtValues of the first run), without the graph: each run must see its own inputs, and the
    # arrays returned earlier must not change under later runs.
    sess = ort.InferenceSession(
        matmul_model().SerializeToString(), providers=["CPUExecutionProvider"]
    )
    run = _CudaGraphRun(sess, 0, ["y"], device_type="cpu")
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, 16)).astype(np.float32) for _ in range(3)]
    outs = [run.run({"x": x}, _wrap)[0] for x in xs]
    for x, out in zip(xs, outs):
        np.testing.assert_array_equal(out, sess.run(None, {"x": x})[0])
    with pytest.raises(InvalidInputError, match="replays the shapes it captured"):
        run.run({"x": np.zeros((3, 16), np.float32)}, _wrap)
    # the instance still answers at the captured shape afterwards
    np.testing.assert_array_equal(run.run({"x": xs[0]}, _wrap)[0], outs[0])


def test_provider_entries_carry_device_graph_and_tensorrt_caches(tmp_path: Path) -> None:
    gpu1 = InstanceSpec(kind="cuda", threads=1, device_id=1)
    opts = OrtOptions(providers="tensorrt,cuda,cpu", cuda_graph=True, cache_dir=tmp_path)
    trt, cuda, cpu = (provider_entry(n, opts, gpu1) for n in opts.providers)
    assert trt == (
        "TensorrtExecutionProvider",
        {
            "device_id": "1",
            "trt_cuda_graph_enable": "1",
            "trt_engine_cache_enable": "1",
            "trt_engine_cache_path": str(tmp_path),
            "trt_timing_cache_enable": "1",
            "trt_timing_cache_path": str(tmp_path),
        },
    )
    assert cuda == ("CUDAExecutionProvider", {"device_id": "1", "enable_cuda_graph": "1"})
    assert cpu == "CPUExecutionProvider"
    # the user's own provider options win
    mine = OrtOptions(
        cache_dir=tmp_path,
        provider_options={"TensorrtExecutionProvider": {"trt_engine_cache_enable": "0"}},
    )
    entry = provider_entry("TensorrtExecutionProvider", mine, gpu1)
    assert isinstance(entry, tuple) and entry[1]["trt_engine_cache_enable"] == "0"
    with pytest.raises(InvalidInputError, match="cache_dir"):
        OrtOptions(cache_dir="")


@gpu
@pytest.mark.gpu
def test_cuda_session_matches_cpu() -> None:
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    with (
        nnperf.create(conv_model(), device="cpu") as cpu,
        nnperf.create(conv_model(), device="cuda:0") as cuda,
    ):
        assert cuda.instances[0].providers[0] == "CUDAExecutionProvider"
        np.testing.assert_allclose(cuda.run(x)[0], cpu.run(x)[0], rtol=1e-3, atol=1e-3)


@gpu
@pytest.mark.gpu
def test_cuda_graph_replays_with_new_inputs() -> None:
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((1, 3, 16, 16)).astype(np.float32) for _ in range(4)]
    with (
        nnperf.create(conv_model(), device="cpu") as cpu,
        nnperf.create(
            conv_model(), device="cuda:0", batch_size=1, options={"cuda_graph": True}
        ) as graph,
    ):
        for x in xs:  # run 1 regular, run 2 captured, then replays
            np.testing.assert_allclose(graph.run(x)[0], cpu.run(x)[0], rtol=1e-3, atol=1e-3)


@gpu
@pytest.mark.gpu
def test_bench_and_tune_on_cuda(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(conv_model(), str(path))
    out = tmp_path / "b.json"
    assert (
        main(["bench", str(path), "--device", "cuda:0", "--queries", "50", "--json", str(out)]) == 0
    )
    doc = json.loads(out.read_text())
    assert doc["config"]["device"] == "cuda:0"
    cache = tmp_path / "t.json"
    argv = ["tune", str(path), "--device-candidates", "cuda:0", "--time-budget-s", "20"]
    assert main([*argv, "--cache", str(cache), "--no-progress"]) == 0
    tuned = json.loads(cache.read_text())
    labels = [c["label"] for c in tuned["candidates"]]
    assert any("cudnn_conv_algo_search" in label for label in labels), labels


@gpu
@pytest.mark.gpu
@pytest.mark.skipif(not TENSORRT, reason="this onnxruntime build has no TensorRT provider")
def test_tensorrt_provider_is_an_engine_option() -> None:
    x = np.random.default_rng(3).standard_normal((1, 16)).astype(np.float32)
    with (
        nnperf.create(matmul_model(), device="cpu") as cpu,
        nnperf.create(
            matmul_model(), device="cuda:0", options={"providers": "tensorrt,cuda,cpu"}
        ) as trt,
    ):
        assert trt.instances[0].providers[0] == "TensorrtExecutionProvider"
        np.testing.assert_allclose(trt.run(x)[0], cpu.run(x)[0], rtol=1e-2, atol=1e-2)
