"""A built-in model zoo: real architectures built in code with seeded random weights.

The zoo lets ``nnperf`` benchmark well-known networks without downloading anything and without
torch. Every model is built with :mod:`onnx.helper` and :mod:`numpy`; the graph has the layout of
the real architecture (the same operators, shapes and FLOPs as a torchvision / Hugging Face export
with BatchNorm folded into the convolutions), only the weights are random.

Weights are drawn from ``np.random.default_rng(seed)`` in float32, so a model is bit-for-bit
deterministic for a seed. They are scaled so that activations look like a trained network's for a
standard-normal input (the zoo's models are used to calibrate int8 quantization, so this matters):

* convolutions and linear layers use He/Kaiming-normal init (``std = sqrt(2 / fan_in)`` before a
  ReLU, ``sqrt(1 / fan_in)`` before a linear output), biases are small (``N(0, 0.02)``);
* the last convolution of every residual branch is scaled down (ResNet by 0.3, MobileNetV2 by
  0.5) so activations neither explode nor vanish through the depth of the network (ResNet-50
  post-ReLU activations keep a std of about 1.3-1.6 and a max of about 10-14 in every stage;
  logits have a std of about 1.7);
* BERT linear layers use ``std = 1 / sqrt(fan_in)``, query and key ``sqrt(2)`` times that, so
  attention scores have a std of about 2 and attention is peaked rather than uniform.

All models use opset 17 and IR version 8 (loadable by onnxruntime >= 1.14) and have a dynamic
batch axis named ``"batch"`` on dim 0 of every input and output. Image models take normalised
pixels (roughly ``N(0, 1)``).

Models:

* ``identity``: ``x`` float32 ``[batch, 1000]`` -> Identity -> ``y``.
* ``mnist``: the ONNX model zoo mnist-8 CNN, ``input`` ``[batch, 1, 28, 28]`` -> ``logits``
  ``[batch, 10]``.
* ``mobilenetv2``: torchvision MobileNetV2 (width 1.0), ``input`` ``[batch, 3, 224, 224]`` ->
  ``logits`` ``[batch, 1000]``.
* ``resnet50``: torchvision ResNet-50 (v1.5), same input and output as ``mobilenetv2``.
* ``bert-tiny``: a 4-layer BERT encoder (hidden 256, 4 heads, intermediate 1024, i.e. the size of
  Google's BERT-mini) at a fixed sequence length of 128 with the full uncased vocabulary of 30522
  tokens, so ids from a real ``bert-base-uncased`` tokenizer are valid. Inputs ``input_ids`` and
  ``attention_mask`` int64 ``[batch, 128]``; outputs ``last_hidden_state`` ``[batch, 128, 256]``
  and ``pooler_output`` ``[batch, 256]``. There is no ``token_type_ids`` input: the type-0
  token-type embedding is folded into the position embeddings.
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnperf.errors import NotFoundError

__all__ = [
    "BERT_HIDDEN",
    "BERT_SEQ_LEN",
    "BERT_VOCAB_SIZE",
    "ZOO_PREFIX",
    "ZooEntry",
    "build_model",
    "is_zoo_ref",
    "list_models",
    "model_bytes",
    "resolve",
]

ZOO_PREFIX = "zoo:"
"""Prefix that marks a model reference as a zoo model (``"zoo:resnet50"``)."""

OPSET = 17
IR_VERSION = 8
PRODUCER = "nnperf.zoo"
BATCH = "batch"

BERT_VOCAB_SIZE = 30522
"""Vocabulary size of ``bert-tiny`` (the ``bert-base-uncased`` vocabulary)."""
BERT_SEQ_LEN = 128
"""Fixed sequence length of ``bert-tiny``."""
BERT_HIDDEN = 256
"""Hidden size of ``bert-tiny``."""
BERT_LAYERS = 4
BERT_HEADS = 4
BERT_INTERMEDIATE = 1024

_BIAS_STD = 0.02
_RESNET_BRANCH_SCALE = 0.3
_MOBILENET_BRANCH_SCALE = 0.5


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo.

    Attributes:
        name: The zoo name, used as ``zoo:<name>``.
        description: One line saying what the model is.
        task: ``"classification"``, ``"identity"`` or ``"nlp"``.
    """

    name: str
    description: str
    task: str


