"""Value types shared by every layer: tensor descriptions, dimensions and progress reports.

The run configuration, which names engines and their options, is
:class:`nnperf.engines.config.RunConfig` (also ``nnperf.RunConfig``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from nnperf.errors import InvalidInputError

__all__ = [
    "Dim",
    "Progress",
    "ProgressFn",
    "StrEnum",
    "TensorDesc",
    "check_dims_and_shapes",
    "concrete_shape",
    "dtype_from_onnx",
    "guess_layout",
]

Dim = int | str | None
"""A dimension: a fixed size, a symbolic name (``"batch"``) or unknown (``None``)."""


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a long job has got: what bench, tune, calibration, sweeps and side-by-side runs
    report to a progress bar or a log line.

    A job is done when both of its bounds are met: ``done`` of ``total`` steps (queries, samples,
    candidates, points; ``total`` 0 when there is no step bound) and ``elapsed_s`` of
    ``duration_s`` (0 when there is no time bound). ``what`` names what is being done now.
    """

    done: int = 0
    total: int = 0
    elapsed_s: float = 0.0
    duration_s: float = 0.0
    what: str = ""

    @property
    def fraction(self) -> float:
        """0..1: the lesser of the step and time fractions (both bounds must be met); 0 when the
        job has neither bound."""
        parts = []
        if self.total > 0:
            parts.append(self.done / self.total)
        if self.duration_s > 0:
            parts.append(self.elapsed_s / self.duration_s)
        return min(1.0, max(0.0, min(parts))) if parts else 0.0


ProgressFn = Callable[[Progress], None]
"""What a long job calls now and then with its :class:`Progress`."""


class StrEnum(str, Enum):
    """A string enum whose ``str()`` is its value (``enum.StrEnum`` is Python 3.11+)."""

    def __str__(self) -> str:
        return str(self.value)


_ONNX_TO_NUMPY: dict[str, str] = {
    "float": "float32",
    "float16": "float16",
    "double": "float64",
    "bfloat16": "bfloat16",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
    "bool": "bool",
    "string": "object",
}


def dtype_from_onnx(type_str: str) -> str:
    """Map onnxruntime's ``tensor(float)`` style type names to numpy dtype names.

    Raises:
        InvalidInputError: for non-tensor types (sequences, maps), which nnperf does not feed.
    """
    if type_str.startswith("tensor(") and type_str.endswith(")"):
        inner = type_str[len("tensor(") : -1]
        if inner in _ONNX_TO_NUMPY:
            return _ONNX_TO_NUMPY[inner]
    raise InvalidInputError(
        f"tensor type {type_str!r} is not supported; expected a tensor of a numeric or bool type"
    )


def guess_layout(shape: tuple[Dim, ...]) -> str:
    """Guess a layout name from a shape: ``NCHW``/``NHWC`` for images, ``NC``, ``NL``, ``NLC``..."""
    rank = len(shape)
    if rank == 4:
        c1, c3 = shape[1], shape[3]
        if isinstance(c3, int) and c3 in (1, 3, 4) and not (isinstance(c1, int) and c1 <= 4):
            return "NHWC"
        return "NCHW"
    return {0: "scalar", 1: "N", 2: "NC", 3: "NLC", 5: "NCDHW"}.get(rank, f"rank{rank}")


@dataclass(frozen=True)
class TensorDesc:
    """Name, shape and dtype of a model input or output.

    Attributes:
        name: the tensor name in the graph.
        shape: dimensions; symbolic names (``"batch"``) or ``None`` where not fixed.
        dtype: numpy dtype name (``"float32"``, ``"int64"``, ``"uint8"``...).
        layout: a guess from the shape (``NCHW``, ``NHWC``, ``NC``...).
    """

    name: str
    shape: tuple[Dim, ...]
    dtype: str
    layout: str = ""

    def __post_init__(self) -> None:
        if not self.layout:
            object.__setattr__(self, "layout", guess_layout(self.shape))

    @property
    def is_static(self) -> bool:
        """Whether every dimension is a fixed size."""
        return all(isinstance(d, int) for d in self.shape)

    @property
    def numel(self) -> int | None:
        """Element count when static, else ``None``."""
        if not self.is_static:
            return None
        return int(np.prod([int(d) for d in self.shape if d is not None], dtype=np.int64))

    @property
    def size_bytes(self) -> int | None:
        """Size in bytes when static, else ``None``."""
        n = self.numel
        return None if n is None else n * np.dtype(self.dtype).itemsize

    def shape_str(self) -> str:
        """The shape as text, symbolic dims by name: ``(batch, 3, 224, 224)``."""
        parts = ["?" if d is None else str(d) for d in self.shape]
        return "(" + ", ".join(parts) + (",)" if len(parts) == 1 else ")")

    def __str__(self) -> str:
        return f"{self.name}: {self.dtype} {self.shape_str()} {self.layout}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "layout": self.layout,
        }


def concrete_shape(
    desc: TensorDesc,
    *,
    batch: int = 1,
    dims: Mapping[str, int] | None = None,
    default: int | None = None,
) -> tuple[int, ...]:
    """A concrete shape for ``desc``: fixed dims as they are, symbolic ones resolved.

    The leading symbolic dim takes ``batch``; any symbolic dim named in ``dims`` takes that value
    (``dims`` wins over ``batch``); other symbolic or unknown dims take ``default``.

    Raises:
        InvalidInputError: a non-leading dim has no value and no ``default`` is given; the message
            names the dims and how to set them.
    """
    values = dims or {}
    out: list[int] = []
    missing: list[str] = []
    for i, d in enumerate(desc.shape):
        if isinstance(d, int):
            out.append(d)
        elif isinstance(d, str) and d in values:
            out.append(int(values[d]))
        elif i == 0:
            out.append(batch)
        elif default is not None:
            out.append(default)
        else:
            missing.append(d if isinstance(d, str) else f"axis {i}")
            out.append(0)
    if missing:
        named = next((m for m in missing if not m.startswith("axis ")), None)
        example = "x".join(str(v) if v else "N" for v in out)
        how = (
            f"set it with --dim {named}=VALUE (dims={{...}} in Python) or give the whole shape "
            f"with --shape {desc.name}:{example}"
            if named is not None
            # An unnamed dim has no name to set: only a whole shape fixes it.
            else f"give the whole shape with --shape {desc.name}:{example} (shapes={{...}} in "
            "Python)"
        )
        raise InvalidInputError(
            f"input {desc.name!r} {desc.shape_str()}: dimension(s) {missing} have no size; "
            f"expected a value for each: {how}"
        )
    return tuple(out)


def check_dims_and_shapes(
    inputs: Sequence[TensorDesc],
    *,
    dims: Mapping[str, int] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> None:
    """Reject ``dims`` naming no symbolic dimension of ``inputs`` and ``shapes`` naming no input
    (engines ignore both silently).

    Raises:
        InvalidInputError: naming the unknown entry and what the model has.
    """
    names = [d.name for d in inputs]
    for name in shapes or {}:
        if name not in names:
            hint = difflib.get_close_matches(name, names, n=1)
            raise InvalidInputError(
                f"--shape: the model has no input {name!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; expected one of {names}"
            )
    symbolic = sorted({d for desc in inputs for d in desc.shape if isinstance(d, str)})
    for name in dims or {}:
        if name not in symbolic:
            raise InvalidInputError(
                f"--dim: the model has no symbolic dimension {name!r}; its symbolic dimensions "
                f"are {symbolic} (unnamed ones need --shape)"
            )
