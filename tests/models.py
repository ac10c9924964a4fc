"""Small models built in code for the tests (shared: add functions, never change existing ones)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _model(graph: onnx.GraphProto, opset: int = 17) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def identity_model(width: int = 4, dtype: int = TensorProto.FLOAT) -> onnx.ModelProto:
    """``y = x`` with ``x`` of shape [batch, width]."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", dtype, ["batch", width])],
        [helper.make_tensor_value_info("y", dtype, ["batch", width])],
    )
    return _model(graph)


def two_input_model() -> onnx.ModelProto:
    """``sum = a + b`` (float32 [batch, 3]) and ``scaled = b * 2`` with an int64 side input ``k``."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["a", "b"], ["sum"]),
            helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["b", "kf"], ["scaled"]),
        ],
        "two_input",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("k", TensorProto.INT64, ["batch", 1]),
        ],
        [
            helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("scaled", TensorProto.FLOAT, ["batch", 3]),
        ],
    )
    return _model(graph)


def matmul_model(k: int = 16, n: int = 8, seed: int = 0) -> onnx.ModelProto:
    """``y = relu(x @ W + b)`` with ``x`` float32 [batch, k]."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "B"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n])],
        initializer=[w, b],
    )
    return _model(graph)


def conv_model(channels: int = 3, size: int = 16, seed: int = 0) -> onnx.ModelProto:
    """A small image model: Conv(8, 3x3) + Relu + GlobalAveragePool + Flatten, NCHW float32."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(
        (rng.standard_normal((8, channels, 3, 3)) * 0.2).astype(np.float32), "W"
    )
    b = numpy_helper.from_array(np.zeros(8, np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("GlobalAveragePool", ["r"], ["g"]),
            helper.make_node("Flatten", ["g"], ["logits"]),
        ],
        "conv",
        [
            helper.make_tensor_value_info(
                "input", TensorProto.FLOAT, ["batch", channels, size, size]
            )
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 8])],
        initializer=[w, b],
    )
    return _model(graph)


def fixed_batch_model() -> onnx.ModelProto:
    """Identity with a fixed leading dimension of 1."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return _model(graph)


def failing_model() -> onnx.ModelProto:
    """Reshape to a runtime-given shape: valid graph, fails at run time for bad shapes."""
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "failing",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("shape", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["d0", "d1"])],
    )
    return _model(graph)


# -- optimisation test models (issue 7) ------------------------------------------------------------


