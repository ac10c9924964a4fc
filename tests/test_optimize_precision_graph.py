"""fp16 conversion and offline graph dumps on the real engine."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from models import small_convnet

from nnperf.engines.config import RunConfig
from nnperf.engines.onnxruntime_options import GraphLevel
from nnperf.errors import UnsupportedError
from nnperf.optimize import (
    compare_dump_load,
    compare_models,
    convert_precision,
    dump_optimized,
)

X = [{"input": np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)}]


def _init_types(m: onnx.ModelProto) -> Counter[int]:
    return Counter(i.data_type for i in m.graph.initializer)


def test_fp16_all_ops() -> None:
    m = small_convnet()
    f = convert_precision(m, "fp16", keep_io_types=True)
    onnx.checker.check_model(f)
    assert _init_types(f)[onnx.TensorProto.FLOAT16] == len(m.graph.initializer)
    assert f.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    ops = Counter(n.op_type for n in f.graph.node)
    assert ops["Cast"] == 2  # one in, one out
    ag = compare_models(m, f, X)
    assert ag.cosine > 0.9999 and ag.max_abs_err < 1e-2


def test_fp16_matmul_only_casts_around_matrix_ops() -> None:
    m = small_convnet()
    f = convert_precision(m, "fp16", matmul_only=True)
    onnx.checker.check_model(f)
    ops = Counter(n.op_type for n in f.graph.node)
    assert ops["Cast"] > 2  # float32 Relu/pool between fp16 Conv/Gemm
    assert compare_models(m, f, X).cosine > 0.9999


def test_fp16_without_io_types_takes_fp16_input() -> None:
    f = convert_precision(small_convnet(), "fp16", keep_io_types=False)
    assert f.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16


def test_bf16_is_unsupported_on_cpu() -> None:
    with pytest.raises(UnsupportedError, match="bfloat16"):
        convert_precision(small_convnet(), "bf16")


def test_dump_lists_fusions_and_layout(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "opt.onnx"
    m = small_convnet(channels=16, width=32)
    dump = dump_optimized(m, path, level="all")
    assert path.exists()
    assert dump.nchwc_nodes >= 2
    assert any(d.startswith("ReorderInput") for d in dump.layout_nodes)
    assert any("Relu" in f for f in dump.fusions)
    assert "CPU" in dump.warning
    basic = dump_optimized(m, pathlib.Path(str(tmp_path)) / "basic.onnx", level="basic")
    assert basic.nchwc_nodes == 0 and not basic.layout_nodes
    x = [{"input": np.random.default_rng(0).standard_normal((1, 16, 16, 16)).astype(np.float32)}]
    comp = compare_dump_load(m, path, x, iters=3)
    assert comp.agreement is not None and comp.agreement.max_abs_err < 1e-5
    assert comp.after.prepare_ms > 0 and comp.before.latency_ms > 0
    # the dump loads with optimisation disabled
    from nnperf.runtime import Session

    with Session(
        str(path), config=RunConfig(device="cpu(1)").with_options(graph_level=GraphLevel.DISABLED)
    ) as s:
        assert s.run(x[0])[0].shape == (1, 10)
