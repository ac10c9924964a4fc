"""Mixed precision (Neuron's autocast, ``--fp32-cast``): float32 -> float16 for every op or only
for the matrix ops, through onnxruntime's ``transformers.float16`` converter with op block lists."""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from nnperf.errors import InvalidInputError, MissingDependencyError, UnsupportedError
from nnperf.model import ModelSource
from nnperf.optimize.editor import as_proto

__all__ = ["MATMUL_OPS", "convert_precision"]

MATMUL_OPS = frozenset(
    {"MatMul", "Gemm", "Conv", "ConvTranspose", "Attention", "MultiHeadAttention"}
)
"""Ops converted by ``matmul_only`` (Neuron's ``--fp32-cast matmult``)."""

_PRECISIONS = ("fp16", "bf16")


def convert_precision(
    model: ModelSource,
    precision: str = "fp16",
    *,
    matmul_only: bool = False,
    keep_io_types: bool = True,
    op_block_list: Sequence[str] = (),
    node_block_list: Sequence[str] = (),
    device: str = "cpu",
) -> onnx.ModelProto:
    """Convert float32 compute to a 16-bit float type.

    Args:
        model: the float32 model.
        precision: ``fp16`` (default) or ``bf16``.
        matmul_only: convert only MatMul/Gemm/Conv/attention (everything else blocked and kept in
            float32, with Casts around the converted ops); default: every op onnxruntime's
            converter allows.
        keep_io_types: keep float32 inputs and outputs (Casts inside); default on.
        op_block_list: further op types to keep in float32.
        node_block_list: node names to keep in float32.
        device: the target device kind (``cpu`` or ``cuda``); decides whether bf16 can run.

    Raises:
        UnsupportedError: ``bf16`` on a device whose engine has no bfloat16 kernels (the
            onnxruntime CPU provider has none for Conv/MatMul/Gemm).
        InvalidInputError: unknown precision.
    """
    if precision not in _PRECISIONS:
        raise InvalidInputError(f"precision: got {precision!r}, expected one of {_PRECISIONS}")
    if precision == "bf16":
        # onnxruntime's converter only emits float16; bfloat16 Conv/MatMul/Gemm kernels exist in
        # no onnxruntime CPU build, and the CUDA provider's coverage is partial.
        raise UnsupportedError(
            f"bf16 on device {device!r}: onnxruntime's CPU execution provider has no bfloat16 "
            "Conv/MatMul/Gemm kernels and its float16 converter cannot emit bfloat16; use "
            "precision='fp16', or run bf16 through OpenVINO (inference precision hint) or "
            "TensorRT (trt_bf16_enable)"
        )
    try:
        from onnxruntime.transformers.float16 import (
            DEFAULT_OP_BLOCK_LIST,
            convert_float_to_float16,
        )
    except ImportError as exc:  # pragma: no cover - ships in every onnxruntime wheel
        raise MissingDependencyError("onnxruntime", "onnxruntime", "float16 conversion") from exc
    proto = as_proto(model)
    blocked = set(DEFAULT_OP_BLOCK_LIST) | set(op_block_list)
    if matmul_only:
        blocked |= {n.op_type for n in proto.graph.node if n.op_type not in MATMUL_OPS}
    converted: onnx.ModelProto = convert_float_to_float16(
        proto,
        keep_io_types=keep_io_types,
        op_block_list=sorted(blocked),
        node_block_list=list(node_block_list) or None,
    )
    _topological_sort(converted.graph)  # the converter appends its input Casts at the end
    onnx.checker.check_model(converted)
    return converted


def _topological_sort(graph: onnx.GraphProto) -> None:
    available = {vi.name for vi in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [n for n in pending if all(t in available for t in n.input)]
        if not ready:  # a cycle or a dangling input: leave the rest as they were
            ordered.extend(pending)
            break
        for n in ready:
            ordered.append(n)
            available.update(n.output)
        pending = [n for n in pending if all(n is not r for r in ready)]
    copies = [onnx.NodeProto() for _ in ordered]
    for c, n in zip(copies, ordered):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)