def small_convnet(
    *, channels: int = 3, width: int = 16, classes: int = 10, size: int = 16, seed: int = 0
) -> onnx.ModelProto:
    """A small classifier: Conv+Relu x2, GlobalAveragePool, Flatten, Gemm; input ``input``
    float32 [batch, channels, size, size], output ``logits`` [batch, classes]. Opset 17."""

    rng = np.random.default_rng(seed)

    def init(name: str, arr: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(arr.astype(np.float32), name)

    inits = [
        init("w1", rng.normal(0, (2.0 / (channels * 9)) ** 0.5, (width, channels, 3, 3))),
        init("b1", rng.normal(0, 0.1, (width,))),
        init("w2", rng.normal(0, (2.0 / (width * 9)) ** 0.5, (width, width, 3, 3))),
        init("b2", rng.normal(0, 0.1, (width,))),
        init("wf", rng.normal(0, (1.0 / width) ** 0.5, (width, classes))),
        init("bf", rng.normal(0, 0.1, (classes,))),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "small_convnet",
        [
            helper.make_tensor_value_info(
                "input", TensorProto.FLOAT, ["batch", channels, size, size]
            )
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def small_fcn(
    *, channels: int = 3, width: int = 8, seed: int = 0, pixel_input: bool = False
) -> onnx.ModelProto:
    """A fully convolutional image-to-image model (two 3x3 convs, 'same' padding, Sigmoid):
    input ``image`` float32 [batch, channels, H, W] -> ``out`` [batch, channels, H, W] in (0, 1).
    Receptive field radius 2 pixels. ``pixel_input``: first-layer weights scaled for inputs in
    [0, 255] instead of [0, 1]. Opset 17."""

    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(
            (rng.normal(0, 0.3, (width, channels, 3, 3)) / (255.0 if pixel_input else 1.0)).astype(
                np.float32
            ),
            "w1",
        ),
        numpy_helper.from_array(
            rng.normal(0, 0.3, (channels, width, 3, 3)).astype(np.float32), "w2"
        ),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c2"], ["out"], name="sigmoid"),
    ]
    graph = helper.make_graph(
        nodes,
        "small_fcn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", channels, "h", "w"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", channels, "h", "w"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def deep_matmul_model(width: int = 256, layers: int = 64, seed: int = 0) -> onnx.ModelProto:
    """``y = tanh(... tanh(x @ W) ... @ W)``, ``layers`` times with one shared weight: cheap to
    build, and its cost grows with the rows sent (about 8 MFLOP per row at the defaults)."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
    nodes = []
    prev = "x"
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [prev, "W"], [f"m{i}"]))
        out = "y" if i == layers - 1 else f"t{i}"
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [out]))
        prev = out
    graph = helper.make_graph(
        nodes,
        "deep_matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        initializer=[numpy_helper.from_array(w, "W")],
    )
    return _model(graph)


def bn_convnet(*, width: int = 16, size: int = 16, seed: int = 0) -> onnx.ModelProto:
    """A trained-style classifier as exporters write it, BatchNorm not folded: (Conv + BN + Relu)
    x2, GlobalAveragePool, Flatten, Gemm; input ``input`` float32 [batch, 3, size, size], output
    ``logits`` [batch, 10]. Opset 17."""
    rng = np.random.default_rng(seed)

    def init(name: str, arr: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)

    inits = [
        init("w1", rng.normal(0, (2.0 / 27) ** 0.5, (width, 3, 3, 3))),
        init("w2", rng.normal(0, (2.0 / (width * 9)) ** 0.5, (width, width, 3, 3))),
        init("wf", rng.normal(0, (1.0 / width) ** 0.5, (width, 10))),
        init("bf", rng.normal(0, 0.1, (10,))),
    ]
    for i in (1, 2):
        inits += [
            init(f"g{i}", rng.uniform(0.5, 1.5, width)),
            init(f"be{i}", rng.normal(0, 0.1, width)),
            init(f"mu{i}", rng.normal(0, 0.1, width)),
            init(f"var{i}", rng.uniform(0.5, 1.5, width)),
        ]
    nodes = []
    prev = "input"
    for i in (1, 2):
        nodes += [
            helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], name=f"conv{i}", pads=[1] * 4),
            helper.make_node(
                "BatchNormalization",
                [f"c{i}", f"g{i}", f"be{i}", f"mu{i}", f"var{i}"],
                [f"n{i}"],
                name=f"bn{i}",
            ),
            helper.make_node("Relu", [f"n{i}"], [f"r{i}"], name=f"relu{i}"),
        ]
        prev = f"r{i}"
    nodes += [
        helper.make_node("GlobalAveragePool", [prev], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "bn_convnet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    return _model(graph)


# -- honest shapes and accounting (issue 15) -------------------------------------------------------


def seq_model(hidden: int = 64, out: int = 8, seed: int = 0) -> onnx.ModelProto:
    """``y = x @ W`` with ``x`` float32 [batch, seq, hidden]: a symbolic non-batch dim."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((hidden, out)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "seq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", out])],
        initializer=[w],
    )
    return _model(graph)


def gather_model(rows: int = 10, width: int = 4) -> onnx.ModelProto:
    """``y = table[idx]``: a Gather whose int64 indices ``idx`` [batch] come from the request.

    ``table`` is float32 [rows, width] with ``table[i, j] = i * width + j``, so each output row
    names the index it came from. Indices outside ``[-rows, rows)`` make onnxruntime fail at run
    time (a valid graph that fails for some inputs: one bad query in a merged batch)."""
    table = np.arange(rows * width, dtype=np.float32).reshape(rows, width)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "idx"], ["y"], axis=0)],
        "gather",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        initializer=[numpy_helper.from_array(table, "table")],
    )
    return _model(graph)


def spatial_model(seed: int = 0) -> onnx.ModelProto:
    """A detector-like conv net on ``images`` float32 [1, 3, h, w] (named spatial dims)."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array((rng.standard_normal((4, 3, 3, 3)) * 0.2).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "W"], ["y"], pads=[1, 1, 1, 1])],
        "spatial",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, "h", "w"])],
        initializer=[w],
    )
    return _model(graph)


def exported_conv_model(seed: int = 0) -> onnx.ModelProto:
    """As Paddle2ONNX writes models: weights in ``Constant`` nodes (no initializers) and every
    dynamic dim stored as ``dim_value: -1`` (batch, height, width) on input ``x`` [-1, 3, -1, -1]."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.2).astype(np.float32), "wv")
    b = numpy_helper.from_array(np.zeros(8, np.float32), "bv")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 1, 1])
    for i, d in enumerate(x.type.tensor_type.shape.dim):
        if i != 1:
            d.dim_value = -1
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["W"], value=w),
            helper.make_node("Constant", [], ["B"], value=b),
            helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["y"]),
        ],
        "exported",
        [x],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model


def save_with_external_data(model: onnx.ModelProto, folder: str, name: str = "model") -> str:
    """Write ``model`` as ``folder/name.onnx`` with every tensor in ``folder/name.data`` (as
    exporters write models over 2 GB); return the .onnx path."""
    import copy
    import os

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.onnx")
    onnx.save(
        copy.deepcopy(model),
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=f"{name}.data",
        size_threshold=0,
    )
    return path
