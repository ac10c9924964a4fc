"""Offline graph optimisation (MegEngine ``--layout-transform-dump``): save the model as the engine
optimised it (fusions, NCHWc layouts) and load that dump later without re-optimising."""

from __future__ import annotations

import os
import platform
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from nnperf.device import parse_device
from nnperf.engines.config import RunConfig
from nnperf.engines.onnxruntime_options import GraphLevel
from nnperf.model import ModelSource, load_model
from nnperf.optimize.config import graph_dumper, run_config
from nnperf.optimize.measure import Comparison, compare_before_after

__all__ = [
    "GraphDump",
    "compare_dump_load",
    "cpu_model",
    "dump_optimized",
    "optimized_graph",
    "optimized_op_counts",
]

_LAYOUT_OPS = ("ReorderInput", "ReorderOutput")
_NCHWC_DOMAIN = "com.microsoft.nchwc"
_INT8_OPS = (
    "QLinearConv",
    "QLinearMatMul",
    "ConvInteger",
    "MatMulInteger",
    "MatMulIntegerToFloat",
    "QGemm",
    "DynamicQuantizeMatMul",
    "QLinearAdd",
    "QLinearMul",
    "QLinearGlobalAveragePool",
    "QLinearAveragePool",
    "QLinearSigmoid",
    "QLinearLeakyRelu",
    "QLinearConcat",
)


def cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class GraphDump:
    """What an optimised-graph dump contains.

    Attributes:
        path: where it was written.
        level: the graph level it was optimised at.
        op_counts: node count per ``domain:op_type`` (``""`` domain written bare).
        fusions: fused nodes (``com.microsoft`` fused ops such as ``FusedConv``, int8 kernels).
        layout_nodes: NCHWc layout nodes (``ReorderInput``/``ReorderOutput``), with attributes.
        nchwc_nodes: how many nodes run in the blocked NCHWc layout.
        int8_nodes: nodes running int8 kernels (``QLinearConv``, ``MatMulInteger``...).
        cpu: the CPU model the dump was made on.
        warning: the hardware caveat to show the user.
    """

    path: str
    level: str
    op_counts: dict[str, int]
    fusions: tuple[str, ...]
    layout_nodes: tuple[str, ...]
    nchwc_nodes: int
    int8_nodes: int
    cpu: str
    warning: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "path": self.path,
            "level": self.level,
            "op_counts": dict(self.op_counts),
            "fusions": list(self.fusions),
            "layout_nodes": list(self.layout_nodes),
            "nchwc_nodes": self.nchwc_nodes,
            "int8_nodes": self.int8_nodes,
            "cpu": self.cpu,
            "warning": self.warning,
        }


def _key(node: onnx.NodeProto) -> str:
    return f"{node.domain}:{node.op_type}" if node.domain else node.op_type


def _write_dump(model: ModelSource, path: str, level: str, config: RunConfig | None) -> str:
    cfg = run_config(config, graph_level=level)
    engine = graph_dumper(cfg)
    spec = parse_device(cfg.device).instances[0]
    return engine.dump_optimized(load_model(model), cfg, spec, path)


def optimized_graph(
    model: ModelSource, *, level: str | GraphLevel = GraphLevel.ALL, config: RunConfig | None = None
) -> onnx.ModelProto:
    """The graph the engine actually runs at ``level`` (written by the engine, read back)."""
    with tempfile.TemporaryDirectory(prefix="nnperf-opt-") as tmp:
        path = _write_dump(model, os.path.join(tmp, "optimized.onnx"), str(level), config)
        return onnx.load(path)


def optimized_op_counts(
    model: ModelSource, *, level: str | GraphLevel = GraphLevel.ALL
) -> Counter[str]:
    """Node counts by (domain-qualified) op type in the engine-optimised graph."""
    return Counter(_key(n) for n in optimized_graph(model, level=level).graph.node)


def _describe(proto: onnx.ModelProto, path: str, level: GraphLevel) -> GraphDump:
    counts = Counter(_key(n) for n in proto.graph.node)
    fusions = []
    layout = []
    nchwc = 0
    int8 = 0
    for n in proto.graph.node:
        if n.domain == _NCHWC_DOMAIN:
            nchwc += 1
        if n.op_type in _LAYOUT_OPS:
            attrs = ",".join(f"{a.name}={onnx.helper.get_attribute_value(a)}" for a in n.attribute)
            layout.append(f"{n.op_type}({attrs}) {n.name}")
        elif n.op_type in _INT8_OPS:
            int8 += 1
            fusions.append(f"{n.op_type} {n.name}")
        elif n.domain == "com.microsoft" or (
            n.domain == _NCHWC_DOMAIN and any(a.name == "activation" for a in n.attribute)
        ):
            act = next(
                (onnx.helper.get_attribute_value(a) for a in n.attribute if a.name == "activation"),
                None,
            )
            extra = f"+{act.decode() if isinstance(act, bytes) else act}" if act else ""
            fusions.append(f"{n.op_type}{extra} {n.name}")
    cpu = cpu_model()
    warning = (
        f"this dump was optimised for this CPU ({cpu}); NCHWc block sizes and kernel choices "
        "depend on its instruction set (AVX2 vs AVX-512). Re-create it on each target machine; "
        "load it with graph level 'disabled'."
    )
    return GraphDump(
        path=path,
        level=str(level),
        op_counts=dict(sorted(counts.items())),
        fusions=tuple(fusions),
        layout_nodes=tuple(layout),
        nchwc_nodes=nchwc,
        int8_nodes=int8,
        cpu=cpu,
        warning=warning,
    )


def dump_optimized(
    model: ModelSource,
    path: str | os.PathLike[str],
    *,
    level: str | GraphLevel = GraphLevel.ALL,
    config: RunConfig | None = None,
) -> GraphDump:
    """Write the engine-optimised model to ``path`` and describe what it contains.

    The dump is hardware-specific (see :attr:`GraphDump.warning`). Load it with
    ``RunConfig().with_options(graph_level="disabled")``: the engine then skips graph optimisation.

    Args:
        model: the model.
        path: output ONNX file.
        level: graph level to optimise at (default ``all``: fusions and NCHWc layouts).
        config: other run settings (default ``RunConfig(device="cpu(1)")``).
    """
    lvl = GraphLevel(level)
    out = _write_dump(model, os.fspath(path), str(lvl), config)
    proto = onnx.load(out)
    return _describe(proto, out, lvl)


def compare_dump_load(
    model: ModelSource,
    dump_path: str | os.PathLike[str],
    feeds: Sequence[Mapping[str, np.ndarray]],
    *,
    level: str | GraphLevel = GraphLevel.ALL,
    config: RunConfig | None = None,
    iters: int = 20,
) -> Comparison:
    """Load/prepare/warm-up/inference of the original (optimised online at ``level``) vs the dump
    (loaded with optimisation disabled), and their output agreement."""
    return compare_before_after(
        model,
        os.fspath(dump_path),
        feeds,
        config=run_config(config, graph_level=level),
        after_config=run_config(config, graph_level=GraphLevel.DISABLED),
        iters=iters,
    )
