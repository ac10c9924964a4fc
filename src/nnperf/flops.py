"""FLOPs estimates from an ONNX graph's inferred shapes (``nnperf inspect``, pipeline cut points).

Works on an already shape-inferred graph, so each caller runs shape inference once, on the
graph it needs (``inspect`` with batch fixed to 1; the pipeline keeps its symbolic batch).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["COMPUTE_OPS", "known_shapes", "node_flops", "node_flops_or_none", "shape_map"]

COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm", "MatMulInteger", "QLinearMatMul")
"""Op types whose FLOPs are estimated; every other op counts 0."""


def _known(d: Any) -> bool:
    # Exporters such as Paddle2ONNX store a dynamic dim as dim_value -1: unknown, not a size.
    return bool(d.HasField("dim_value")) and d.dim_value >= 0


def shape_map(graph: Any) -> dict[str, list[int]]:
    """Shapes of the graph's inputs, outputs, value infos and initializers (unknown dims as 1,
    for cost estimates that must give every node a size; see :func:`known_shapes`)."""
    shapes: dict[str, list[int]] = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if _known(d) else 1 for d in dims]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def known_shapes(graph: Any) -> dict[str, list[int]]:
    """Like :func:`shape_map`, but only the tensors whose every dim is known (no guesses)."""
    shapes: dict[str, list[int]] = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        dims = tt.shape.dim
        if all(_known(d) for d in dims):
            shapes[vi.name] = [int(d.dim_value) for d in dims]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.HasField("t"):
                    shapes[node.output[0]] = list(a.t.dims)
    return shapes


def _numel(shape: list[int]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def node_flops(node: Any, shapes: dict[str, list[int]]) -> int:
    """Estimated FLOPs of one node (a multiply-add counts 2); 0 for ops not in ``COMPUTE_OPS``
    or when the shapes it needs are unknown."""
    return node_flops_or_none(node, shapes) or 0


def node_flops_or_none(node: Any, shapes: dict[str, list[int]]) -> int | None:
    """Like :func:`node_flops`, but ``None`` for a compute op whose shapes are not in ``shapes``
    (so a caller can say what it could not count)."""
    op = node.op_type
    if op not in COMPUTE_OPS or not node.input or not node.output:
        return 0
    out = shapes.get(node.output[0])
    first = shapes.get(node.input[0])
    if op in ("Conv", "ConvTranspose"):
        w = shapes.get(node.input[1]) if len(node.input) > 1 else None
        # Conv: every output element sums C_in/group x kernel products. ConvTranspose: every
        # input element scatters into C_out/group x kernel outputs (weight: C_in, C_out/group, k).
        base = out if op == "Conv" else first
        if not w or base is None:
            return None
        return 2 * _numel(base) * _numel(w[1:])
    if out is None or not first:
        return None
    trans_a = any(a.name == "transA" and a.i for a in node.attribute)
    k = first[0] if (op == "Gemm" and trans_a and len(first) == 2) else first[-1]
    return 2 * _numel(out) * max(1, k)
