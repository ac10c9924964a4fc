"""The executor a RunConfig describes, runtime technique included.

``nnperf tune`` may choose merge batching, a pipeline or split batching; its config file names the
technique beside the engine, device and batch size. :func:`create_executor` builds what the file
says, so a program runs the configuration that was measured::

    with nnperf.create_executor("model.onnx", config="tuned.json") as ex:
        outputs = ex.run(x)                  # or ex.submit(x), nnperf.AsyncRunner(backend=ex)

It sits above the runtime because a pipeline cuts the graph (``nnperf.optimize.partition``).
"""

from __future__ import annotations

from nnperf.engines.config import RunConfig
from nnperf.model import ModelSource
from nnperf.optimize.partition import create_pipeline
from nnperf.runtime.batcher import DEFAULT_MAX_DELAY_MS, DynamicBatcher
from nnperf.runtime.executor import Executor
from nnperf.runtime.runner import Runner
from nnperf.runtime.session import Session, resolve_config
from nnperf.runtime.split import SplitBatcher

__all__ = ["create_executor"]


def create_executor(
    model: ModelSource,
    *,
    config: RunConfig | str | None = None,
    device: str | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    engine: str | None = None,
    precision: str | None = None,
) -> Executor:
    """Load ``model`` and return the executor its config describes.

    ============================  ===============================================================
    the config sets               the executor
    ============================  ===============================================================
    no runtime technique          :class:`~nnperf.runtime.runner.Runner` over every instance
    ``max_batch_size``            :class:`~nnperf.runtime.batching.DynamicBatcher` (merge
                                  batching, ``max_delay_ms``, default 1 ms) over a Runner
    ``pipeline_stages``           :class:`~nnperf.runtime.pipeline.Pipeline`, one stage per
                                  instance (``create_pipeline``)
    ``split_batch``               :class:`~nnperf.runtime.split.SplitBatcher` over a Runner whose
                                  instances are built for chunks of ``split_batch`` rows
    ============================  ===============================================================

    Every one is an :class:`~nnperf.runtime.executor.Executor` (``submit``, ``run``, ``close``;
    ``nnperf.AsyncRunner(backend=...)`` and ``nnperf.queue_over`` take it) and closes what it
    loaded.

    Args:
        model: path, ``zoo:NAME``, bytes or ``onnx.ModelProto``.
        config: a :class:`RunConfig` or a JSON config path (``nnperf tune`` writes one).
        device, workers, batch_size, engine, precision: override the config's.

    Raises:
        InvalidInputError, ModelLoadError, NotFoundError, UnsupportedError,
        MissingDependencyError (as :func:`nnperf.create`).
    """
    cfg = resolve_config(
        config,
        device=device,
        workers=workers,
        batch_size=batch_size,
        engine=engine,
        precision=precision,
    )
    plain = cfg.without_technique()
    if cfg.pipeline_stages is not None:
        return create_pipeline(model, stages=cfg.pipeline_stages, config=plain)
    if cfg.split_batch is not None:
        chunk = cfg.split_batch
        runner = Runner(Session(model, config=plain.replace(batch_size=chunk)), workers=cfg.workers)
        try:
            return SplitBatcher(runner, chunk_size=chunk, close_target=True)
        except BaseException:
            runner.close()
            raise
    runner = Runner(Session(model, config=plain), workers=cfg.workers)
    if cfg.max_batch_size is None:
        return runner
    delay = cfg.max_delay_ms if cfg.max_delay_ms is not None else DEFAULT_MAX_DELAY_MS
    try:
        return DynamicBatcher(runner, max_batch_size=cfg.max_batch_size, max_delay_ms=delay)
    except BaseException:
        runner.close()
        raise
