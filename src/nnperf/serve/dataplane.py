"""The serving data plane: models, a repository, and inference, with no transport in sight.

The HTTP adapter (:mod:`nnperf.serve.http`) and the Ray Serve deployment
(:mod:`nnperf.serve.raysvc`) both sit on :class:`DataPlane`; a :class:`ServedModel` can also be
used directly from Python, as furiosa-server's ``NPUModel`` is::

    model = ServedModel(ModelSettings(name="mnist", model="zoo:mnist", max_batch_size=8))
    await model.load()
    logits, = await model.predict(x)
    await model.unload()

Requests flow into the model's :class:`~nnperf.runtime.aio.AsyncRunner` (with a
:class:`~nnperf.runtime.batching.DynamicBatcher` underneath when ``max_batch_size`` > 1), so the
event loop never waits on the engine. Each model admits at most ``max_inflight`` requests; the
next one is refused at once with :class:`~nnperf.errors.OverloadedError` (HTTP 503) instead of
joining an unbounded queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnperf.engines.config import RunConfig
from nnperf.engines.registry import get_engine
from nnperf.errors import (
    InvalidInputError,
    ModelLoadError,
    NotFoundError,
    OverloadedError,
)
from nnperf.protocol import (
    InferenceRequest,
    InferenceResponse,
    Tensor,
    datatype_of,
)
from nnperf.runtime.aio import AsyncRunner
from nnperf.runtime.feeds import Inputs
from nnperf.runtime.observers import RunEvent
from nnperf.serve.metrics import ServeMetrics
from nnperf.types import TensorDesc

__all__ = [
    "DEFAULT_MAX_INFLIGHT",
    "DataPlane",
    "ModelRepository",
    "ModelSettings",
    "SERVE_CONFIG_SCHEMA",
    "ServedModel",
    "load_serve_config",
]

log = logging.getLogger("nnperf.serve")

DEFAULT_MAX_INFLIGHT = 128
"""Requests one model admits at once before answering 503 (default of ``max_inflight``)."""

SERVE_CONFIG_SCHEMA = "nnperf.serve/1"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a safe model name (letters, digits, ``_ . -``; no path parts).

    Raises:
        InvalidInputError: anything else (slashes, ``..``, empty, too long).
    """
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise InvalidInputError(
            f"model name {name!r} is not allowed; expected 1-128 letters, digits, '_', '.' or '-' "
            "starting with a letter or digit (no path separators or '..')"
        )
    return name