class _Graph:
    """A tiny graph builder: nodes, seeded initializers and unique names."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._names: set[str] = set()
        self._consts: dict[tuple[str, bytes, tuple[int, ...]], str] = {}
        self._counts: dict[str, int] = {}

    def unique(self, base: str) -> str:
        """Return ``base``, or ``base_<n>`` if that name is taken."""
        name = base
        while name in self._names:
            self._counts[base] = self._counts.get(base, 0) + 1
            name = f"{base}_{self._counts[base]}"
        self._names.add(name)
        return name

    def init(self, name: str, array: np.ndarray) -> str:
        """Add ``array`` as an initializer and return its name."""
        unique = self.unique(name)
        self.initializers.append(numpy_helper.from_array(array, unique))
        return unique

    def const(self, value: float | Sequence[int], dtype: type = np.float32) -> str:
        """Return a shared constant initializer (scalar or 1-D) holding ``value``."""
        array: np.ndarray = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.tobytes(), array.shape)
        if key not in self._consts:
            label = (
                "_".join(str(v) for v in array.reshape(-1)[:4]).replace("-", "m").replace(".", "p")
            )
            self._consts[key] = self.init(f"const_{array.dtype.name}_{label}", array)
        return self._consts[key]

    def normal(self, name: str, shape: tuple[int, ...], std: float) -> str:
        """Add an ``N(0, std)`` float32 initializer and return its name."""
        data = self.rng.standard_normal(shape, dtype=np.float32)
        data *= np.float32(std)
        return self.init(name, data)

    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        name: str,
        *,
        output: str | None = None,
        **attrs: Any,
    ) -> str:
        """Add a single-output node and return its output name.

        The node is named ``name`` (made unique); its output has the same name unless ``output``
        (a graph output) is given.
        """
        node_name = self.unique(name)
        out = output or node_name
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=node_name, **attrs))
        return out

    def conv(
        self,
        x: str,
        c_in: int,
        c_out: int,
        kernel: int,
        name: str,
        *,
        stride: int = 1,
        groups: int = 1,
        gain: float = 2.0,
        scale: float = 1.0,
    ) -> str:
        """Add a Conv with folded-BN bias, He-normal weights times ``scale``."""
        fan_in = (c_in // groups) * kernel * kernel
        w = self.normal(
            f"{name}.weight",
            (c_out, c_in // groups, kernel, kernel),
            scale * math.sqrt(gain / fan_in),
        )
        b = self.normal(f"{name}.bias", (c_out,), _BIAS_STD * scale)
        pad = kernel // 2
        return self.op(
            "Conv",
            [x, w, b],
            name,
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad, pad, pad, pad],
            dilations=[1, 1],
            group=groups,
        )

    def gemm(
        self, x: str, n_in: int, n_out: int, name: str, *, std: float, output: str | None = None
    ) -> str:
        """Add a torch-style Linear as ``Gemm(transB=1)`` (weight ``[n_out, n_in]``)."""
        w = self.normal(f"{name}.weight", (n_out, n_in), std)
        b = self.normal(f"{name}.bias", (n_out,), _BIAS_STD)
        return self.op("Gemm", [x, w, b], name, output=output, alpha=1.0, beta=1.0, transB=1)

    def linear(self, x: str, n_in: int, n_out: int, name: str, *, std: float) -> str:
        """Add a Hugging Face-style Linear as ``MatMul`` + ``Add``."""
        w = self.normal(f"{name}.weight", (n_in, n_out), std)
        b = self.normal(f"{name}.bias", (n_out,), _BIAS_STD)
        y = self.op("MatMul", [x, w], f"{name}/MatMul")
        return self.op("Add", [y, b], f"{name}/Add")

    def layer_norm(self, x: str, width: int, name: str, *, output: str | None = None) -> str:
        """Add a LayerNormalization over the last axis with near-identity affine parameters."""
        gamma = self.rng.standard_normal((width,), dtype=np.float32)
        gamma *= np.float32(0.05)
        gamma += np.float32(1.0)
        scale = self.init(f"{name}.weight", gamma)
        bias = self.normal(f"{name}.bias", (width,), _BIAS_STD)
        return self.op(
            "LayerNormalization", [x, scale, bias], name, output=output, axis=-1, epsilon=1e-12
        )

    def model(
        self,
        inputs: Sequence[onnx.ValueInfoProto],
        outputs: Sequence[onnx.ValueInfoProto],
        name: str,
        doc: str,
        seed: int,
    ) -> onnx.ModelProto:
        """Wrap the graph into a check-ready ModelProto."""
        graph = helper.make_graph(
            self.nodes, name, list(inputs), list(outputs), initializer=self.initializers
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name=PRODUCER,
            producer_version="1",
            doc_string=doc,
        )
        model.ir_version = IR_VERSION
        helper.set_model_props(model, {"nnperf.zoo.name": name, "nnperf.zoo.seed": str(seed)})
        return model


_InOut = tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]
"""A builder's graph inputs and outputs."""


