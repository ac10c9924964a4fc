"""``create_pipeline``: one model split into K stages, each on its own instance (NeuronCore pipeline).

The graph is cut at K-1 points of its topological node order, chosen so every stage has about
the same estimated FLOPs (``balance="flops"``, the default) or the same node count
(``balance="nodes"``). Each stage is extracted as its own ONNX model with
``onnx.utils.Extractor`` (the in-memory half of ``onnx.utils.extract_model``) and loaded on one
instance; a thread per stage streams queries through bounded queues, so while stage 2 runs query
*n*, stage 1 already runs query *n + 1*. Outputs equal the unsplit model's.

``onnx`` is imported inside :func:`create_pipeline` only: importing the runtime never loads graph
tooling.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from nnperf.device import parse_device
from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError, ModelLoadError, OverloadedError
from nnperf.model import ModelSource, load_model
from nnperf.runtime.feeds import FeedValidator, Inputs
from nnperf.runtime.observers import Observers, RunEvent
from nnperf.runtime.runner import default_max_inflight
from nnperf.runtime.session import Session, resolve_config
from nnperf.types import TensorDesc

__all__ = ["Pipeline", "StageInfo", "create_pipeline"]

_BALANCES = ("flops", "nodes")


@dataclass(frozen=True)
class StageInfo:
    """One pipeline stage.

    Attributes:
        index: stage number, from 0.
        nodes: graph nodes in the stage.
        flops: estimated FLOPs of one batch-1 query in the stage (2 x multiply-accumulates for
            Conv/MatMul/Gemm, one per output element otherwise).
        inputs: tensors the stage reads (graph inputs or earlier stages' outputs).
        outputs: tensors the stage hands on (to later stages or as model outputs).
        device: the instance the stage runs on (``cpu(1)``, ``cpu:0``, ``cuda:0``...).
    """

    index: int
    nodes: int
    flops: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    device: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "index": self.index,
            "nodes": self.nodes,
            "flops": self.flops,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "device": self.device,
        }


class _Job:
    __slots__ = ("env", "future", "submit_ns")

    def __init__(
        self, env: dict[str, np.ndarray], future: Future[list[np.ndarray]], submit_ns: int
    ) -> None:
        self.env = env
        self.future = future
        self.submit_ns = submit_ns


class Pipeline:
    """Streams queries through model stages on separate instances. Thread-safe.

    Build one with :func:`create_pipeline`. ``submit`` returns a ``concurrent.futures.Future``;
    ``run`` waits for it. It fits :class:`~nnperf.runtime.aio.AsyncRunner` as ``backend=``.
    """

    def __init__(
        self,
        sessions: Sequence[Session],
        stages: Sequence[StageInfo],
        *,
        inputs: tuple[TensorDesc, ...],
        outputs: tuple[TensorDesc, ...],
        queue_size: int,
        max_inflight: int,
        device: str = "",
    ) -> None:
        self.sessions = list(sessions)
        # One observer list for every stage (each stage session was built with it): a run event
        # per stage run, ``instance`` and ``stage`` naming the stage.
        self.observers: Observers = self.sessions[0].observers if self.sessions else Observers()
        self.device = device
        self.stages = tuple(stages)
        self._inputs = inputs
        self._outputs = outputs
        self._output_names = [o.name for o in outputs]
        self._validator = FeedValidator(inputs)
        self.max_inflight = max_inflight
        self._slots = threading.BoundedSemaphore(max_inflight)
        # Names each stage must pass on: read by a later stage or returned.
        later: set[str] = set(self._output_names)
        keep: list[set[str]] = []
        for info in reversed(self.stages):
            keep.append(set(later))
            later |= set(info.inputs)
        keep.reverse()
        self._keep = keep
        # The first queue is bounded by the in-flight slots; the others by ``queue_size``.
        self._queues: list[queue.Queue[_Job | None]] = [
            queue.Queue(maxsize=0 if i == 0 else queue_size) for i in range(len(self.stages))
        ]
        self._closed = False
        self._close_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"nnperf-stage-{i}", daemon=True)
            for i in range(len(self.stages))
        ]
        for t in self._threads:
            t.start()

    @property
    def inputs(self) -> tuple[TensorDesc, ...]:
        """Inputs of the whole model."""
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorDesc, ...]:
        """Outputs of the whole model."""
        return self._outputs

    def submit(self, inputs: Inputs, *, timeout_s: float | None = None) -> Future[list[np.ndarray]]:
        """Queue one query; the future holds the model's outputs, in :attr:`outputs` order.

        Args:
            inputs: one array, a list in input order, or a dict by name (validated here).
            timeout_s: longest wait in seconds for an in-flight slot; ``None`` waits as needed.

        Raises:
            InvalidInputError: a bad feed, or the pipeline is closed.
            OverloadedError: no slot within ``timeout_s``.
        """
        submit_ns = time.perf_counter_ns()
        if self._closed:
            raise InvalidInputError("pipeline is closed; create a new one with create_pipeline()")
        # A copy: the stages add their outputs to it, and the caller's dict must stay as given.
        feeds = dict(self._validator.normalise(inputs))
        if not self._slots.acquire(timeout=timeout_s):
            raise OverloadedError(
                f"{self.max_inflight} queries already in the pipeline and none finished within "
                f"{timeout_s} s; retry later or raise max_inflight"
            )
        future: Future[list[np.ndarray]] = Future()
        with self._close_lock:
            if self._closed:
                self._slots.release()
                raise InvalidInputError(
                    "pipeline is closed; create a new one with create_pipeline()"
                )
            # The first queue is unbounded (the slots bound it): this never blocks.
            self._queues[0].put(_Job(feeds, future, submit_ns))
        return future

    def run(self, inputs: Inputs, *, timeout_s: float | None = None) -> list[np.ndarray]:
        """Submit one query and wait for its outputs."""
        return self.submit(inputs).result(timeout=timeout_s)

    def _work(self, index: int) -> None:
        info = self.stages[index]
        inst = self.sessions[index].instances[0]
        names = list(info.inputs)
        outs = list(info.outputs)
        keep = self._keep[index]
        get = self._queues[index].get
        last = index == len(self.stages) - 1
        put_next = None if last else self._queues[index + 1].put
        release = self._slots.release
        observers = self.observers
        session_id = id(self.sessions[index])
        self.sessions[index].bind_thread(0)
        while True:
            job = get()
            if job is None:
                if put_next is not None:
                    put_next(None)
                return
            fut = job.future
            if index == 0 and not fut.set_running_or_notify_cancel():
                release()
                continue
            env = job.env
            watched = observers.items
            start = time.perf_counter_ns() if watched else 0
            try:
                produced = inst.run_outputs(outs, {n: env[n] for n in names})
            except BaseException as exc:  # the caller gets every error through its future
                release()
                fut.set_exception(exc)
                if watched:
                    self._emit(session_id, index, job, start, type(exc).__name__)
                continue
            if watched:
                self._emit(session_id, index, job, start, None)
            env.update(zip(outs, produced))
            if last:
                result = [env[n] for n in self._output_names]
                release()
                fut.set_result(result)
            else:
                job.env = {n: v for n, v in env.items() if n in keep}
                assert put_next is not None
                put_next(job)

    def _emit(
        self, session_id: int, index: int, job: _Job, start_ns: int, error: str | None
    ) -> None:
        end = time.perf_counter_ns()
        first = next(iter(job.env.values()), None)
        batch = int(first.shape[0]) if isinstance(first, np.ndarray) and first.ndim else 1
        self.observers.emit(
            RunEvent(
                session_id=session_id,
                instance=index,
                thread_id=threading.get_ident(),
                batch=batch,
                submit_ns=job.submit_ns,
                start_ns=start_ns,
                engine_start_ns=start_ns,
                engine_end_ns=end,
                end_ns=end,
                error=error,
                stage=index,
            )
        )

    def close(self, *, cancel_pending: bool = False) -> None:
        """Stop accepting queries, finish (or cancel) queued ones, join the stage threads.

        Args:
            cancel_pending: cancel queries that have not entered the first stage.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            if cancel_pending:
                first = self._queues[0]
                while True:
                    try:
                        job = first.get_nowait()
                    except queue.Empty:
                        break
                    if job is not None and job.future.cancel():
                        self._slots.release()
            self._queues[0].put(None)
        for t in self._threads:
            if t is not threading.current_thread():
                t.join()
        for s in self.sessions:
            s.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def instances(self) -> int:
        """Engine instances the pipeline runs on (one per stage)."""
        return len(self.stages)

    def __repr__(self) -> str:
        return f"Pipeline(stages={len(self.stages)}, devices={[s.device for s in self.stages]})"


# --------------------------------------------------------------------------------------------
# graph splitting (onnx imported lazily)
# --------------------------------------------------------------------------------------------


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
    """Split ``model`` into ``stages`` pieces and load each on its own instance.

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
    if balance not in _BALANCES:
        raise InvalidInputError(f"balance: got {balance!r}, expected one of {list(_BALANCES)}")
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
    sessions: list[Session] = []
    shared = Observers()
    try:
        for proto, inst in zip(protos, instances):
            sessions.append(
                Session(
                    proto.SerializeToString(),
                    config=cfg.replace(device=inst.label),
                    observers=shared,
                )
            )
    except BaseException:
        for s in sessions:
            s.close()
        raise
    infos = [
        StageInfo(i.index, i.nodes, i.flops, i.inputs, i.outputs, inst.label)
        for i, inst in zip(infos, instances)
    ]
    limit = max_inflight or cfg.max_inflight or default_max_inflight(stages, stages)
    return Pipeline(
        sessions,
        infos,
        inputs=inputs,
        outputs=outputs,
        queue_size=queue_size,
        max_inflight=limit,
        device=spec.text,
    )