@dataclass(frozen=True)
class ModelSettings:
    """How one model is served.

    Attributes:
        name: the served name (``/v2/models/{name}``).
        model: the model source: a path or ``zoo:NAME`` (bytes or a ModelProto from Python).
        version: the version string served (default ``"1"``).
        config: the RunConfig (device, workers, threads, graph level...).
        max_batch_size: merge concurrent requests into batches of up to this many rows
            (dynamic batching); 1, the default, runs each request on its own.
        max_delay_ms: with merging, the longest a request waits for others, in ms (default 1.0).
        max_inflight: requests admitted at once; the next gets 503 (default 128).
    """

    name: str
    model: Any
    version: str = "1"
    config: RunConfig = field(default_factory=RunConfig)
    max_batch_size: int = 1
    max_delay_ms: float = 1.0
    max_inflight: int = DEFAULT_MAX_INFLIGHT

    def __post_init__(self) -> None:
        check_model_name(self.name)
        if not isinstance(self.version, str) or not _NAME_RE.match(self.version):
            raise InvalidInputError(
                f"version: got {self.version!r}, expected a short string such as '1'"
            )
        for attr in ("max_batch_size", "max_inflight"):
            v = getattr(self, attr)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidInputError(f"{attr}: got {v!r}, expected a positive integer")
        if not isinstance(self.max_delay_ms, (int, float)) or self.max_delay_ms < 0:
            raise InvalidInputError(
                f"max_delay_ms: got {self.max_delay_ms!r}, expected a number >= 0 (milliseconds)"
            )
        if not isinstance(self.config, RunConfig):
            raise InvalidInputError(
                f"config: got {type(self.config).__name__}, expected a RunConfig"
            )

    def replace(self, **changes: Any) -> ModelSettings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``model`` must be a path or ``zoo:`` name)."""
        return {
            "name": self.name,
            "model": self.model
            if isinstance(self.model, str)
            else f"<{type(self.model).__name__}>",
            "version": self.version,
            "config": self.config.to_dict(),
            "max_batch_size": self.max_batch_size,
            "max_delay_ms": self.max_delay_ms,
            "max_inflight": self.max_inflight,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, base: ModelSettings | None = None
    ) -> ModelSettings:
        """Build from :meth:`to_dict`'s form; missing keys come from ``base``.

        Raises:
            InvalidInputError: unknown keys or bad values.
        """
        if not isinstance(data, Mapping):
            raise InvalidInputError(
                f"model settings: got {type(data).__name__}, expected a JSON object"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidInputError(
                f"model settings: unknown key(s) {unknown}; expected among {sorted(names)}"
            )
        body = dict(data)
        if "config" in body:
            cfg = body["config"]
            body["config"] = cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(cfg)
        if base is not None:
            return dataclasses.replace(base, **body)
        if "name" not in body or "model" not in body:
            raise InvalidInputError("model settings: 'name' and 'model' are required")
        return cls(**body)


def load_serve_config(path: str | Path, *, base: ModelSettings) -> list[ModelSettings] | RunConfig:
    """Read a serve config file.

    Two forms are accepted: a RunConfig file (``nnperf tune`` writes one), applied to every model;
    or ``{"schema": "nnperf.serve/1", "defaults": {...}, "models": [{"name", "model", ...}]}``
    with per-model settings (``defaults`` fills what a model leaves out).

    Args:
        path: the JSON file.
        base: settings the file's values override (from the command-line flags).

    Raises:
        InvalidInputError: a missing file, bad JSON or bad settings.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InvalidInputError(f"config file {str(p)!r} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"config file {str(p)!r} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and data.get("schema") == SERVE_CONFIG_SCHEMA:
        defaults = ModelSettings.from_dict(data.get("defaults") or {}, base=base)
        models = data.get("models") or []
        if not isinstance(models, list):
            raise InvalidInputError(f"config file {str(p)!r}: 'models' must be a list")
        return [ModelSettings.from_dict(m, base=defaults) for m in models]
    return RunConfig.load(p)


class _RunStats:
    """One observer per data plane, attached to each served model's runtime: batch sizes and
    engine times of its models' runs."""

    def __init__(self, metrics: ServeMetrics) -> None:
        self.metrics = metrics
        self.models: dict[int, str] = {}
        self.runs: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def on_run(self, event: RunEvent) -> None:
        name = self.models.get(event.session_id)
        if name is None or event.error is not None:
            return
        self.metrics.observe_run(
            name,
            event.batch,
            queue_s=max(0, event.engine_start_ns - event.submit_ns) / 1e9,
            compute_s=event.engine_ns / 1e9,
        )


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
        s = self.settings
        return AsyncRunner(
            s.model,
            config=s.config,
            max_batch_size=s.max_batch_size if s.max_batch_size > 1 else None,
            max_delay_ms=s.max_delay_ms,
        )

    def session_id(self) -> int | None:
        """``id`` of the runtime object whose RunEvents belong to this model."""
        backend: Any = self.runner.backend
        for _ in range(3):
            session = getattr(backend, "session", None)
            if session is not None:
                return id(session)
            backend = getattr(backend, "runner", None)
            if backend is None:
                return None
        return None

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

    async def predict(self, inputs: Inputs) -> list[np.ndarray]:
        """Run one request and return every output in model order.

        Args:
            inputs: one array (single-input models), a list in input order, or a dict by name.

        Raises:
            OverloadedError: ``max_inflight`` requests are already admitted, or draining.
            InvalidInputError: a wrong name, dtype or shape (nothing was queued).
            EngineError: the engine failed.
        """
        self._admit()
        start = time.perf_counter_ns()
        try:
            outputs = await self.runner.run(inputs)
        except BaseException as exc:
            if self.metrics is not None:
                self.metrics.observe_failure(self.name, type(exc).__name__)
            raise
        finally:
            self._leave()
        if self.metrics is not None:
            self.metrics.observe_ok(self.name, (time.perf_counter_ns() - start) / 1e9)
        return outputs

    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        """Run a decoded v2 request and build its response.

        Raises:
            InvalidInputError: unknown requested outputs, or a bad feed.
            OverloadedError, EngineError: as :meth:`predict`.
        """
        wanted = request.outputs
        if wanted is not None:
            unknown = [o.name for o in wanted if o.name not in self._output_index]
            if unknown:
                raise InvalidInputError(
                    f"model {self.name!r} has no output(s) {unknown}; expected names among "
                    f"{list(self._output_index)}"
                )
        outputs = await self.predict(request.feeds())
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


class ModelRepository:
    """A folder of models; names cannot reach outside it.

    A model ``NAME`` is, in this order of lookup, ``NAME/config.json`` (model settings whose
    ``model`` is a path relative to ``NAME/`` or ``zoo:...``), ``NAME/model.onnx``,
    ``NAME/<version>/model.onnx`` (Triton layout, highest numeric version) or ``NAME.onnx``.
    """

    def __init__(self, root: str | Path) -> None:
        p = Path(root)
        if not p.is_dir():
            raise InvalidInputError(
                f"model repository {str(p)!r} is not a folder; expected a folder of models"
            )
        self.root = p.resolve()

    def _inside(self, path: Path, name: str) -> Path:
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise NotFoundError(
                f"model {name!r} resolves outside the model repository; refusing to load it"
            )
        return resolved

    def names(self) -> list[str]:
        """Names of the models found in the repository, sorted."""
        found = set()
        for entry in self.root.iterdir():
            name = entry.name[:-5] if entry.name.endswith(".onnx") else entry.name
            if not _NAME_RE.match(name) or ".." in name:
                continue
            try:
                self.locate(name)
            except (NotFoundError, InvalidInputError):
                continue
            found.add(name)
        return sorted(found)

    def locate(self, name: str) -> tuple[Path, dict[str, Any]]:
        """The model file of ``name`` and its settings from ``config.json`` (or ``{}``).

        Raises:
            InvalidInputError: an unsafe name.
            NotFoundError: no such model, or it resolves outside the repository.
        """
        check_model_name(name)
        folder = self.root / name
        if folder.is_dir():
            folder = self._inside(folder, name)
            settings: dict[str, Any] = {}
            cfg = folder / "config.json"
            if cfg.is_file():
                try:
                    settings = json.loads(cfg.read_text())
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise ModelLoadError(f"{cfg}: not valid JSON: {exc}") from None
                if not isinstance(settings, dict):
                    raise ModelLoadError(f"{cfg}: expected a JSON object of model settings")
                src = settings.get("model")
                if isinstance(src, str) and src.startswith("zoo:"):
                    return Path(src), settings
                if isinstance(src, str):
                    return self._inside(folder / src, name), settings
            direct = folder / "model.onnx"
            if direct.is_file():
                return self._inside(direct, name), settings
            versions = sorted(
                (int(v.name), v) for v in folder.iterdir() if v.is_dir() and v.name.isdigit()
            )
            for _, v in reversed(versions):
                if (v / "model.onnx").is_file():
                    return self._inside(v / "model.onnx", name), settings
        single = self.root / f"{name}.onnx"
        if single.is_file():
            return self._inside(single, name), {}
        raise NotFoundError(
            f"model {name!r} is not in the repository {str(self.root)!r}; expected "
            f"{name}/model.onnx, {name}/<version>/model.onnx or {name}.onnx (available: "
            f"{self.names()})"
        )

    def settings(self, name: str, *, base: ModelSettings) -> ModelSettings:
        """The settings to serve ``name`` with: ``base`` overridden by its ``config.json``."""
        path, extra = self.locate(name)
        extra = {k: v for k, v in extra.items() if k != "model"}
        extra.pop("name", None)
        source = str(path)
        return ModelSettings.from_dict(
            {**extra, "name": name, "model": source}, base=base.replace(name=name, model=source)
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
    """

    def __init__(
        self,
        models: list[ModelSettings] | tuple[ModelSettings, ...] = (),
        *,
        repository: ModelRepository | str | Path | None = None,
        defaults: ModelSettings | None = None,
        metrics: ServeMetrics | None = None,
        server_name: str = "nnperf",
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
        self._stats = _RunStats(self.metrics)
        self._started = False
        self._draining = False
        self._lock: asyncio.Lock | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the configured models and every repository model. Idempotent."""
        if self._started:
            return
        self._started = True
        for settings in self.pending:
            await self.add_model(settings)
        if self.repository is not None:
            for name in self.repository.names():
                if name not in self.models:
                    await self.load_model(name)

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
        sid = model.session_id()
        if sid is not None:
            self._stats.models[sid] = settings.name
        model.runner.observers.add(self._stats)
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
        return await self.add_model(self.repository.settings(name, base=self.defaults))

    async def unload_model(self, name: str) -> None:
        """Stop serving ``name`` after its admitted requests finish.

        Raises:
            NotFoundError: not served.
        """
        model = self.get(name)
        del self.models[name]
        self._stats.models = {k: v for k, v in self._stats.models.items() if v != name}
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
        """Started, not draining, and every model ready."""
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
            raise NotFoundError(
                f"model {name!r} is not served here; expected one of {sorted(self.models)}"
            )
        if version not in (None, "", model.version):
            raise NotFoundError(
                f"model {name!r} has no version {version!r}; expected {model.version!r}"
            )
        return model

    def repository_index(self) -> list[dict[str, Any]]:
        """Triton's repository index: every known model with its state."""
        names = set(self.models)
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
