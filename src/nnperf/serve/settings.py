"""How models and the server are served: :class:`ModelSettings`, :class:`ServerSettings` and the
serve config file.

A :class:`ModelSettings` names one model, its source and its serving knobs (batching, in-flight
limit, RunConfig); :func:`load_serve_config` reads them from a ``nnperf.serve/1`` file. A
:class:`ServerSettings` holds the transport's address and its limits against hostile clients
(body size and byte budget, connections, header and body read timeouts).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError

__all__ = [
    "DEFAULT_MAX_INFLIGHT",
    "ModelSettings",
    "SERVE_CONFIG_SCHEMA",
    "ServerSettings",
    "check_model_name",
    "load_serve_config",
]

MIB = 1024 * 1024

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
        if (
            isinstance(self.max_delay_ms, bool)
            or not isinstance(self.max_delay_ms, (int, float))
            or not math.isfinite(self.max_delay_ms)
            or self.max_delay_ms < 0
        ):
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
    except OSError as exc:  # a folder, no permission...
        raise InvalidInputError(
            f"config file {str(p)!r} cannot be read ({exc.strerror}); expected a JSON file"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise InvalidInputError(f"config file {str(p)!r} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and data.get("schema") == SERVE_CONFIG_SCHEMA:
        defaults = ModelSettings.from_dict(data.get("defaults") or {}, base=base)
        models = data.get("models") or []
        if not isinstance(models, list):
            raise InvalidInputError(f"config file {str(p)!r}: 'models' must be a list")
        return [ModelSettings.from_dict(m, base=defaults) for m in models]
    return RunConfig.load(p)


def _positive_number(owner: str, attr: str, value: Any, unit: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidInputError(
            f"{owner} {attr}: got {value!r}, expected a finite number > 0 ({unit})"
        )


@dataclass(frozen=True)
class ServerSettings:
    """The HTTP server's address and its limits (``nnperf serve`` flags of the same names).

    Every limit protects the server from clients, hostile or broken: memory stays bounded by
    ``body_budget_bytes`` plus each model's ``max_inflight`` requests, and a connection that
    sends nothing useful is closed after ``header_timeout_s`` / ``body_timeout_s``.

    Attributes:
        host: address to bind (default ``127.0.0.1``, loopback only).
        port: TCP port, 1-65535, or 0 for any free port (the bound port is announced; default
            8000).
        token: bearer token required on every route but the health probes (default none).
        max_body_bytes: largest request body; a larger declared ``Content-Length`` is refused
            with 413 before a byte of the body is read (default 64 MiB).
        body_budget_bytes: bytes of request bodies read or held at once, all requests
            together; a request whose body does not fit is refused with 503 before its body is
            read (default 256 MiB; at least ``max_body_bytes``).
        max_connections: open connections at once; the next one is answered 503 and closed
            (default 512).
        header_timeout_s: longest wait for a request's headers, from the connection's start or
            the end of the previous response; then the connection is closed (default 10 s).
        body_timeout_s: longest time to read one request's body once its headers are in;
            then 408 and the connection is closed (default 30 s).
        keep_alive_s: idle keep-alive connections are closed after this long (default 5 s).
        retry_after_s: ``Retry-After`` sent with 503 answers, whole seconds (default 1).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_body_bytes: int = 64 * MIB
    body_budget_bytes: int = 256 * MIB
    max_connections: int = 512
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 5.0
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        owner = "server settings"
        if not isinstance(self.host, str) or not self.host:
            raise InvalidInputError(f"{owner} host: got {self.host!r}, expected an address")
        if (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not 0 <= self.port <= 65535
        ):
            raise InvalidInputError(
                f"{owner} port: got {self.port!r}, expected 1 to 65535 (or 0 for any free port)"
            )
        if self.token is not None and (not isinstance(self.token, str) or not self.token):
            raise InvalidInputError(
                f"{owner} token: got {self.token!r}; expected a non-empty bearer token or none"
            )
        for attr in ("max_body_bytes", "body_budget_bytes", "max_connections", "retry_after_s"):
            v = getattr(self, attr)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidInputError(f"{owner} {attr}: got {v!r}, expected a positive integer")
        if self.body_budget_bytes < self.max_body_bytes:
            raise InvalidInputError(
                f"{owner}: body_budget_bytes={self.body_budget_bytes} is below max_body_bytes="
                f"{self.max_body_bytes}, so the largest body allowed could never be read; "
                "expected a budget of at least the largest body (raise --body-budget-mb or lower "
                "--max-body-mb)"
            )
        for attr in ("header_timeout_s", "body_timeout_s", "keep_alive_s"):
            _positive_number(owner, attr, getattr(self, attr), "seconds")

    def replace(self, **changes: Any) -> ServerSettings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the token is never written out)."""
        d = dataclasses.asdict(self)
        d["token"] = None if self.token is None else "***"
        return d
