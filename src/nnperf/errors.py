"""The nnperf error family.

Every error nnperf raises on purpose derives from :class:`NnperfError`. Each class carries the HTTP
status that ``nnperf serve`` turns into a KServe v2 ``{"error": ...}`` body, and the CLI prints the
message on one line and exits 2. Messages say what was received, what was expected, and the fix.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "EngineError",
    "InvalidInputError",
    "MissingDependencyError",
    "ModelLoadError",
    "NnperfError",
    "NotFoundError",
    "OverloadedError",
    "UnsupportedError",
]


class NnperfError(Exception):
    """Base class of every error nnperf raises on purpose."""

    http_status: ClassVar[int] = 500


class InvalidInputError(NnperfError, ValueError):
    """A feed, flag, config or request does not match what was expected."""

    http_status: ClassVar[int] = 400


class ModelLoadError(NnperfError):
    """A model file is missing, corrupt, or the engine refused it."""

    http_status: ClassVar[int] = 400


class NotFoundError(NnperfError, LookupError):
    """A named thing (zoo model, served model, tensor) does not exist."""

    http_status: ClassVar[int] = 404


class UnsupportedError(NnperfError):
    """The request is valid but this engine, device or build cannot do it."""

    http_status: ClassVar[int] = 501


class OverloadedError(NnperfError):
    """Too many requests are in flight; retry later."""

    http_status: ClassVar[int] = 503


class EngineError(NnperfError, RuntimeError):
    """The engine failed while running a valid request (wraps the engine's exception)."""

    http_status: ClassVar[int] = 500


class MissingDependencyError(NnperfError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    http_status: ClassVar[int] = 501

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed; "
            f"install it with: pip install 'nnperf[{extra}]'"
        )
        self.package = package
        self.extra = extra
