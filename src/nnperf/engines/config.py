"""``RunConfig``: the one serialisable description of how to run a model.

``tune`` writes it; ``bench --config``, ``nnperf.create(config=...)`` and ``serve --config`` read it.
Its fields are engine-neutral (engine, device, workers, batch size, precision, input dims), plus
``options``: the chosen engine's own options type (:class:`~nnperf.engines.onnxruntime_options.
OrtOptions`, :class:`~nnperf.engines.openvino_options.OpenVINOOptions`), so nothing above
``engines/`` names an engine's vocabulary.

Schema ``nnperf.runconfig/2``. Files of schema 1 (onnxruntime's options at the top level, written
by nnperf before engines became a seam) still load: their engine is onnxruntime.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnperf.device import parse_device
from nnperf.engines.base import EngineOptions
from nnperf.engines.registry import DEFAULT_ENGINE, options_type
from nnperf.errors import InvalidInputError

__all__ = ["CONFIG_SCHEMA", "PRECISIONS", "RunConfig"]

CONFIG_SCHEMA = "nnperf.runconfig/2"
_OLD_SCHEMA = "nnperf.runconfig/1"
PRECISIONS = ("f32", "bf16", "f16")
"""Inference precisions a config may ask for (each engine says which it offers)."""

# Schema 1 kept onnxruntime's options beside the neutral fields.
_V1_ORT_FIELDS = (
    "graph_level",
    "prepack",
    "mem_pattern",
    "execution_mode",
    "inter_op_threads",
    "spinning",
    "deterministic",
    "providers",
    "provider_options",
    "optimized_model_path",
    "cuda_graph",
)


def _positive_or_none(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidInputError(f"{name}: got {value!r}, expected a positive integer or None")


@dataclass(frozen=True)
class RunConfig:
    """How to run a model.

    Attributes:
        engine: the engine (``onnxruntime`` or ``openvino``; see
            :func:`nnperf.engines.registry.engine_names`); empty: the one ``options`` belong to,
            else ``onnxruntime``.
        device: device string (see :mod:`nnperf.device`); ``None``: ``$NNPERF_DEVICES``, else
            ``cpu``.
        workers: host threads feeding the instances (Runner); ``None``: one per instance.
        batch_size: fix the model's free batch dimension to this size; ``None``: keep it free.
        max_inflight: bound on queries inside the runtime; ``None``: instances + 3.
        precision: inference precision: ``f32`` (default: float ops as the model says, numbers
            match the reference), ``bf16`` or ``f16`` where the engine offers them on the device
            (OpenVINO on CPUs with AMX-BF16 / AVX-512-FP16). Never chosen silently.
        dims: sizes of named symbolic dimensions (``{"seq": 128}``): onnxruntime's free-dimension
            override; OpenVINO reshapes to them.
        shapes: whole input shapes by input name (``{"images": (1, 3, 640, 640)}``).
        options: the engine's own options (a mapping is converted to the engine's type);
            ``None``: its defaults.
        max_batch_size: merge batching: concurrent queries merged into batches of up to this
            many rows (``DynamicBatcher``; ``nnperf bench``/``serve`` apply it); ``None``: none.
        max_delay_ms: with ``max_batch_size``: the longest a query waits for others (ms;
            ``None``: 1.0).
        pipeline_stages: the model cut into this many stages, one instance each
            (``create_pipeline``); ``None``: no pipeline.
        split_batch: split batching (AWS Neuron's dynamic batching): each query of
            ``batch_size`` rows runs as chunks of this many rows across the instances, which are
            built for the chunk; ``None``: no split.

    At most one of the runtime techniques (merge, pipeline, split) is set: each reshapes how
    queries reach the engine, and ``nnperf tune`` measures them one against another.
    """

    engine: str = ""
    device: str | None = None
    workers: int | None = None
    batch_size: int | None = None
    max_inflight: int | None = None
    precision: str = "f32"
    dims: Mapping[str, int] = field(default_factory=dict)
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    options: EngineOptions | None = None
    max_batch_size: int | None = None
    max_delay_ms: float | None = None
    pipeline_stages: int | None = None
    split_batch: int | None = None

    def __post_init__(self) -> None:
        opts: Any = self.options
        if not self.engine:
            # Unnamed: typed options name their engine, else the default.
            named = opts.engine if isinstance(opts, EngineOptions) else DEFAULT_ENGINE
            object.__setattr__(self, "engine", named)
        kind = options_type(self.engine)  # validates the engine name
        if opts is None:
            opts = kind()
        elif isinstance(opts, Mapping):
            opts = kind.from_dict(opts)
        elif not isinstance(opts, kind):
            raise InvalidInputError(
                f"options: got {type(opts).__name__} for engine {self.engine!r}; expected "
                f"{kind.__name__} (or a mapping of its fields)"
            )
        object.__setattr__(self, "options", opts)
        for name in ("workers", "batch_size", "max_inflight", "max_batch_size"):
            _positive_or_none(name, getattr(self, name))
        for name in ("pipeline_stages", "split_batch"):
            _positive_or_none(name, getattr(self, name))
        self._check_techniques()
        if self.device is not None:
            object.__setattr__(self, "device", parse_device(self.device).text)
        precision = str(self.precision).lower() if isinstance(self.precision, str) else None
        aliases = {"fp32": "f32", "float32": "f32", "fp16": "f16", "float16": "f16"}
        precision = aliases.get(precision or "", precision)
        if precision not in PRECISIONS:
            raise InvalidInputError(
                f"precision: got {self.precision!r}, expected one of {list(PRECISIONS)}"
            )
        object.__setattr__(self, "precision", precision)
        object.__setattr__(self, "dims", _dims(self.dims))
        object.__setattr__(self, "shapes", _shapes(self.shapes))

    def _check_techniques(self) -> None:
        chosen = [
            n for n in ("max_batch_size", "pipeline_stages", "split_batch") if getattr(self, n)
        ]
        if len(chosen) > 1:
            raise InvalidInputError(
                f"{chosen} are set together; expected at most one runtime technique (merge "
                "batching, a pipeline or split batching): measure them one against another"
            )
        delay = self.max_delay_ms
        if delay is not None:
            if self.max_batch_size is None:
                raise InvalidInputError(
                    f"max_delay_ms={delay!r} applies to merge batching; set max_batch_size too, "
                    "or drop it"
                )
            if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not delay >= 0:
                raise InvalidInputError(f"max_delay_ms: got {delay!r}, expected a number >= 0")
            object.__setattr__(self, "max_delay_ms", float(delay))
        if self.split_batch is not None and self.batch_size is not None:
            if self.batch_size <= self.split_batch:
                raise InvalidInputError(
                    f"split_batch={self.split_batch} with batch_size={self.batch_size}: a split "
                    "cuts each query into smaller chunks; expected split_batch < batch_size"
                )

    @property
    def technique(self) -> str | None:
        """The runtime technique set, in words (``"merge batching (max_batch_size=8)"``), or
        ``None``."""
        if self.max_batch_size is not None:
            delay = "" if self.max_delay_ms is None else f", max_delay_ms={self.max_delay_ms:g}"
            return f"merge batching (max_batch_size={self.max_batch_size}{delay})"
        if self.pipeline_stages is not None:
            return f"a pipeline (pipeline_stages={self.pipeline_stages})"
        if self.split_batch is not None:
            return f"split batching (split_batch={self.split_batch})"
        return None

    def without_technique(self) -> RunConfig:
        """A copy without the runtime technique (what each engine instance loads with)."""
        return dataclasses.replace(
            self, max_batch_size=None, max_delay_ms=None, pipeline_stages=None, split_batch=None
        )

    @property
    def engine_options(self) -> EngineOptions:
        """The engine's options (never ``None`` once built)."""
        assert self.options is not None  # set in __post_init__
        return self.options

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed (validated again).

        Changing ``engine`` without new ``options`` resets the options to the new engine's
        defaults. Engine options are changed with :meth:`with_options`.
        """
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            own = {f.name for f in dataclasses.fields(self.engine_options)}  # type: ignore[arg-type]
            hint = (
                f"; {unknown} are {self.engine} options: use config.with_options(...)"
                if set(unknown) <= own
                else ""
            )
            raise InvalidInputError(
                f"RunConfig has no field(s) {unknown}; expected among {sorted(names)}{hint}"
            )
        if "engine" in changes and "options" not in changes and changes["engine"] != self.engine:
            changes["options"] = None
        return dataclasses.replace(self, **changes)

    def with_options(self, **changes: Any) -> RunConfig:
        """A copy whose engine options have some fields changed, e.g.
        ``config.with_options(graph_level="extended")``."""
        return dataclasses.replace(self, options=self.engine_options.replace(**changes))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with its schema tag."""
        return {
            "schema": CONFIG_SCHEMA,
            "engine": self.engine,
            "device": self.device,
            "workers": self.workers,
            "batch_size": self.batch_size,
            "max_inflight": self.max_inflight,
            "precision": self.precision,
            "dims": dict(self.dims),
            "shapes": {k: list(v) for k, v in self.shapes.items()},
            "options": self.engine_options.to_dict(),
            "max_batch_size": self.max_batch_size,
            "max_delay_ms": self.max_delay_ms,
            "pipeline_stages": self.pipeline_stages,
            "split_batch": self.split_batch,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Build from :meth:`to_dict`'s form (schema 2, or schema 1 written by older nnperf).

        Raises:
            InvalidInputError: not an object, another schema, unknown fields or bad values.
        """
        if not isinstance(data, Mapping):
            raise InvalidInputError(
                f"run config: got {type(data).__name__}, expected a JSON object"
            )
        body = dict(data)
        schema = body.pop("schema", CONFIG_SCHEMA)
        if schema == _OLD_SCHEMA:
            ort = {k: body.pop(k) for k in _V1_ORT_FIELDS if k in body}
            body["engine"] = DEFAULT_ENGINE
            body["options"] = ort
        elif schema != CONFIG_SCHEMA:
            raise InvalidInputError(
                f"run config: schema {schema!r} is not supported; expected {CONFIG_SCHEMA!r} "
                f"(or {_OLD_SCHEMA!r})"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(body) - names)
        if unknown:
            raise InvalidInputError(
                f"run config: unknown field(s) {unknown}; expected among {sorted(names)}"
            )
        if "options" in body and body["options"] is not None:
            engine = body.get("engine", DEFAULT_ENGINE)
            body["options"] = options_type(engine).from_dict(body["options"])
        return cls(**body)

    def to_json(self) -> str:
        """The config as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RunConfig:
        """Read a config file written by :meth:`save` or by ``nnperf tune`` (its ``config`` key).

        Raises:
            InvalidInputError: the file is missing, not JSON, or not a run config.
        """
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise InvalidInputError(
                f"config file {str(p)!r} does not exist; expected a JSON file written by "
                "'nnperf tune' or RunConfig.save()"
            ) from None
        except IsADirectoryError:
            raise InvalidInputError(
                f"config file {str(p)!r} is a directory; expected a JSON file written by "
                "'nnperf tune' or RunConfig.save()"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"config file {str(p)!r} is not valid JSON: {exc}") from None
        if isinstance(data, dict) and "config" in data and isinstance(data["config"], dict):
            data = data["config"]
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the config as JSON."""
        Path(path).write_text(self.to_json() + "\n")

    def describe(self) -> str:
        """A compact label of what differs from the defaults, e.g.
        ``openvino cpu(1)*2 b4 bf16 hint=throughput``."""
        parts = [self.engine, self.device or "cpu"]
        if self.workers is not None:
            parts.append(f"w{self.workers}")
        if self.batch_size is not None:
            parts.append(f"b{self.batch_size}")
        if self.precision != "f32":
            parts.append(self.precision)
        parts.extend(f"{k}={v}" for k, v in sorted(self.dims.items()))
        parts.extend(f"{k}:{'x'.join(map(str, v))}" for k, v in sorted(self.shapes.items()))
        if self.max_batch_size is not None:
            delay = "" if self.max_delay_ms is None else f"/{self.max_delay_ms:g}ms"
            parts.append(f"merge<={self.max_batch_size}{delay}")
        if self.pipeline_stages is not None:
            parts.append(f"pipeline{self.pipeline_stages}")
        if self.split_batch is not None:
            parts.append(f"split{self.split_batch}")
        parts.extend(self.engine_options.changes())
        return " ".join(parts)


def _dims(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"dims: got {type(value).__name__}, expected a mapping of dimension name to size"
        )
    out: dict[str, int] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k:
            raise InvalidInputError(f"dims: got name {k!r}, expected a dimension name")
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InvalidInputError(f"dims[{k!r}]: got {v!r}, expected a positive integer")
        out[k] = v
    return out


def _shapes(value: Any) -> dict[str, tuple[int, ...]]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"shapes: got {type(value).__name__}, expected a mapping of input name to shape"
        )
    out: dict[str, tuple[int, ...]] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k:
            raise InvalidInputError(f"shapes: got name {k!r}, expected an input name")
        if not isinstance(v, (list, tuple)):
            raise InvalidInputError(f"shapes[{k!r}]: got {v!r}, expected a list of sizes")
        dims = tuple(v)
        if not dims or not all(
            not isinstance(d, bool) and isinstance(d, int) and d > 0 for d in dims
        ):
            raise InvalidInputError(
                f"shapes[{k!r}]: got {list(dims)!r}, expected positive integer sizes"
            )
        out[k] = dims
    return out
