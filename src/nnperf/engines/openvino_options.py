"""OpenVINO's own options (pure Python: reading a config never imports openvino)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

from nnperf.engines.base import EngineOptions
from nnperf.errors import InvalidInputError
from nnperf.types import StrEnum

__all__ = ["Hint", "OpenVINOOptions"]


class Hint(StrEnum):
    """OpenVINO's ``PERFORMANCE_HINT``."""

    LATENCY = "latency"
    THROUGHPUT = "throughput"


@dataclass(frozen=True)
class OpenVINOOptions(EngineOptions):
    """How the OpenVINO CPU plugin compiles each instance.

    Attributes:
        hint: ``None`` (default): nnperf maps the device string itself — each instance of
            ``cpu(T)*N`` is one stream of T threads; ``latency`` / ``throughput``: OpenVINO's
            ``PERFORMANCE_HINT`` picks streams and threads per instance (``throughput`` gives one
            instance several streams: give it several workers to keep them busy).
        cache_dir: OpenVINO's model cache (``CACHE_DIR``): a compiled blob is written on the first
            load and imported on later ones; ``load_info`` says which happened.
        streams: explicit ``NUM_STREAMS`` per instance (default: 1 without a hint, the hint's
            choice with one).
    """

    engine: ClassVar[str] = "openvino"

    hint: Hint | None = None
    cache_dir: str | None = None
    streams: int | None = None

    def __post_init__(self) -> None:
        if self.hint is not None:
            try:
                object.__setattr__(self, "hint", Hint(str(self.hint).lower()))
            except ValueError:
                raise InvalidInputError(
                    f"hint: got {self.hint!r}, expected 'latency', 'throughput' or none"
                ) from None
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", os.fspath(self.cache_dir))
        value = self.streams
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InvalidInputError(f"streams: got {value!r}, expected a positive integer or None")

    def _label(self, name: str, value: Any) -> str:
        if name == "hint":
            return f"hint={value.value}"
        if name == "cache_dir":
            return "cached"
        return super()._label(name, value)
