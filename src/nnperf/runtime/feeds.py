"""Feed normalisation and validation: every input is checked before the engine sees it."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nnperf.errors import InvalidInputError
from nnperf.types import TensorDesc

__all__ = ["Inputs", "FeedValidator", "describe_array"]

Inputs = np.ndarray | Sequence[np.ndarray] | Mapping[str, np.ndarray]
"""One array (single-input models), a list in input order, or a dict by name."""


def describe_array(value: Any) -> str:
    """``float64 (1, 3, 224, 224)`` style description of what was received."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {tuple(value.shape)}"
    return type(value).__name__


class FeedValidator:
    """Checks feeds against a model's inputs with precomputed rules (cheap per call)."""

    def __init__(self, inputs: Sequence[TensorDesc]) -> None:
        self.inputs = tuple(inputs)
        self.names = tuple(d.name for d in inputs)
        self._rules = [
            (
                d.name,
                np.dtype(d.dtype),
                len(d.shape),
                tuple((i, dim) for i, dim in enumerate(d.shape) if isinstance(dim, int)),
                d,
            )
            for d in inputs
        ]
        # Symbolic dims shared by several inputs (e.g. "batch") must agree within one feed.
        shared: dict[str, list[tuple[str, int]]] = {}
        for d in inputs:
            for i, dim in enumerate(d.shape):
                if isinstance(dim, str):
                    shared.setdefault(dim, []).append((d.name, i))
        self._shared = {k: v for k, v in shared.items() if len(v) > 1}

    def normalise(self, inputs: Inputs) -> dict[str, np.ndarray]:
        """Turn any accepted form into ``{name: array}`` and validate it.

        Raises:
            InvalidInputError: naming the tensor, what was received and what was expected.
        """
        kind = type(inputs)
        if kind is dict:
            # The common case first; the caller's dict is read, never modified.
            self.validate(inputs)  # type: ignore[arg-type]
            return inputs  # type: ignore[return-value]
        if isinstance(inputs, np.ndarray):
            if len(self.names) != 1:
                raise InvalidInputError(
                    f"got one array {describe_array(inputs)}, expected {len(self.names)} inputs "
                    f"{list(self.names)}; pass a list in that order or a dict by name"
                )
            feeds = {self.names[0]: inputs}
        elif isinstance(inputs, Mapping):
            feeds = dict(inputs)
        elif isinstance(inputs, (list, tuple)):
            if len(inputs) != len(self.names):
                raise InvalidInputError(
                    f"got {len(inputs)} input array(s), expected {len(self.names)}: "
                    f"{[str(d) for d in self.inputs]}"
                )
            feeds = dict(zip(self.names, inputs))
        else:
            raise InvalidInputError(
                f"inputs: got {type(inputs).__name__}, expected a numpy array, a list of arrays "
                f"or a dict {{name: array}} for inputs {list(self.names)}"
            )
        self.validate(feeds)
        return feeds

    def validate(self, feeds: dict[str, np.ndarray]) -> None:
        """Validate a ``{name: array}`` feed in place (lists become arrays only if the dtype fits)."""
        if len(feeds) != len(self._rules):
            self._names_error(feeds)
        for name, dtype, rank, fixed, desc in self._rules:
            arr = feeds.get(name)
            if arr is None:
                self._names_error(feeds)
            if type(arr) is not np.ndarray:
                if not isinstance(arr, np.ndarray):
                    raise InvalidInputError(
                        f"input {name!r}: got {describe_array(arr)}, expected a numpy array "
                        f"{desc.dtype} {desc.shape_str()}; wrap it with np.asarray(..., "
                        f"dtype=np.{desc.dtype})"
                    )
            if arr.dtype != dtype or arr.ndim != rank:
                raise self._mismatch(desc, arr)
            shape = arr.shape
            for axis, size in fixed:
                if shape[axis] != size:
                    raise self._mismatch(desc, arr)
        if self._shared:
            self._check_shared(feeds)

    def _check_shared(self, feeds: Mapping[str, np.ndarray]) -> None:
        for dim, uses in self._shared.items():
            sizes = {(n, feeds[n].shape[i]) for n, i in uses}
            if len({s for _, s in sizes}) > 1:
                got = ", ".join(f"{n!r}: {s}" for n, s in sorted(sizes))
                raise InvalidInputError(
                    f"dimension {dim!r} differs between inputs ({got}); expected one size shared "
                    "by every input that uses it"
                )

    def _mismatch(self, desc: TensorDesc, arr: np.ndarray) -> InvalidInputError:
        fix = ""
        if arr.dtype != np.dtype(desc.dtype):
            fix = f"; convert with .astype(np.{desc.dtype})"
        elif arr.ndim != len(desc.shape):
            fix = f"; expected rank {len(desc.shape)}, got rank {arr.ndim}"
        return InvalidInputError(
            f"input {desc.name!r}: got {describe_array(arr)}, expected {desc.dtype} "
            f"{desc.shape_str()}{fix}"
        )

    def _names_error(self, feeds: Mapping[str, Any]) -> None:
        unknown = [n for n in feeds if n not in self.names]
        missing = [n for n in self.names if n not in feeds]
        parts = []
        for n in unknown:
            hint = [m for m in self.names if m.lower() == str(n).lower()]
            hint = hint or difflib.get_close_matches(str(n), self.names, n=1)
            parts.append(f"unknown input {n!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        if missing:
            parts.append(f"missing input(s) {missing}")
        raise InvalidInputError(
            "; ".join(parts) + f"; expected inputs {[str(d) for d in self.inputs]}"
        )
