"""``nnperf inspect``: what a model is made of and where it runs (AWS Neuron's ``analyze_model``).

Reads the graph with ``onnx`` (op histogram, parameters, FLOPs of Conv/MatMul/Gemm from inferred
shapes at batch 1) and asks the engine where each node of the optimised graph runs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnperf.engines.config import RunConfig
from nnperf.model import ModelSource, load_model
from nnperf.runtime.session import Session, resolve_config
from nnperf.types import TensorDesc

__all__ = ["ModelReport", "analyze_model", "estimate_flops"]


@dataclass(frozen=True)
class ModelReport:
    """The result of :func:`analyze_model`.

    Attributes:
        name / sha256: the model.
        inputs / outputs: IO descriptions.
        op_counts: node count by op type in the model file.
        parameters: number of weight elements (initializers).
        parameter_bytes: their size in bytes.
        flops: estimated floating-point operations at batch 1 for Conv/ConvTranspose/MatMul/Gemm
            (a multiply-add counts 2).
        flops_by_op: the same split by op type.
        placement: provider -> node count in the engine-optimised graph.
        preferred_provider: the first provider asked for.
        optimized_op_counts: node count by op type after the engine's optimisation.
        engine: the engine that optimised and placed the graph (name and version).
        precision: the inference precision it was asked for.
        kernels: node count by (op type, kernel, runtime precision) where the engine says which
            implementation it chose (OpenVINO: ``Convolution brgconv_avx512_amx_1x1_bf16 bf16``);
            empty for engines that do not say.
    """

    name: str
    sha256: str
    inputs: tuple[TensorDesc, ...]
    outputs: tuple[TensorDesc, ...]
    op_counts: dict[str, int]
    parameters: int
    parameter_bytes: int
    flops: int
    flops_by_op: dict[str, int]
    placement: dict[str, int]
    preferred_provider: str
    optimized_op_counts: dict[str, int]
    engine: str = ""
    precision: str = "f32"
    kernels: dict[tuple[str, str, str], int] = field(default_factory=dict)

    @property
    def percent_on_preferred(self) -> float:
        """Share of optimised nodes on the preferred provider, in percent."""
        total = sum(self.placement.values())
        return 100.0 * self.placement.get(self.preferred_provider, 0) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form (Neuron's analyze_model keys where they apply)."""
        total = sum(self.placement.values())
        return {
            "schema": "nnperf.inspect/1",
            "model": {"name": self.name, "sha256": self.sha256},
            "inputs": [d.to_dict() for d in self.inputs],
            "outputs": [d.to_dict() for d in self.outputs],
            "operators": self.op_counts,
            "operator_count": sum(self.op_counts.values()),
            "parameters": self.parameters,
            "parameter_bytes": self.parameter_bytes,
            "flops": self.flops,
            "flops_by_op": self.flops_by_op,
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

    def render(self) -> str:
        """Human-readable report."""
        lines = [f"Model {self.name} (sha256 {self.sha256[:12]})", "Inputs:"]
        lines += [f"  {d}" for d in self.inputs]
        lines.append("Outputs:")
        lines += [f"  {d}" for d in self.outputs]
        lines.append(
            f"Parameters: {self.parameters:,} ({self.parameter_bytes / 2**20:.1f} MiB)   "
            f"FLOPs at batch 1: {self.flops / 1e9:.3f} G"
            + (
                " ("
                + ", ".join(f"{k} {v / 1e9:.3f} G" for k, v in sorted(self.flops_by_op.items()))
                + ")"
                if self.flops_by_op
                else ""
            )
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


def estimate_flops(model: Any) -> dict[str, int]:
    """FLOPs by op type for the ops in :data:`nnperf.flops.COMPUTE_OPS` at batch 1
    (multiply-add = 2).

    Symbolic input dimensions are set to 1 and shapes inferred with ``onnx.shape_inference``;
    dimensions that stay unknown count as 1.
    """
    import onnx

    from nnperf.flops import node_flops, shape_map

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in m.graph.input:
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.dim_value = 1
    try:
        m = onnx.shape_inference.infer_shapes(m, data_prop=True)
    except Exception:  # shape inference is best effort for FLOPs
        return {}
    shapes = shape_map(m.graph)
    flops: Counter[str] = Counter()
    for node in m.graph.node:
        n = node_flops(node, shapes)
        if n:
            flops[node.op_type] += n
    return dict(flops)


def analyze_model(
    model: ModelSource,
    *,
    config: RunConfig | str | None = None,
    device: str | None = None,
    engine: str | None = None,
    precision: str | None = None,
) -> ModelReport:
    """Inspect ``model``: IO, op histogram, parameters, FLOPs, placement and, where the engine says,
    the kernel and runtime precision of every node.

    Raises:
        ModelLoadError, NotFoundError, InvalidInputError, UnsupportedError.
    """
    import onnx

    blob = load_model(model)
    proto = onnx.ModelProto.FromString(blob.data)
    ops = Counter(n.op_type for n in proto.graph.node)
    params = sum(int(np.prod(i.dims)) for i in proto.graph.initializer)
    param_bytes = sum(
        int(np.prod(i.dims)) * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(i.data_type)).itemsize
        for i in proto.graph.initializer
    )
    flops = estimate_flops(proto)
    cfg = resolve_config(config, device=device, engine=engine, precision=precision)
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
        flops=sum(flops.values()),
        flops_by_op=flops,
        placement=dict(placement),
        preferred_provider=preferred,
        optimized_op_counts=dict(optimized_ops),
        engine=engine_label,
        precision=cfg.precision,
        kernels=dict(kernels),
    )
