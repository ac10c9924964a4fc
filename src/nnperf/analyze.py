"""``nnperf inspect``: what a model is made of and where it runs (AWS Neuron's ``analyze_model``).

Reads the graph with ``onnx`` (op histogram; parameters held in initializers and in ``Constant``
nodes, where exporters such as Paddle2ONNX keep weights; FLOPs of Conv/MatMul/Gemm from inferred
shapes) and asks the engine where each node of the optimised graph runs.

FLOPs are estimated only for known shapes: at batch 1 when every other dim is fixed, else at the
shapes given with ``shapes`` / ``dims`` (``--shape`` / ``--dim``). With a dim left unknown the
figure is ``n/a`` naming the dims, never a guess.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnperf.engines.config import RunConfig
from nnperf.model import ModelSource, load_model
from nnperf.runtime.session import Session, resolve_config
from nnperf.types import TensorDesc, check_dims_and_shapes

__all__ = ["FlopsEstimate", "ModelReport", "analyze_model", "count_flops", "estimate_flops"]

INSPECT_SCHEMA = "nnperf.inspect/2"


@dataclass(frozen=True)
class ModelReport:
    """The result of :func:`analyze_model`.

    Attributes:
        name / sha256: the model.
        inputs / outputs: IO descriptions.
        op_counts: node count by op type in the model file.
        parameters: number of weight elements (initializers and ``Constant`` node tensors).
        parameter_bytes: their size in bytes.
        flops: estimated floating-point operations for Conv/ConvTranspose/MatMul/Gemm (a
            multiply-add counts 2) at :attr:`flops_at`; ``None`` when a dim is unknown.
        flops_by_op: the same split by op type.
        placement: provider -> node count in the engine-optimised graph.
        preferred_provider: the first provider asked for.
        optimized_op_counts: node count by op type after the engine's optimisation.
        engine: the engine that optimised and placed the graph (name and version).
        precision: the inference precision it was asked for.
        kernels: node count by (op type, kernel, runtime precision) where the engine says which
            implementation it chose (OpenVINO: ``Convolution brgconv_avx512_amx_1x1_bf16 bf16``);
            empty for engines that do not say.
        unknown_dims: input dims without a size (why ``flops`` is ``None``).
        flops_at: the shapes FLOPs are counted at (``batch 1``, ``x 1x3x64x64``, ``seq=128``).
        uncounted_nodes: compute nodes whose shapes stayed unknown after shape inference
            (data-dependent), left out of ``flops``.
        dims / shapes: what was given to fix symbolic dims.
    """

    name: str
    sha256: str
    inputs: tuple[TensorDesc, ...]
    outputs: tuple[TensorDesc, ...]
    op_counts: dict[str, int]
    parameters: int
    parameter_bytes: int
    flops: int | None
    flops_by_op: dict[str, int]
    placement: dict[str, int]
    preferred_provider: str
    optimized_op_counts: dict[str, int]
    engine: str = ""
    precision: str = "f32"
    kernels: dict[tuple[str, str, str], int] = field(default_factory=dict)
    unknown_dims: tuple[str, ...] = ()
    flops_at: str = "batch 1"
    uncounted_nodes: int = 0
    dims: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def percent_on_preferred(self) -> float:
        """Share of optimised nodes on the preferred provider, in percent."""
        total = sum(self.placement.values())
        return 100.0 * self.placement.get(self.preferred_provider, 0) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``nnperf.inspect/2``; Neuron's analyze_model keys where they apply)."""
        total = sum(self.placement.values())
        return {
            "schema": INSPECT_SCHEMA,
            "model": {"name": self.name, "sha256": self.sha256},
            "inputs": [d.to_dict() for d in self.inputs],
            "outputs": [d.to_dict() for d in self.outputs],
            "operators": self.op_counts,
            "operator_count": sum(self.op_counts.values()),
            "parameters": self.parameters,
            "parameter_bytes": self.parameter_bytes,
            "flops": self.flops,
            "flops_at": self.flops_at,
            "flops_by_op": self.flops_by_op,
            "unknown_dims": list(self.unknown_dims),
            "uncounted_nodes": self.uncounted_nodes,
            "dims": dict(self.dims),
            "shapes": {k: list(v) for k, v in self.shapes.items()},
            "placement": self.placement,
            "preferred_provider": self.preferred_provider,
            "percent_supported": round(self.percent_on_preferred, 2),
            "supported_count": self.placement.get(self.preferred_provider, 0),
            "total_count": total,
            "optimized_operators": self.optimized_op_counts,
            "engine": self.engine,
            "precision": self.precision,
            "kernels": [
                {"op_type": op, "kernel": kernel, "precision": prec, "count": n}
                for (op, kernel, prec), n in sorted(self.kernels.items(), key=lambda kv: -kv[1])
            ],
        }

    def _flops_text(self) -> str:
        if self.flops is None:
            return (
                f"FLOPs: n/a (unknown dims: {', '.join(self.unknown_dims)}; set them with "
                "--shape or --dim)"
            )
        text = f"FLOPs at {self.flops_at}: {self.flops / 1e9:.3f} G"
        if self.flops_by_op:
            text += (
                " ("
                + ", ".join(f"{k} {v / 1e9:.3f} G" for k, v in sorted(self.flops_by_op.items()))
                + ")"
            )
        if self.uncounted_nodes:
            text += (
                f" [{self.uncounted_nodes} compute node(s) with data-dependent shapes not counted]"
            )
        return text

    def render(self) -> str:
        """Human-readable report."""
        lines = [f"Model {self.name} (sha256 {self.sha256[:12]})", "Inputs:"]
        lines += [f"  {d}" for d in self.inputs]
        lines.append("Outputs:")
        lines += [f"  {d}" for d in self.outputs]
        lines.append(
            f"Parameters: {self.parameters:,} ({self.parameter_bytes / 2**20:.1f} MiB)   "
            + self._flops_text()
        )
        lines.append(f"Operators ({sum(self.op_counts.values())} nodes):")
        width = max((len(k) for k in self.op_counts), default=4)
        for op, n in sorted(self.op_counts.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {op:<{width}}  {n:>5}")
        total = sum(self.placement.values())
        lines.append(f"Placement after engine optimisation ({total} nodes):")
        for prov, n in sorted(self.placement.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {prov:<28} {n:>5}  ({100.0 * n / total:.1f} %)")
        lines.append(
            f"{self.percent_on_preferred:.2f}% of operations ({self.placement.get(self.preferred_provider, 0)}"
            f" of {total}) run on the preferred provider {self.preferred_provider}"
        )
        if self.kernels:
            lines.append(
                f"Kernels chosen by {self.engine} at precision {self.precision} "
                "(op type, kernel, runtime precision):"
            )
            w_op = max(len(k[0]) for k in self.kernels)
            w_kernel = max(len(k[1]) for k in self.kernels)
            for (op, kernel, prec), n in sorted(
                self.kernels.items(), key=lambda kv: (-kv[1], kv[0])
            ):
                lines.append(f"  {op:<{w_op}}  {kernel or '-':<{w_kernel}}  {prec:<5} {n:>5}")
        return "\n".join(lines)


@dataclass(frozen=True)
class FlopsEstimate:
    """FLOPs of a model at known shapes.

    Attributes:
        by_op: FLOPs by op type (empty when dims are unknown).
        unknown_dims: input dims without a size (``seq``, or ``x axis 2`` for an unnamed one);
            when any, nothing is counted.
        uncounted: compute nodes whose shapes shape inference could not resolve.
    """

    by_op: dict[str, int]
    unknown_dims: tuple[str, ...] = ()
    uncounted: int = 0

    @property
    def total(self) -> int | None:
        """Total FLOPs, ``None`` with unknown dims."""
        return None if self.unknown_dims else sum(self.by_op.values())


def count_flops(
    model: Any,
    *,
    dims: Mapping[str, int] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> FlopsEstimate:
    """FLOPs by op type for the ops in :data:`nnperf.flops.COMPUTE_OPS` (multiply-add = 2).

    Each input's leading symbolic dim is set to 1 (batch 1); other symbolic dims take their size
    from ``dims`` (by name) or ``shapes`` (whole input shapes); any left unknown are reported and
    nothing is counted. Shapes are then inferred with ``onnx.shape_inference``.
    """
    import onnx

    from nnperf.flops import known_shapes, node_flops_or_none

    m = onnx.ModelProto()
    m.CopyFrom(model)
    values = dict(dims or {})
    whole = dict(shapes or {})
    inits = {i.name for i in m.graph.initializer}
    unknown: list[str] = []
    for vi in m.graph.input:
        if vi.name in inits:
            continue
        given = whole.get(vi.name)
        for i, d in enumerate(vi.type.tensor_type.shape.dim):
            if given is not None and i < len(given):
                d.dim_value = int(given[i])
            elif d.HasField("dim_value") and d.dim_value >= 0:
                continue
            elif d.dim_param and d.dim_param in values:
                d.dim_value = values[d.dim_param]
            elif i == 0:
                d.dim_value = 1
            else:
                unknown.append(d.dim_param or f"{vi.name} axis {i}")
    if unknown:
        return FlopsEstimate({}, tuple(dict.fromkeys(unknown)))
    try:
        m = onnx.shape_inference.infer_shapes(m, data_prop=True)
    except Exception:  # shape inference is best effort for FLOPs
        return FlopsEstimate({}, uncounted=sum(1 for _ in m.graph.node))
    shapes_known = known_shapes(m.graph)
    flops: Counter[str] = Counter()
    uncounted = 0
    for node in m.graph.node:
        n = node_flops_or_none(node, shapes_known)
        if n is None:
            uncounted += 1
        elif n:
            flops[node.op_type] += n
    return FlopsEstimate(dict(flops), uncounted=uncounted)


def estimate_flops(model: Any) -> dict[str, int]:
    """FLOPs by op type at batch 1 (see :func:`count_flops`; empty when a non-batch dim is
    unknown)."""
    return count_flops(model).by_op


def _parameters(proto: Any) -> tuple[int, int]:
    """(elements, bytes) of initializers and of ``Constant`` node tensors."""
    import onnx

    tensors = list(proto.graph.initializer) + [
        a.t
        for n in proto.graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value" and a.HasField("t")
    ]
    count = sum(int(np.prod(t.dims)) for t in tensors)
    size = sum(
        int(np.prod(t.dims)) * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
        for t in tensors
    )
    return count, size


def _flops_at(dims: Mapping[str, int], shapes: Mapping[str, Sequence[int]]) -> str:
    parts = [f"{k} {'x'.join(str(v) for v in shape)}" for k, shape in shapes.items()]
    parts += [f"{k}={v}" for k, v in dims.items()]
    return " ".join(parts) or "batch 1"


def analyze_model(
    model: ModelSource,
    *,
    config: RunConfig | str | None = None,
    device: str | None = None,
    engine: str | None = None,
    precision: str | None = None,
    dims: Mapping[str, int] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> ModelReport:
    """Inspect ``model``: IO, op histogram, parameters, FLOPs, placement and, where the engine says,
    the kernel and runtime precision of every node.

    Args:
        model: path, ``zoo:NAME``, bytes or ``onnx.ModelProto``.
        config / device: how the engine loads it for the placement.
        dims / shapes: sizes of symbolic dims (by name) and whole input shapes, for FLOPs and
            the engine.

    Raises:
        ModelLoadError, NotFoundError, InvalidInputError, UnsupportedError.
    """
    import onnx

    from nnperf.model import graph_io

    blob = load_model(model)
    given_dims = dict(dims or {})
    given_shapes = {k: tuple(int(x) for x in v) for k, v in (shapes or {}).items()}
    check_dims_and_shapes(graph_io(blob).inputs, dims=given_dims, shapes=given_shapes)
    proto = onnx.ModelProto.FromString(blob.data)
    ops = Counter(n.op_type for n in proto.graph.node)
    params, param_bytes = _parameters(proto)
    est = count_flops(proto, dims=given_dims, shapes=given_shapes)
    cfg = resolve_config(config, device=device, engine=engine, precision=precision)
    if given_dims or given_shapes:
        cfg = cfg.replace(dims={**cfg.dims, **given_dims}, shapes={**cfg.shapes, **given_shapes})
    # Placement is read from one profiled run, so one instance is enough.
    first = cfg.device.split(",")[0] if cfg.device else None
    with Session(blob, config=cfg.replace(device=first) if first else cfg) as sess:
        inst = sess.instances[0]
        nodes = inst.placement()
        preferred = inst.providers[0]
        inputs, outputs = sess.inputs, sess.outputs
        engine_label = f"{sess.engine.name} {sess.engine.version}"
    placement = Counter(n.provider for n in nodes)
    optimized_ops = Counter(n.op_type for n in nodes)
    kernels = Counter((n.op_type, n.kernel, n.precision) for n in nodes if n.kernel)
    return ModelReport(
        name=blob.name,
        sha256=blob.sha256,
        inputs=inputs,
        outputs=outputs,
        op_counts=dict(ops),
        parameters=params,
        parameter_bytes=param_bytes,
        flops=est.total,
        flops_by_op=est.by_op,
        placement=dict(placement),
        preferred_provider=preferred,
        optimized_op_counts=dict(optimized_ops),
        engine=engine_label,
        precision=cfg.precision,
        kernels=dict(kernels),
        unknown_dims=est.unknown_dims,
        flops_at=_flops_at(given_dims, given_shapes),
        uncounted_nodes=est.uncounted,
        dims=given_dims,
        shapes=given_shapes,
    )
