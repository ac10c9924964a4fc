"""The serving data plane: every served model, the repository, health and inference, with no
transport in sight.

The HTTP adapter (:mod:`nnperf.serve.http`) and the Ray Serve deployment
(:mod:`nnperf.serve.raysvc`) both sit on :class:`DataPlane`. The pieces it is made of live in
their own modules: :mod:`.settings` (:class:`ModelSettings`), :mod:`.repository`
(:class:`ModelRepository`) and :mod:`.model` (:class:`ServedModel`); their names are importable
from here too.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from nnperf.errors import InvalidInputError, NnperfError, NotFoundError, OverloadedError
from nnperf.protocol import InferenceRequest, InferenceResponse
from nnperf.runtime.observers import RunEvent
from nnperf.serve.metrics import ServeMetrics
from nnperf.serve.model import ServedModel
from nnperf.serve.repository import ModelRepository
from nnperf.serve.settings import (
    DEFAULT_MAX_INFLIGHT,
    SERVE_CONFIG_SCHEMA,
    ModelSettings,
    check_model_name,
    load_serve_config,
)

__all__ = [
    "DEFAULT_MAX_INFLIGHT",
    "DataPlane",
    "ModelRepository",
    "ModelSettings",
    "SERVE_CONFIG_SCHEMA",
    "ServedModel",
    "check_model_name",
    "load_serve_config",
]

log = logging.getLogger("nnperf.serve")


class _ModelRuns:
    """The run observer of one served model (attached to its runtime's own observers): batch
    sizes, queue and engine times, failed runs."""

    def __init__(self, metrics: ServeMetrics, name: str) -> None:
        self.metrics = metrics
        self.name = name

    def on_run(self, event: RunEvent) -> None:
        if event.error is not None:
            self.metrics.observe_run_failure(self.name)
            return
        self.metrics.observe_run(
            self.name,
            event.batch,
            queue_s=max(0, event.engine_start_ns - event.submit_ns) / 1e9,
            compute_s=event.engine_ns / 1e9,
        )


class DataPlane:
    """Every served model, the repository, health and metrics; what a transport calls.

    Args:
        models: settings of the models to load at :meth:`start`.
        repository: a model repository; its models are loaded at start too, and
            :meth:`load_model` can load more by name.
        defaults: settings for repository models (``name``/``model`` are replaced).
        metrics: the Prometheus instruments (default: a fresh registry).
        server_name: reported by ``GET /v2``.
        strict: a repository model that fails to load stops :meth:`start` (default false: it
            is reported, listed in the repository index with the reason, and skipped while the
            others serve).
    """

    def __init__(
        self,
        models: list[ModelSettings] | tuple[ModelSettings, ...] = (),
        *,
        repository: ModelRepository | str | Path | None = None,
        defaults: ModelSettings | None = None,
        metrics: ServeMetrics | None = None,
        server_name: str = "nnperf",
        strict: bool = False,
    ) -> None:
        names = [m.name for m in models]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise InvalidInputError(
                f"model name(s) {dup} given more than once; serve each name once (name=PATH)"
            )
        self.pending = list(models)
        if repository is not None and not isinstance(repository, ModelRepository):
            repository = ModelRepository(repository)
        self.repository = repository
        self.defaults = defaults or ModelSettings(name="default", model="")
        self.metrics = metrics or ServeMetrics()
        self.server_name = server_name
        self.models: dict[str, ServedModel] = {}
        self.strict = strict
        self.failed: dict[str, str] = {}
        """Repository models that failed to load: name -> the reason."""
        self._started = False
        self._starting: asyncio.Future[None] | None = None
        self._draining = False

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the configured models and every repository model. Idempotent, and safe to call
        concurrently: callers while loading wait for the same load (a Ray replica starts on its
        first requests, which arrive together); readiness turns true once it is done.

        Raises:
            ModelLoadError, NotFoundError, InvalidInputError, UnsupportedError: a configured
                model failed to load (or a repository model, with ``strict``).
        """
        if self._started:
            return
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)
        self._started = True

    async def _start(self) -> None:
        for settings in self.pending:
            await self.add_model(settings)
        if self.repository is not None:
            for name in self.repository.names():
                if name in self.models:
                    continue
                try:
                    await self.load_model(name)
                except NnperfError as exc:
                    if self.strict:
                        raise
                    self.failed[name] = str(exc)
                    log.warning(
                        "model %s in the repository failed to load and is not served (the others "
                        "are; --strict makes this fatal): %s",
                        name,
                        exc,
                    )

    async def add_model(self, settings: ModelSettings) -> ServedModel:
        """Load one model and serve it under ``settings.name``.

        Raises:
            InvalidInputError: the name is taken.
            ModelLoadError, NotFoundError, UnsupportedError: loading failed.
        """
        if settings.name in self.models:
            raise InvalidInputError(f"model {settings.name!r} is already served")
        model = ServedModel(settings, metrics=self.metrics)
        await model.load()
        self.models[settings.name] = model
        # The one place the data plane watches the runtime: this model's own observers.
        model.runner.observers.add(_ModelRuns(self.metrics, settings.name))
        return model

    async def load_model(self, name: str) -> ServedModel:
        """Load ``name`` from the repository (Triton's repository ``load``). Idempotent.

        Raises:
            InvalidInputError: an unsafe name. NotFoundError: no repository or no such model.
        """
        check_model_name(name)
        if name in self.models:
            return self.models[name]
        if self.repository is None:
            raise NotFoundError(
                f"model {name!r}: this server has no model repository; start it with "
                "--model-repository DIR"
            )
        model = await self.add_model(self.repository.settings(name, base=self.defaults))
        self.failed.pop(name, None)
        return model

    async def unload_model(self, name: str) -> None:
        """Stop serving ``name`` after its admitted requests finish.

        Raises:
            NotFoundError: not served.
        """
        model = self.get(name)
        del self.models[name]
        await model.unload()

    async def close(self, *, timeout_s: float | None = 30.0) -> None:
        """Refuse new requests, finish admitted ones (up to ``timeout_s``), unload every model."""
        self._draining = True
        models = list(self.models.values())
        for m in models:
            m._draining = True
        await asyncio.gather(*(m.unload(timeout_s=timeout_s) for m in models))
        for m in models:
            log.info(
                "model %s drained: %d request(s) admitted, %d answered",
                m.name,
                m.admitted,
                m.answered,
            )
        self.models.clear()

    @property
    def draining(self) -> bool:
        """Shutting down: new requests are refused with 503."""
        return self._draining

    # -- health and metadata ----------------------------------------------------------------------
    def live(self) -> bool:
        """The process is up."""
        return True

    def ready(self) -> bool:
        """Started, not draining, and every loaded model ready (a repository model that failed
        to load is reported by its own readiness and the repository index)."""
        return self._started and not self._draining and all(m.ready for m in self.models.values())

    def server_metadata(self) -> dict[str, Any]:
        """The v2 server metadata object (``GET /v2``)."""
        from nnperf.version import __version__

        return {
            "name": self.server_name,
            "version": __version__,
            "extensions": ["binary_tensor_data", "model_repository", "model_configuration"],
        }

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The served model ``name`` (and ``version`` when given).

        Raises:
            NotFoundError: unknown name or version.
        """
        model = self.models.get(name)
        if model is None:
            reason = self.failed.get(name)
            if reason is not None:
                raise NotFoundError(
                    f"model {name!r} failed to load and is not served: {reason}; fix it, then "
                    f"POST /v2/repository/models/{name}/load"
                )
            raise NotFoundError(
                f"model {name!r} is not served here; expected one of {sorted(self.models)}"
            )
        if version not in (None, "", model.version):
            raise NotFoundError(
                f"model {name!r} has no version {version!r}; expected {model.version!r}"
            )
        return model

    def repository_index(self) -> list[dict[str, Any]]:
        """Triton's repository index: every known model with its state (and, for one that
        failed to load, the reason)."""
        names = set(self.models) | set(self.failed)
        if self.repository is not None:
            names.update(self.repository.names())
        out = []
        for n in sorted(names):
            m = self.models.get(n)
            entry: dict[str, Any] = {
                "name": n,
                "state": "READY" if m and m.ready else "UNAVAILABLE",
            }
            if m is not None:
                entry["version"] = m.version
            elif n in self.failed:
                entry["reason"] = self.failed[n]
            out.append(entry)
        return out

    # -- inference --------------------------------------------------------------------------------
    async def infer(
        self, name: str, request: InferenceRequest, *, version: str | None = None
    ) -> InferenceResponse:
        """Run ``request`` on model ``name``.

        Raises:
            NotFoundError, InvalidInputError, OverloadedError, EngineError.
        """
        if self._draining:
            raise OverloadedError("server is shutting down; retry on another replica")
        return await self.get(name, version).infer(request)
