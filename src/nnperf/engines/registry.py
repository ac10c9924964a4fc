"""The engine registry: engine names → their options type and their implementation.

Options types are pure Python and always importable, so a config naming any known engine reads
anywhere; the engine itself is imported on first use, and a missing package is a
:class:`~nnperf.errors.MissingDependencyError` naming the extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from dataclasses import dataclass
from typing import cast

from nnperf.engines.base import Engine, EngineOptions
from nnperf.errors import InvalidInputError, MissingDependencyError

__all__ = [
    "DEFAULT_ENGINE",
    "EngineEntry",
    "engine_names",
    "get_engine",
    "installed_engines",
    "options_type",
    "register_engine",
]

DEFAULT_ENGINE = "onnxruntime"


@dataclass(frozen=True)
class EngineEntry:
    """Where an engine lives.

    Attributes:
        name: the engine's name (``RunConfig.engine``, ``--engine``).
        engine: ``module:Class`` of the :class:`~nnperf.engines.base.Engine`.
        options: ``module:Class`` of its :class:`~nnperf.engines.base.EngineOptions`.
        package: the Python package the engine needs (checked before importing it).
        extra: the nnperf extra that installs it.
    """

    name: str
    engine: str
    options: str
    package: str
    extra: str


_ENTRIES: dict[str, EngineEntry] = {
    "onnxruntime": EngineEntry(
        "onnxruntime",
        "nnperf.engines.onnxruntime:OrtEngine",
        "nnperf.engines.onnxruntime_options:OrtOptions",
        "onnxruntime",
        "all",
    ),
    "openvino": EngineEntry(
        "openvino",
        "nnperf.engines.openvino:OpenVINOEngine",
        "nnperf.engines.openvino_options:OpenVINOOptions",
        "openvino",
        "openvino",
    ),
}
_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


def register_engine(entry: EngineEntry) -> None:
    """Add (or replace) an engine, e.g. one of your own that passes the contract suite."""
    with _LOCK:
        _ENTRIES[entry.name] = entry
        _ENGINES.pop(entry.name, None)


def engine_names() -> tuple[str, ...]:
    """Every known engine, installed or not, the default first."""
    return tuple(_ENTRIES)


def _entry(name: str) -> EngineEntry:
    if not isinstance(name, str) or name not in _ENTRIES:
        raise InvalidInputError(f"engine: got {name!r}, expected one of {list(_ENTRIES)}")
    return _ENTRIES[name]


def _load(path: str) -> object:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def installed_engines() -> tuple[str, ...]:
    """Known engines whose package is installed here."""
    return tuple(n for n, e in _ENTRIES.items() if importlib.util.find_spec(e.package) is not None)


def options_type(name: str) -> type[EngineOptions]:
    """The options type of engine ``name`` (importable whether or not the engine is installed).

    Raises:
        InvalidInputError: an unknown engine name.
    """
    return cast(type[EngineOptions], _load(_entry(name).options))


def get_engine(name: str = DEFAULT_ENGINE) -> Engine:
    """The engine called ``name`` (one shared object per name).

    Raises:
        InvalidInputError: an unknown engine name.
        MissingDependencyError: the engine's package is not installed.
    """
    found = _ENGINES.get(name)
    if found is not None:
        return found
    entry = _entry(name)
    if importlib.util.find_spec(entry.package) is None:
        raise MissingDependencyError(entry.package, entry.extra, f"engine {name!r}")
    with _LOCK:
        found = _ENGINES.get(name)
        if found is None:
            found = cast(Engine, cast(type, _load(entry.engine))())
            _ENGINES[name] = found
    return found