def _f32(name: str, *dims: int | str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


def _i64(name: str, *dims: int | str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.INT64, list(dims))


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def _build_identity(g: _Graph) -> _InOut:
    g.op("Identity", ["x"], "Identity", output="y")
    return [_f32("x", BATCH, 1000)], [_f32("y", BATCH, 1000)]


def _build_mnist(g: _Graph) -> _InOut:
    x = g.conv("input", 1, 8, 5, "conv1")
    x = g.op("Relu", [x], "relu1")
    x = g.op("MaxPool", [x], "pool1", kernel_shape=[2, 2], strides=[2, 2])  # 8x14x14
    x = g.conv(x, 8, 16, 5, "conv2")
    x = g.op("Relu", [x], "relu2")
    x = g.op("MaxPool", [x], "pool2", kernel_shape=[3, 3], strides=[3, 3])  # 16x4x4
    x = g.op("Flatten", [x], "flatten", axis=1)
    g.gemm(x, 256, 10, "fc", std=math.sqrt(1.0 / 256), output="logits")
    return [_f32("input", BATCH, 1, 28, 28)], [_f32("logits", BATCH, 10)]


def _relu6(g: _Graph, x: str, name: str) -> str:
    return g.op("Clip", [x, g.const(0.0), g.const(6.0)], name)


def _build_mobilenetv2(g: _Graph) -> _InOut:
    settings = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    x = g.conv("input", 3, 32, 3, "features.0.0", stride=2)
    x = _relu6(g, x, "features.0.2")
    c_in = 32
    index = 1
    for t, c, n, s in settings:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = c_in * t
            p = f"features.{index}.conv"
            y = x
            layer = 0
            if t != 1:
                y = g.conv(y, c_in, hidden, 1, f"{p}.{layer}.0")
                y = _relu6(g, y, f"{p}.{layer}.2")
                layer += 1
            y = g.conv(y, hidden, hidden, 3, f"{p}.{layer}.0", stride=stride, groups=hidden)
            y = _relu6(g, y, f"{p}.{layer}.2")
            residual = stride == 1 and c_in == c
            y = g.conv(
                y,
                hidden,
                c,
                1,
                f"{p}.{layer + 1}",
                gain=1.0,
                scale=_MOBILENET_BRANCH_SCALE if residual else 1.0,
            )
            x = g.op("Add", [x, y], f"features.{index}/Add") if residual else y
            c_in = c
            index += 1
    x = g.conv(x, c_in, 1280, 1, f"features.{index}.0")
    x = _relu6(g, x, f"features.{index}.2")
    x = g.op("GlobalAveragePool", [x], "GlobalAveragePool")
    x = g.op("Flatten", [x], "Flatten", axis=1)
    g.gemm(x, 1280, 1000, "classifier.1", std=math.sqrt(1.0 / 1280), output="logits")
    return [_f32("input", BATCH, 3, 224, 224)], [_f32("logits", BATCH, 1000)]


def _build_resnet50(g: _Graph) -> _InOut:
    x = g.conv("input", 3, 64, 7, "conv1", stride=2)
    x = g.op("Relu", [x], "relu")
    x = g.op("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c_in = 64
    for stage, (blocks, width) in enumerate(
        zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True), start=1
    ):
        c_out = width * 4
        for block in range(blocks):
            p = f"layer{stage}.{block}"
            stride = 2 if block == 0 and stage > 1 else 1
            y = g.conv(x, c_in, width, 1, f"{p}.conv1")
            y = g.op("Relu", [y], f"{p}.relu1")
            y = g.conv(y, width, width, 3, f"{p}.conv2", stride=stride)
            y = g.op("Relu", [y], f"{p}.relu2")
            y = g.conv(y, width, c_out, 1, f"{p}.conv3", scale=_RESNET_BRANCH_SCALE)
            shortcut = x
            if block == 0:
                shortcut = g.conv(x, c_in, c_out, 1, f"{p}.downsample.0", stride=stride, gain=1.0)
            x = g.op("Add", [y, shortcut], f"{p}/Add")
            x = g.op("Relu", [x], f"{p}.relu3")
            c_in = c_out
    x = g.op("GlobalAveragePool", [x], "avgpool")
    x = g.op("Flatten", [x], "flatten", axis=1)
    g.gemm(x, 2048, 1000, "fc", std=math.sqrt(1.0 / 2048), output="logits")
    return [_f32("input", BATCH, 3, 224, 224)], [_f32("logits", BATCH, 1000)]


def _build_bert_tiny(g: _Graph) -> _InOut:
    hidden, seq, heads = BERT_HIDDEN, BERT_SEQ_LEN, BERT_HEADS
    head_dim = hidden // heads
    std = 1.0 / math.sqrt(hidden)
    # Query and key a little larger so attention scores have std ~2: peaked like a trained net's.
    qk_std = std * math.sqrt(2.0)

    # Embeddings: word + position (+ type-0 token type, folded into the position table).
    word = g.normal("embeddings.word_embeddings.weight", (BERT_VOCAB_SIZE, hidden), 0.5)
    pos = g.normal("embeddings.position_embeddings.weight", (seq, hidden), 0.5)
    position_ids = g.init("embeddings.position_ids", np.arange(seq, dtype=np.int64).reshape(1, seq))
    x = g.op("Gather", [word, "input_ids"], "embeddings.word_embeddings", axis=0)
    p = g.op("Gather", [pos, position_ids], "embeddings.position_embeddings", axis=0)
    x = g.op("Add", [x, p], "embeddings/Add")
    x = g.layer_norm(x, hidden, "embeddings.LayerNorm")

    # Extended attention mask: (1 - mask) * -10000, broadcast over heads and query positions.
    m = g.op("Cast", ["attention_mask"], "mask/Cast", to=TensorProto.FLOAT)
    m = g.op("Unsqueeze", [m, g.const([1, 2], np.int64)], "mask/Unsqueeze")
    m = g.op("Sub", [g.const(1.0), m], "mask/Sub")
    mask = g.op("Mul", [m, g.const(-10000.0)], "mask/Mul")

    split_shape = g.const([0, seq, heads, head_dim], np.int64)
    merge_shape = g.const([0, seq, hidden], np.int64)
    for layer in range(BERT_LAYERS):
        p_ = f"encoder.layer.{layer}"
        a = f"{p_}.attention"

        def heads_of(t: str, name: str, perm: list[int], a: str = a) -> str:
            r = g.op("Reshape", [t, split_shape], f"{a}.self/{name}/Reshape")
            return g.op("Transpose", [r], f"{a}.self/{name}/Transpose", perm=perm)

        q = heads_of(
            g.linear(x, hidden, hidden, f"{a}.self.query", std=qk_std), "query", [0, 2, 1, 3]
        )
        k = heads_of(g.linear(x, hidden, hidden, f"{a}.self.key", std=qk_std), "key", [0, 2, 3, 1])
        v = heads_of(g.linear(x, hidden, hidden, f"{a}.self.value", std=std), "value", [0, 2, 1, 3])
        scores = g.op("MatMul", [q, k], f"{a}.self/scores/MatMul")
        scores = g.op("Div", [scores, g.const(float(math.sqrt(head_dim)))], f"{a}.self/scores/Div")
        scores = g.op("Add", [scores, mask], f"{a}.self/scores/Add")
        probs = g.op("Softmax", [scores], f"{a}.self/Softmax", axis=-1)
        ctx = g.op("MatMul", [probs, v], f"{a}.self/context/MatMul")
        ctx = g.op("Transpose", [ctx], f"{a}.self/context/Transpose", perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, merge_shape], f"{a}.self/context/Reshape")
        out = g.linear(ctx, hidden, hidden, f"{a}.output.dense", std=std)
        out = g.op("Add", [out, x], f"{a}.output/Add")
        x = g.layer_norm(out, hidden, f"{a}.output.LayerNorm")

        h = g.linear(x, hidden, BERT_INTERMEDIATE, f"{p_}.intermediate.dense", std=std)
        # Gelu, exact (Erf) form, as exported by Hugging Face: x * 0.5 * (1 + erf(x / sqrt(2))).
        e = g.op("Div", [h, g.const(float(math.sqrt(2.0)))], f"{p_}.intermediate/Gelu/Div")
        e = g.op("Erf", [e], f"{p_}.intermediate/Gelu/Erf")
        e = g.op("Add", [e, g.const(1.0)], f"{p_}.intermediate/Gelu/Add")
        e = g.op("Mul", [h, e], f"{p_}.intermediate/Gelu/Mul")
        h = g.op("Mul", [e, g.const(0.5)], f"{p_}.intermediate/Gelu/Mul_half")
        out = g.linear(
            h,
            BERT_INTERMEDIATE,
            hidden,
            f"{p_}.output.dense",
            std=1.0 / math.sqrt(BERT_INTERMEDIATE),
        )
        out = g.op("Add", [out, x], f"{p_}.output/Add")
        # The last LayerNorm writes the graph output directly, as in a Hugging Face export.
        last = "last_hidden_state" if layer == BERT_LAYERS - 1 else None
        x = g.layer_norm(out, hidden, f"{p_}.output.LayerNorm", output=last)

    first = g.op("Gather", [x, g.const(0, np.int64)], "pooler/Gather", axis=1)
    pooled = g.gemm(first, hidden, hidden, "pooler.dense", std=std)
    g.op("Tanh", [pooled], "pooler.activation", output="pooler_output")
    inputs = [_i64("input_ids", BATCH, seq), _i64("attention_mask", BATCH, seq)]
    outputs = [_f32("last_hidden_state", BATCH, seq, hidden), _f32("pooler_output", BATCH, hidden)]
    return inputs, outputs


