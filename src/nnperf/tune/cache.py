"""The tuning cache: MegEngine's fast-run algo-policy file for run configurations.

A cache file holds one tuning result::

    {"schema": "nnperf.tune/1", "key": {...}, "config": {RunConfig}, "candidates": [...], ...}

Because the winning configuration sits under ``"config"``, the file is also a run-config file:
``nnperf bench --config FILE``, ``nnperf.create(config=FILE)`` and ``RunConfig.load(FILE)`` read it.

The key names what the result depends on: the model's sha256 (and any variants'), the engines that
ran and their versions, the CPU model, the core count, the objective and the whole search space
(devices, batch sizes, precisions, the shapes and dims every candidate ran at, the accuracy
guard's threshold and inputs; not the time budget). A file whose key matches is a hit and is
reused without measuring; a different key is a miss (the file is re-tuned and overwritten). A
file with the tune schema but a broken body is rebuilt with a warning; a file that is not a tune
cache at all (not JSON, or another schema) is an error, so a mistyped ``--cache`` never overwrites
someone's model or config.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nnperf.bench.machine import cpu_model
from nnperf.device import available_cores
from nnperf.engines.config import RunConfig
from nnperf.engines.registry import DEFAULT_ENGINE, get_engine
from nnperf.errors import InvalidInputError, NnperfError
from nnperf.model import ModelBlob

__all__ = [
    "TUNE_SCHEMA",
    "CacheWarning",
    "cache_key",
    "key_differences",
    "read_cache",
    "write_cache",
]

TUNE_SCHEMA = "nnperf.tune/1"


class CacheWarning(UserWarning):
    """A tune cache file was unusable and is being rebuilt."""


def cache_key(
    model: ModelBlob,
    objective: Mapping[str, Any],
    *,
    variants: Sequence[ModelBlob] = (),
    cores: int | None = None,
    engines: Sequence[str] = (DEFAULT_ENGINE,),
    space: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a tuning result depends on.

    Args:
        model: the tuned model.
        objective: the objective's ``to_dict()``.
        variants: extra model variants searched alongside.
        cores: logical CPUs (default: those available to this process).
        engines: the engines the search ran (their versions are part of the key).
        space: what was searched: the space's axes, the settings every candidate inherits (shapes,
            dims), the accuracy guard's threshold and inputs.
    """
    return {
        "model_sha256": model.sha256,
        "variants_sha256": [v.sha256 for v in variants],
        "engines": {name: get_engine(name).version for name in engines},
        "cpu": cpu_model(),
        "cores": cores if cores is not None else len(available_cores()),
        "objective": dict(objective),
        **({"space": dict(space)} if space else {}),
    }


def key_differences(cached: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two keys, e.g. ``cores: 4 -> 2``."""
    out = []
    for name in sorted(set(cached) | set(wanted)):
        a, b = cached.get(name), wanted.get(name)
        if a != b:
            if name.endswith("sha256") and isinstance(a, str) and isinstance(b, str):
                a, b = a[:12], b[:12]
            out.append(f"{name}: {a!r} -> {b!r}")
    return out


def read_cache(path: str | os.PathLike[str], key: Mapping[str, Any]) -> dict[str, Any] | None:
    """The cached result for ``key``, or ``None`` on a miss.

    Returns:
        The file's JSON object when its key equals ``key``; ``None`` when the file is missing,
        holds another key, or holds a broken tune result (a :class:`CacheWarning` says so and the
        caller re-tunes and overwrites it).

    Raises:
        InvalidInputError: the file exists but is not a tune cache (not JSON, not an object, or
            another schema); it is left untouched.
    """
    p = Path(path)
    if not p.exists():
        return None
    if p.is_dir():
        raise InvalidInputError(f"--cache {str(p)!r} is a directory; expected a JSON file path")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            f"cache file {str(p)!r} is not valid JSON ({exc}); expected a {TUNE_SCHEMA!r} file "
            "written by 'nnperf tune'. Delete it or pass another --cache path"
        ) from None
    if not isinstance(data, dict) or data.get("schema") != TUNE_SCHEMA:
        got = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise InvalidInputError(
            f"cache file {str(p)!r} is not a tune cache (schema {got!r}); expected "
            f"{TUNE_SCHEMA!r}. It was left untouched: pass another --cache path"
        )
    try:
        cached_key = data["key"]
        RunConfig.from_dict(data["config"])
        if not isinstance(cached_key, dict) or not isinstance(data.get("candidates", []), list):
            raise TypeError("key or candidates has the wrong type")
    except (KeyError, TypeError, NnperfError) as exc:
        warnings.warn(
            f"cache file {str(p)!r} is a damaged tune result ({type(exc).__name__}: {exc}); "
            "re-tuning and rewriting it",
            CacheWarning,
            stacklevel=2,
        )
        return None
    if cached_key != dict(key):
        return None
    return data


def write_cache(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """Write a tune result atomically (a crash never leaves a half-written cache)."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
