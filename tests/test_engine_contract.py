"""The contract every engine must pass, run against every installed engine."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from models import conv_model, identity_model, matmul_model, two_input_model

from nnperf.device import InstanceSpec
from nnperf.engines import (
    EngineInstance,
    ProfilingInstance,
    RunConfig,
    SupportsOperatorProfiling,
    engine_names,
    get_engine,
    installed_engines,
)
from nnperf.errors import (
    EngineError,
    InvalidInputError,
    MissingDependencyError,
    ModelLoadError,
    UnsupportedError,
)
from nnperf.model import load_model

ENGINES = list(installed_engines())


@pytest.fixture(params=ENGINES)
def engine(request):
    return get_engine(request.param)


def _load(engine, model, config=None, spec=None):
    cfg = config if config is not None else RunConfig(engine=engine.name)
    if cfg.engine != engine.name:
        cfg = cfg.replace(engine=engine.name)
    return engine.load(load_model(model), cfg, spec or InstanceSpec(kind="cpu", threads=1))


def test_every_known_engine_is_installed_in_the_test_environment():
    # The test extra installs every engine, so the suite below really runs on each.
    assert set(engine_names()) == set(ENGINES) == {"onnxruntime", "openvino"}


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
    scaled_first, total_again = inst.run_outputs(["scaled", "sum"], {"a": a, "b": b, "k": k})
    np.testing.assert_array_equal(scaled_first, scaled)
    np.testing.assert_array_equal(total_again, total)
    assert engine.version and engine.available_providers()
    assert inst.providers and inst.providers[0] in engine.available_providers()
    assert engine.platform.endswith("_onnx")
    assert engine.precisions("cpu")[0] == "f32"
    assert isinstance(dict(inst.load_info), dict)
    inst.close()


def test_identity_returns_a_copy_of_the_input(engine):
    inst = _load(engine, identity_model())
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    (y,) = inst.run({"x": x})
    np.testing.assert_array_equal(y, x)
    x[0, 0] = 99
    assert y[0, 0] == 0  # outputs never alias the caller's inputs


def test_outputs_are_fresh_arrays(engine):
    inst = _load(engine, matmul_model())
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    first = inst.run({"x": x})[0]
    keep = first.copy()
    inst.run({"x": x * 2})
    np.testing.assert_array_equal(first, keep)


def test_engines_agree_on_a_convnet():
    # The same model and inputs give the same numbers on every engine at f32.
    x = np.random.default_rng(5).standard_normal((2, 3, 16, 16)).astype(np.float32)
    outs = {}
    for name in ENGINES:
        inst = _load(get_engine(name), conv_model())
        outs[name] = inst.run({inst.inputs[0].name: x})[0]
    ref = outs["onnxruntime"]
    for out in outs.values():
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


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
    inst = _load(engine, matmul_model(), RunConfig(engine=engine.name, batch_size=4))
    assert inst.inputs[0].shape == (4, 16)
    assert inst.run({"x": np.zeros((4, 16), np.float32)})[0].shape == (4, 8)


def test_named_dims_and_shapes_fix_symbolic_dims(engine):
    by_dim = _load(engine, matmul_model(), RunConfig(engine=engine.name, dims={"batch": 3}))
    assert by_dim.inputs[0].shape == (3, 16) or engine.name == "onnxruntime"
    assert by_dim.run({"x": np.zeros((3, 16), np.float32)})[0].shape == (3, 8)
    by_shape = _load(engine, matmul_model(), RunConfig(engine=engine.name, shapes={"x": (5, 16)}))
    assert by_shape.run({"x": np.zeros((5, 16), np.float32)})[0].shape == (5, 8)
    with pytest.raises(InvalidInputError, match="shape for input 'x'"):
        _load(engine, matmul_model(), RunConfig(engine=engine.name, shapes={"x": (5, 17)}))


def test_engine_errors(engine):
    with pytest.raises(EngineError, match="run failed"):
        inst = _load(engine, matmul_model())
        inst.run({"x": np.zeros((2, 5), np.float32)})  # unvalidated feed reaches the engine
    if engine.name == "openvino" or "CUDAExecutionProvider" not in engine.available_providers():
        with pytest.raises(UnsupportedError, match="not available|CPU plugin"):
            _load(engine, matmul_model(), spec=InstanceSpec(kind="cuda", threads=1, device_id=0))
    unoffered = [p for p in ("bf16", "f16") if p not in engine.precisions("cpu")]
    for p in unoffered:
        with pytest.raises(UnsupportedError, match="precision"):
            _load(engine, matmul_model(), RunConfig(engine=engine.name, precision=p))


def test_onnxruntime_rejects_cuda_graph_on_cpu():
    cfg = RunConfig().with_options(cuda_graph=True)
    with pytest.raises(UnsupportedError, match="cuda_graph"):
        _load(get_engine("onnxruntime"), matmul_model(), cfg)


def test_model_the_engine_refuses_is_a_model_load_error(engine):
    from onnx import TensorProto, helper

    # Valid protobuf, but an operator no engine knows.
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"], domain="nnperf.test")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("nnperf.test", 1)],
        ir_version=8,
    )
    with pytest.raises(ModelLoadError, match=engine.name):
        _load(engine, model)


def test_placement_lists_every_optimised_node(engine):
    inst = _load(engine, matmul_model())
    nodes = inst.placement()
    assert nodes and all(n.provider == inst.providers[0] for n in nodes)
    kinds = {n.op_type for n in nodes}
    assert kinds & {"MatMul", "FusedMatMul", "Gemm", "FusedGemm", "FullyConnected"}


def test_operator_profiling_capability(engine):
    assert isinstance(engine, SupportsOperatorProfiling)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        prof = engine.load_profiling(
            load_model(matmul_model()), RunConfig(engine=engine.name), InstanceSpec("cpu", 1),
            workdir=tmp,
        )  # fmt: skip
        assert isinstance(prof, ProfilingInstance)
        x = np.ones((2, 16), np.float32)
        for _ in range(3):
            prof.run({"x": x})
        events = prof.collect()
        assert events and all(e.dur_ns >= 0 for e in events)
        assert prof.collect() == [] or engine.name == "onnxruntime"
        prof.run({"x": x})
        assert prof.collect()  # recording goes on after a collect
        prof.close()
    assert engine.profiling_cost()


def test_unknown_and_missing_engines_are_clear_errors(monkeypatch):
    with pytest.raises(InvalidInputError, match="expected one of"):
        RunConfig(engine="tvm")
    from nnperf.engines import registry

    entry = registry.EngineEntry("fake", "x:Y", registry._ENTRIES["openvino"].options,
                                 "nnperf_no_such_package", "fake")  # fmt: skip
    monkeypatch.setitem(registry._ENTRIES, "fake", entry)
    with pytest.raises(MissingDependencyError, match=r"pip install 'nnperf\[fake\]'"):
        get_engine("fake")


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


def test_onnxruntime_failed_run_is_one_error_not_a_log_line_too(capfd):
    # onnxruntime printed its own copy of every run failure to stderr (a served model fed bad
    # indices logged each request twice); the EngineError carries the message.
    from models import gather_model

    inst = _load(get_engine("onnxruntime"), gather_model())
    with pytest.raises(EngineError, match="out of data bounds"):
        inst.run({"idx": np.array([99], np.int64)})
    assert "ExecuteKernel" not in capfd.readouterr().err
    assert inst.run({"idx": np.array([1], np.int64)})[0].shape == (1, 4)