_Builder = Callable[[_Graph], _InOut]

_MODELS: dict[str, tuple[ZooEntry, _Builder]] = {
    entry.name: (entry, builder)
    for entry, builder in (
        (
            ZooEntry(
                "bert-tiny",
                "4-layer BERT encoder, hidden 256, 4 heads, seq 128, vocab 30522",
                "nlp",
            ),
            _build_bert_tiny,
        ),
        (
            ZooEntry(
                "identity",
                "Identity on a [batch, 1000] float32 tensor (measures overhead)",
                "identity",
            ),
            _build_identity,
        ),
        (
            ZooEntry(
                "mnist", "ONNX model zoo mnist-8 CNN, 1x28x28 -> 10 classes", "classification"
            ),
            _build_mnist,
        ),
        (
            ZooEntry(
                "mobilenetv2",
                "torchvision MobileNetV2 (width 1.0), 3x224x224 -> 1000 classes",
                "classification",
            ),
            _build_mobilenetv2,
        ),
        (
            ZooEntry(
                "resnet50",
                "torchvision ResNet-50 v1.5 (BatchNorm folded), 3x224x224 -> 1000 classes",
                "classification",
            ),
            _build_resnet50,
        ),
    )
}


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def list_models() -> list[ZooEntry]:
    """Return every zoo model, sorted by name.

    Returns:
        The zoo entries, sorted by name.
    """
    return [entry for entry, _ in sorted(_MODELS.values(), key=lambda item: item[0].name)]


