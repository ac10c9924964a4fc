"""The contract every engine must pass (run here on onnxruntime, the only engine today)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from models import matmul_model, two_input_model

from nnperf.device import InstanceSpec
from nnperf.engines import EngineInstance, get_engine
from nnperf.errors import EngineError, InvalidInputError, ModelLoadError, UnsupportedError
from nnperf.model import load_model
from nnperf.types import RunConfig

ENGINES = ["onnxruntime"]


@pytest.fixture(params=ENGINES)
def engine(request):
    return get_engine(request.param)


def _load(engine, model, config=None, spec=None):
    return engine.load(
        load_model(model), config or RunConfig(), spec or InstanceSpec(kind="cpu", threads=1)
    )


def test_metadata_and_run(engine):
    inst = _load(engine, two_input_model())
    assert isinstance(inst, EngineInstance)
    assert [d.name for d in inst.inputs] == ["a", "b", "k"]
    assert [d.dtype for d in inst.inputs] == ["float32", "float32", "int64"]
    assert inst.inputs[0].shape == ("batch", 3)
    assert [d.name for d in inst.outputs] == ["sum", "scaled"]
    a = np.ones((2, 3), np.float32)
    b = np.full((2, 3), 2, np.float32)
    k = np.full((2, 1), 3, np.int64)
    total, scaled = inst.run({"a": a, "b": b, "k": k})
    np.testing.assert_array_equal(total, a + b)
    np.testing.assert_array_equal(scaled, b * 3)
    (only,) = inst.run_outputs(["scaled"], {"a": a, "b": b, "k": k})
    np.testing.assert_array_equal(only, scaled)
    assert engine.version and "CPUExecutionProvider" in engine.available_providers()
    assert inst.providers[0] == "CPUExecutionProvider"
    inst.close()


def test_outputs_are_fresh_arrays(engine):
    inst = _load(engine, matmul_model())
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    first = inst.run({"x": x})[0]
    keep = first.copy()
    inst.run({"x": x * 2})
    np.testing.assert_array_equal(first, keep)


def test_concurrent_runs_are_safe(engine):
    inst = _load(engine, matmul_model(), spec=InstanceSpec(kind="cpu", threads=1))
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((2, 16)).astype(np.float32) for _ in range(8)]
    expected = [inst.run({"x": x})[0] for x in xs]
    bad: list[int] = []

    def work(i: int) -> None:
        for _ in range(50):
            if not np.array_equal(inst.run({"x": xs[i]})[0], expected[i]):
                bad.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []


def test_batch_size_override_fixes_the_free_dim(engine):
    inst = _load(engine, matmul_model(), RunConfig(batch_size=4))
    assert inst.inputs[0].shape == (4, 16)
    assert inst.run({"x": np.zeros((4, 16), np.float32)})[0].shape == (4, 8)


def test_engine_errors(engine):
    with pytest.raises(EngineError, match="run failed"):
        inst = _load(engine, matmul_model())
        inst.run({"x": np.zeros((2, 5), np.float32)})  # unvalidated feed reaches the engine
    if "CUDAExecutionProvider" not in engine.available_providers():
        with pytest.raises(UnsupportedError, match="not available"):
            _load(engine, matmul_model(), spec=InstanceSpec(kind="cuda", threads=1, device_id=0))
    with pytest.raises(UnsupportedError, match="cuda_graph"):
        _load(engine, matmul_model(), RunConfig(cuda_graph=True))


def test_placement_lists_every_optimised_node(engine):
    inst = _load(engine, matmul_model())
    nodes = inst.placement()
    assert nodes and all(n.provider == "CPUExecutionProvider" for n in nodes)
    assert {n.op_type for n in nodes} <= {
        "MatMul",
        "Add",
        "Relu",
        "FusedMatMul",
        "Gemm",
        "FusedGemm",
    }


def test_model_load_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(matmul_model().SerializeToString()[:40])
    with pytest.raises(ModelLoadError, match="not a valid ONNX file|no graph"):
        load_model(corrupt)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        load_model(empty)
    with pytest.raises(ModelLoadError, match="directory"):
        load_model(tmp_path)
    with pytest.raises(InvalidInputError, match="expected a path"):
        load_model(42)  # type: ignore[arg-type]
    blob = load_model(matmul_model())
    assert len(blob.sha256) == 64 and load_model(blob) is blob
