"""One served model: :class:`ServedModel` (load, predict/infer, unload, v2 metadata).

Requests flow into the model's :class:`~nnperf.runtime.aio.AsyncRunner` (with a
:class:`~nnperf.runtime.batching.DynamicBatcher` underneath when ``max_batch_size`` > 1), so the
event loop never waits on the engine. Each model admits at most ``max_inflight`` requests; the
next one is refused at once with :class:`~nnperf.errors.OverloadedError` (HTTP 503) instead of
joining an unbounded queue. Usable on its own from Python, as furiosa-server's ``NPUModel`` is::

    model = ServedModel(ModelSettings(name="mnist", model="zoo:mnist", max_batch_size=8))
    await model.load()
    logits, = await model.predict(x)
    await model.unload()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from nnperf.engines.registry import get_engine
from nnperf.errors import InvalidInputError, NotFoundError, OverloadedError, UnsupportedError
from nnperf.protocol import InferenceRequest, InferenceResponse, Tensor, datatype_of
from nnperf.runtime.aio import AsyncRunner
from nnperf.runtime.feeds import Inputs
from nnperf.serve.metrics import ServeMetrics
from nnperf.serve.settings import ModelSettings
from nnperf.types import TensorDesc

__all__ = ["ServedModel"]

log = logging.getLogger("nnperf.serve")


def _datatype_or_none(dtype: str) -> str:
    try:
        return datatype_of(dtype)
    except (UnsupportedError, TypeError):  # e.g. bfloat16: no request can feed it
        return "none"


class ServedModel:
    """One model behind the data plane: ``load``, ``predict``/``infer``, ``unload``.

    Usable on its own from asyncio code (furiosa-server's ``NPUModel``); all methods must be
    called from one event loop.
    """

    def __init__(self, settings: ModelSettings, *, metrics: ServeMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self._runner: AsyncRunner | None = None
        self._inflight = 0
        self.admitted = 0
        self.answered = 0
        self._draining = False
        self._idle: asyncio.Event | None = None
        self._output_index: dict[str, int] = {}
        self._datatypes: dict[str, str] = {}

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Served name."""
        return self.settings.name

    @property
    def version(self) -> str:
        """Served version."""
        return self.settings.version

    @property
    def ready(self) -> bool:
        """Loaded and not draining."""
        return self._runner is not None and not self._draining

    @property
    def inflight(self) -> int:
        """Requests admitted and not yet answered."""
        return self._inflight

    @property
    def runner(self) -> AsyncRunner:
        """The AsyncRunner (raises NotFoundError when not loaded)."""
        if self._runner is None:
            raise NotFoundError(f"model {self.name!r} is not loaded; call load() first")
        return self._runner

    @property
    def inputs(self) -> tuple[TensorDesc, ...]:
        """Model inputs."""
        return self.runner.inputs

    @property
    def outputs(self) -> tuple[TensorDesc, ...]:
        """Model outputs."""
        return self.runner.outputs

    @property
    def datatypes(self) -> dict[str, str]:
        """The v2 datatype of each input, by name (what a request must send; empty until
        loaded). An input whose dtype has no v2 name maps to ``"none"``, which no request
        matches."""
        return self._datatypes

    async def load(self) -> None:
        """Load the model on its device (in a thread; the loop keeps serving). Idempotent.

        Raises:
            ModelLoadError, NotFoundError, InvalidInputError, UnsupportedError.
        """
        if self._runner is not None:
            return
        s = self.settings
        self._runner = await asyncio.to_thread(self._build)
        self._output_index = {o.name: i for i, o in enumerate(self._runner.outputs)}
        self._datatypes = {d.name: _datatype_or_none(d.dtype) for d in self._runner.inputs}
        self._draining = False
        log.info(
            "loaded model %s version %s (max_batch_size=%d, max_delay_ms=%g, max_inflight=%d)",
            s.name,
            s.version,
            s.max_batch_size,
            s.max_delay_ms,
            s.max_inflight,
        )

    def _build(self) -> AsyncRunner:
        """The runtime behind this model: the settings' merge batching, else the config's
        runtime technique (a tuned RunConfig: merge batching or a pipeline)."""
        s = self.settings
        cfg = s.config
        if cfg.split_batch is not None:
            raise UnsupportedError(
                f"model {s.name!r}: the config splits each query into chunks of "
                f"{cfg.split_batch} rows (split batching), which nnperf serve does not do; serve "
                "a config without split_batch (clients send the rows they have)"
            )
        from nnperf.deploy import create_executor  # a pipeline pulls in graph tooling

        if s.max_batch_size > 1:  # --max-batch-size wins over the config's technique
            cfg = cfg.replace(
                pipeline_stages=None, max_batch_size=s.max_batch_size, max_delay_ms=s.max_delay_ms
            )
        elif cfg.max_batch_size is not None and cfg.max_delay_ms is None:
            cfg = cfg.replace(max_delay_ms=s.max_delay_ms)
        return AsyncRunner(backend=create_executor(s.model, config=cfg))

    async def unload(self, *, timeout_s: float | None = 30.0) -> None:
        """Refuse new requests, wait up to ``timeout_s`` for admitted ones, release the model."""
        if self._runner is None:
            return
        self._draining = True
        if self._inflight:
            self._idle = self._idle or asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout_s)
            except asyncio.TimeoutError:
                log.warning(
                    "model %s: %d request(s) still running after %s s; closing anyway",
                    self.name,
                    self._inflight,
                    timeout_s,
                )
        runner, self._runner = self._runner, None
        await runner.close()

    async def __aenter__(self) -> ServedModel:
        await self.load()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.unload()

    # -- inference --------------------------------------------------------------------------------
    def _admit(self) -> None:
        if self._runner is None or self._draining:
            raise OverloadedError(
                f"model {self.name!r} is "
                + ("shutting down" if self._draining else "not loaded")
                + "; retry on another replica or later"
            )
        if self._inflight >= self.settings.max_inflight:
            if self.metrics is not None:
                self.metrics.observe_failure(self.name, "OverloadedError")
            raise OverloadedError(
                f"model {self.name!r} has {self._inflight} requests in flight (max_inflight="
                f"{self.settings.max_inflight}); retry after a short wait, or raise "
                "--max-inflight"
            )
        self._inflight += 1
        self.admitted += 1
        if self.metrics is not None:
            self.metrics.enter(self.name)

    def _leave(self) -> None:
        self._inflight -= 1
        self.answered += 1
        if self.metrics is not None:
            self.metrics.leave(self.name)
        if self._inflight == 0 and self._idle is not None:
            self._idle.set()

    @contextlib.contextmanager
    def admission(self) -> Iterator[None]:
        """Hold one of the model's ``max_inflight`` places for a request, from before its body is
        read (a transport's use: the next request is refused before it costs memory) until it is
        answered. A failure inside is counted in the metrics by its class name.

        Raises:
            OverloadedError: ``max_inflight`` requests are already admitted, or not loaded or
                draining.
        """
        self._admit()
        try:
            yield
        except BaseException as exc:
            if self.metrics is not None:
                self.metrics.observe_failure(self.name, type(exc).__name__)
            raise
        finally:
            self._leave()

    async def predict(self, inputs: Inputs, *, admitted: bool = False) -> list[np.ndarray]:
        """Run one request and return every output in model order.

        Args:
            inputs: one array (single-input models), a list in input order, or a dict by name.
            admitted: the caller holds :meth:`admission` for this request already.

        Raises:
            OverloadedError: ``max_inflight`` requests are already admitted, or draining.
            InvalidInputError: a wrong name, dtype or shape (nothing was queued).
            EngineError: the engine failed.
        """
        if not admitted:
            with self.admission():
                return await self._run(inputs)
        return await self._run(inputs)

    async def _run(self, inputs: Inputs) -> list[np.ndarray]:
        start = time.perf_counter_ns()
        outputs = await self.runner.run(inputs)
        if self.metrics is not None:
            self.metrics.observe_ok(self.name, (time.perf_counter_ns() - start) / 1e9)
        return outputs

    async def infer(
        self, request: InferenceRequest, *, admitted: bool = False
    ) -> InferenceResponse:
        """Run a decoded v2 request and build its response.

        Args:
            request: the decoded request.
            admitted: the caller holds :meth:`admission` for this request already.

        Raises:
            InvalidInputError: unknown requested outputs, or a bad feed.
            OverloadedError, EngineError: as :meth:`predict`.
        """
        if not admitted:
            with self.admission():
                return await self._infer(request)
        return await self._infer(request)

    async def _infer(self, request: InferenceRequest) -> InferenceResponse:
        wanted = request.outputs
        if wanted is not None:
            unknown = [o.name for o in wanted if o.name not in self._output_index]
            if unknown:
                raise InvalidInputError(
                    f"model {self.name!r} has no output(s) {unknown}; expected names among "
                    f"{list(self._output_index)}"
                )
        outputs = await self._run(request.feeds())
        descs = self.runner.outputs
        if wanted is None:
            tensors = tuple(Tensor(d.name, a) for d, a in zip(descs, outputs))
            binary = frozenset(d.name for d in descs) if request.binary_output else frozenset()
        else:
            tensors = tuple(Tensor(o.name, outputs[self._output_index[o.name]]) for o in wanted)
            binary = frozenset(o.name for o in wanted if o.binary)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=tensors,
            id=request.id,
            binary_outputs=binary,
            allow_nan=request.allow_nan,
        )

    # -- metadata ---------------------------------------------------------------------------------
    @property
    def engine_name(self) -> str:
        """The engine serving this model (``onnxruntime``, ``openvino``)."""
        return self.settings.config.engine

    @property
    def platform(self) -> str:
        """The v2 ``platform`` string, from the engine (``onnxruntime_onnx``, ``openvino_onnx``)."""
        return get_engine(self.engine_name).platform

    def metadata(self) -> dict[str, Any]:
        """The v2 model metadata object."""

        def desc(d: TensorDesc) -> dict[str, Any]:
            return {
                "name": d.name,
                "datatype": datatype_of(d.dtype),
                "shape": [dim if isinstance(dim, int) else -1 for dim in d.shape],
            }

        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": [desc(d) for d in self.inputs],
            "outputs": [desc(d) for d in self.outputs],
        }

    def model_config(self) -> dict[str, Any]:
        """A Triton-style model configuration (``GET /v2/models/{name}/config``)."""
        s = self.settings

        def entry(d: TensorDesc) -> dict[str, Any]:
            return {
                "name": d.name,
                "data_type": "TYPE_" + datatype_of(d.dtype).replace("BYTES", "STRING"),
                "dims": [dim if isinstance(dim, int) else -1 for dim in d.shape],
            }

        cfg: dict[str, Any] = {
            "name": self.name,
            "platform": self.platform,
            "backend": self.engine_name,
            "max_batch_size": 0,
            "input": [entry(d) for d in self.inputs],
            "output": [entry(d) for d in self.outputs],
            "parameters": {"nnperf": {"string_value": json.dumps(s.to_dict())}},
        }
        if s.max_batch_size > 1:
            cfg["dynamic_batching"] = {
                "max_queue_delay_microseconds": int(s.max_delay_ms * 1000),
                "max_batch_size": s.max_batch_size,
            }
        return cfg