def is_zoo_ref(ref: object) -> bool:
    """Tell whether ``ref`` is a zoo reference (a ``str`` starting with ``"zoo:"``).

    Args:
        ref: Anything a caller may pass as a model reference.

    Returns:
        True if ``ref`` is a string that starts with :data:`ZOO_PREFIX`.
    """
    return isinstance(ref, str) and ref.startswith(ZOO_PREFIX)


def resolve(ref: str) -> str:
    """Return the zoo model name of ``ref``.

    Args:
        ref: ``"zoo:<name>"`` or a bare ``"<name>"``.

    Returns:
        The model name, e.g. ``"resnet50"`` for ``"zoo:resnet50"``.

    Raises:
        NotFoundError: If no zoo model has that name; the message lists the known names and the
            closest match.
    """
    name = ref.removeprefix(ZOO_PREFIX)
    if name in _MODELS:
        return name
    known = sorted(_MODELS)
    message = f"unknown zoo model {name!r}; expected one of: {', '.join(known)}"
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    raise NotFoundError(message)


def build_model(name: str, *, seed: int = 0) -> onnx.ModelProto:
    """Build a zoo model with seeded random weights.

    Args:
        name: The model name, with or without the ``"zoo:"`` prefix.
        seed: Seed of the weight generator; the same seed gives the same model, byte for byte.

    Returns:
        The model (opset 17, IR version 8); it passes
        ``onnx.checker.check_model(model, full_check=True)``.

    Raises:
        NotFoundError: If no zoo model has that name.
    """
    resolved = resolve(name)
    entry, builder = _MODELS[resolved]
    graph = _Graph(seed)
    inputs, outputs = builder(graph)
    return graph.model(
        inputs, outputs, resolved, f"{entry.description} (random weights, seed {seed})", seed
    )


def model_bytes(name: str, *, seed: int = 0) -> bytes:
    """Return a zoo model serialized, cached in-process.

    Args:
        name: The model name, with or without the ``"zoo:"`` prefix.
        seed: Seed of the weight generator.

    Returns:
        The serialized ``ModelProto``.

    Raises:
        NotFoundError: If no zoo model has that name.
    """
    return _model_bytes(resolve(name), seed)


@functools.lru_cache(maxsize=8)
def _model_bytes(name: str, seed: int) -> bytes:
    data: bytes = build_model(name, seed=seed).SerializeToString()
    return data
