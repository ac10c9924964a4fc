"""``Pipeline``: a model's stages, each on its own instance (NeuronCore pipeline).

Each stage is a model of its own loaded on one instance; a thread per stage streams queries
through bounded queues, so while stage 2 runs query *n*, stage 1 already runs query *n + 1*.
Splitting the graph is graph tooling and lives above the runtime, in
:mod:`nnperf.optimize.partition` (:func:`nnperf.create_pipeline` splits and calls
:func:`load_pipeline`).
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

from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError, OverloadedError
from nnperf.model import ModelSource
from nnperf.runtime.feeds import FeedValidator, Inputs
from nnperf.runtime.observers import Observers, RunEvent
from nnperf.runtime.runner import default_max_inflight
from nnperf.runtime.session import Session
from nnperf.types import TensorDesc

__all__ = ["Pipeline", "StageInfo", "load_pipeline"]


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


def load_pipeline(
    stage_models: Sequence[ModelSource],
    stages: Sequence[StageInfo],
    *,
    inputs: tuple[TensorDesc, ...],
    outputs: tuple[TensorDesc, ...],
    config: RunConfig,
    devices: Sequence[str],
    device: str,
    queue_size: int = 2,
    max_inflight: int | None = None,
) -> Pipeline:
    """Load already split stage models, one Session each, and start the pipeline.

    :func:`nnperf.create_pipeline` (``nnperf.optimize.partition``) splits a model and calls this;
    call it yourself with stage models split another way.

    Args:
        stage_models: one model per stage, in order; each reads graph inputs or earlier stages'
            outputs.
        stages: their descriptions (what each reads and hands on).
        inputs / outputs: the whole model's inputs and outputs.
        config: the run configuration of every stage (its device is replaced by ``devices``).
        devices: the instance each stage runs on (``cpu(1)``, ``cpu:0``...).
        device: the device string of the whole pipeline (reported by ``bench``).
        queue_size: queries that may wait between two stages (default 2).
        max_inflight: queries inside at once (default ``$NNPERF_MAX_INFLIGHT``, else K + 3).
    """
    if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
        raise InvalidInputError(f"queue_size: got {queue_size!r}, expected a positive integer")
    if not (len(stage_models) == len(stages) == len(devices)) or not stages:
        raise InvalidInputError(
            f"load_pipeline: got {len(stage_models)} models, {len(stages)} stage descriptions and "
            f"{len(devices)} devices; expected one of each per stage"
        )
    sessions: list[Session] = []
    shared = Observers()
    try:
        for model, dev in zip(stage_models, devices):
            sessions.append(Session(model, config=config.replace(device=dev), observers=shared))
    except BaseException:
        for sess in sessions:
            sess.close()
        raise
    limit = max_inflight or config.max_inflight or default_max_inflight(len(stages), len(stages))
    return Pipeline(
        sessions,
        stages,
        inputs=inputs,
        outputs=outputs,
        queue_size=queue_size,
        max_inflight=limit,
        device=device,
    )
