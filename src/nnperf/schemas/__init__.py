"""JSON Schemas (draft 2020-12) of nnperf's documents, shipped with the package.

``bench-2.json`` (``nnperf.bench/2``), ``sweep-1.json`` (``nnperf.sweep/1``) and ``inspect-2.json``
(``nnperf.inspect/2``). Load one with :func:`load_schema` and check a document with any JSON Schema
validator (``jsonschema.validate(doc, load_schema("bench-2"))``).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from nnperf.errors import NotFoundError

__all__ = ["SCHEMAS", "load_schema"]

SCHEMAS = ("bench-2", "sweep-1", "inspect-2")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The schema ``name`` (one of :data:`SCHEMAS`) as a dict.

    Raises:
        NotFoundError: an unknown name.
    """
    if name not in SCHEMAS:
        raise NotFoundError(f"no schema {name!r}; expected one of {list(SCHEMAS)}")
    text = resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data
