"""The pipeline's graph partition: one model cut into K stages (``nnperf.create_pipeline``).

The graph is cut at K-1 points of its topological node order, chosen so every stage has about
the same estimated FLOPs (``balance="flops"``, the default) or the same node count
(``balance="nodes"``). Each stage is extracted as its own ONNX model with
``onnx.utils.Extractor`` (the in-memory half of ``onnx.utils.extract_model``) and handed to
:func:`nnperf.runtime.pipeline.load_pipeline`, which loads each on its own instance. Outputs
equal the unsplit model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nnperf.device import parse_device
from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError, ModelLoadError
from nnperf.model import ModelSource, load_model
from nnperf.runtime.pipeline import Pipeline, StageInfo, load_pipeline
from nnperf.runtime.session import resolve_config
from nnperf.types import TensorDesc

__all__ = ["BALANCES", "create_pipeline", "split_model"]

BALANCES = ("flops", "nodes")


def _numel_of(shape: list[int]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _cut_points(costs: Sequence[int], stages: int) -> list[int]:
    """Node indices where stages 1..K-1 start, balancing the prefix sums of ``costs``."""
    total = float(sum(costs))
    prefix = np.cumsum(costs, dtype=np.float64)
    n = len(costs)
    cuts: list[int] = []
    prev = 0
    for k in range(1, stages):
        # Stage k starts at node c: nodes [prev, c) before it; leave room for the stages after.
        lo, hi = prev + 1, n - (stages - k)
        target = total * k / stages
        cands = range(lo, hi + 1)
        best = min(cands, key=lambda c: abs(prefix[c - 1] - target))
        cuts.append(best)
        prev = best
    return cuts


def _split(model_bytes: bytes, stages: int, balance: str) -> tuple[list[Any], list[StageInfo], Any]:
    """Stage models (``onnx.ModelProto``), their descriptions and the whole (shape-inferred) model."""
    import onnx
    import onnx.shape_inference
    import onnx.utils

    from nnperf.flops import node_flops, shape_map

    model = onnx.ModelProto.FromString(model_bytes)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:
        raise ModelLoadError(
            f"shape inference failed, so the graph cannot be split: {exc}"
        ) from exc
    graph = inferred.graph
    nodes = list(graph.node)
    if stages > len(nodes):
        raise InvalidInputError(
            f"stages={stages}: the model has only {len(nodes)} node(s); expected at most "
            f"{len(nodes)} stages"
        )
    shapes = shape_map(graph)

    def cost(node: Any) -> int:
        # Ops without a FLOPs estimate cost their output size, so no node is free.
        outputs = sum(_numel_of(shapes.get(o, [1])) for o in node.output if o)
        return node_flops(node, shapes) or max(1, outputs)

    # "nodes": every node costs the same.
    costs = [cost(nd) if balance == "flops" else 1 for nd in nodes]
    bounds = [0, *_cut_points(costs, stages), len(nodes)]
    initializers = {i.name for i in graph.initializer}
    graph_outputs = [o.name for o in graph.output]
    produced_at: dict[str, int] = {}
    for k in range(stages):
        for nd in nodes[bounds[k] : bounds[k + 1]]:
            for o in nd.output:
                if o:
                    produced_at[o] = k
    read_at: dict[str, set[int]] = {}
    for k in range(stages):
        for nd in nodes[bounds[k] : bounds[k + 1]]:
            for i in nd.input:
                if i and i not in initializers:
                    read_at.setdefault(i, set()).add(k)
    extractor = onnx.utils.Extractor(inferred)
    protos: list[Any] = []
    infos: list[StageInfo] = []
    for k in range(stages):
        stage_nodes = nodes[bounds[k] : bounds[k + 1]]
        ins: list[str] = []
        for nd in stage_nodes:
            for i in nd.input:
                if i and i not in initializers and produced_at.get(i, -1) != k and i not in ins:
                    ins.append(i)
        outs = [
            name
            for name, at in produced_at.items()
            if at == k and (name in graph_outputs or any(r > k for r in read_at.get(name, ())))
        ]
        if not outs:
            raise InvalidInputError(
                f"stage {k} of {stages} produces nothing later stages need (dead nodes?); "
                "try fewer stages or balance='nodes'"
            )
        try:
            proto = extractor.extract_model(ins, outs)
        except Exception as exc:
            raise ModelLoadError(
                f"could not extract stage {k} (inputs {ins}, outputs {outs}): {exc}"
            ) from exc
        protos.append(proto)
        infos.append(
            StageInfo(
                index=k,
                nodes=len(stage_nodes),
                flops=int(sum(costs[bounds[k] : bounds[k + 1]])) if balance == "flops" else 0,
                inputs=tuple(ins),
                outputs=tuple(outs),
                device="",
            )
        )
    return protos, infos, inferred


def _descs(values: Any, initializers: set[str]) -> tuple[TensorDesc, ...]:
    from onnx import helper

    out = []
    for vi in values:
        if vi.name in initializers:
            continue
        tt = vi.type.tensor_type
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim
        )
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).name
        out.append(TensorDesc(name=vi.name, shape=dims, dtype=dtype))
    return tuple(out)


def create_pipeline(
    model: ModelSource,
    *,
    stages: int = 2,
    device: str | None = None,
    config: RunConfig | str | None = None,
    balance: str = "flops",
    queue_size: int = 2,
    max_inflight: int | None = None,
) -> Pipeline:
    """Split ``model`` into ``stages`` pieces and load each on its own instance (a
    :class:`~nnperf.runtime.pipeline.Pipeline`, an Executor).

    Args:
        model: path, ``zoo:NAME``, bytes or ``onnx.ModelProto``.
        stages: number of stages K (default 2).
        device: a device with K instances (one per stage) or one instance (copied for every
            stage); default ``cpu(1)*K``.
        config: a :class:`RunConfig` (or JSON path) for every stage; its device is the default.
        balance: ``"flops"`` (default: equal estimated FLOPs per stage) or ``"nodes"``.
        queue_size: queries that may wait between two stages (default 2).
        max_inflight: queries inside the pipeline at once; default ``$NNPERF_MAX_INFLIGHT``, else
            K + 3.

    Raises:
        InvalidInputError: bad stages, balance or device; ModelLoadError: the graph cannot be split.
    """
    if isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
        raise InvalidInputError(f"stages: got {stages!r}, expected a positive integer")
    if balance not in BALANCES:
        raise InvalidInputError(f"balance: got {balance!r}, expected one of {list(BALANCES)}")
    if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
        raise InvalidInputError(f"queue_size: got {queue_size!r}, expected a positive integer")
    cfg = resolve_config(config, device=device)
    spec = parse_device(cfg.device if cfg.device is not None else f"cpu(1)*{stages}")
    if len(spec.instances) == 1:
        instances = [spec.instances[0]] * stages
    elif len(spec.instances) == stages:
        instances = list(spec.instances)
    else:
        raise InvalidInputError(
            f"device {spec.text!r} has {len(spec.instances)} instances for {stages} stages; "
            f"expected {stages} instances (one per stage, e.g. 'cpu(1)*{stages}') or one"
        )
    blob = load_model(model)
    protos, infos, whole = _split(blob.data, stages, balance)
    inits = {i.name for i in whole.graph.initializer}
    inputs = _descs(whole.graph.input, inits)
    outputs = _descs(whole.graph.output, set())
    infos = [
        StageInfo(i.index, i.nodes, i.flops, i.inputs, i.outputs, inst.label)
        for i, inst in zip(infos, instances)
    ]
    return load_pipeline(
        [p.SerializeToString() for p in protos],
        infos,
        inputs=inputs,
        outputs=outputs,
        config=cfg,
        devices=[inst.label for inst in instances],
        device=spec.text,
        queue_size=queue_size,
        max_inflight=max_inflight,
    )


def split_model(
    model: ModelSource, stages: int, *, balance: str = "flops"
) -> tuple[list[bytes], list[StageInfo]]:
    """``model`` cut into ``stages`` stage models (serialized) and their descriptions (the
    ``device`` of each description is empty: :func:`create_pipeline` assigns instances)."""
    if balance not in BALANCES:
        raise InvalidInputError(f"balance: got {balance!r}, expected one of {list(BALANCES)}")
    protos, infos, _ = _split(load_model(model).data, stages, balance)
    return [p.SerializeToString() for p in protos], infos
