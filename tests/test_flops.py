from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnperf.analyze import estimate_flops


def test_flops_of_conv_conv_transpose_and_gemm():
    w = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "W")
    wt = numpy_helper.from_array(np.zeros((8, 4, 2, 2), np.float32), "WT")
    g = numpy_helper.from_array(np.zeros((4 * 16 * 16, 10), np.float32), "G")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("ConvTranspose", ["c", "WT"], ["t"], strides=[2, 2]),
            helper.make_node("Flatten", ["t"], ["f"]),
            helper.make_node("Gemm", ["f", "G"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        initializer=[w, wt, g],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    flops = estimate_flops(model)
    assert flops["Conv"] == 2 * (8 * 8 * 8) * (3 * 3 * 3)  # each output: C_in x k x k MACs
    assert flops["ConvTranspose"] == 2 * (8 * 8 * 8) * (4 * 2 * 2)  # each input scatters
    assert flops["Gemm"] == 2 * 10 * (4 * 16 * 16)
    assert "Flatten" not in flops
