"""Benchmark inputs: ``--input [NAME:]SPEC`` parsing, ``--shape`` / ``--dim`` and synthetic feeds.

SPEC is one of ``random``, ``zeros``, ``ones`` (each optionally ``:DxDxD`` for the full shape),
a ``.npy`` file, or an image file (``.png``/``.jpg``/...; needs Pillow) resized to the input. A
spec without a name applies to a single-input model.

A symbolic leading dimension takes the batch size; any other symbolic dimension must be given a
value: ``--dim NAME=VALUE`` (onnxruntime's free-dimension override, by dimension name),
``--shape INPUT:AxBxC`` (a whole input shape) or a shape in the spec. Nothing is guessed: a
model with input ``(batch, seq, 64)`` run at ``seq = 1`` measures another experiment.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnperf.errors import InvalidInputError, MissingDependencyError
from nnperf.types import Dim, TensorDesc, check_dims_and_shapes, concrete_shape

__all__ = [
    "UNNAMED",
    "FedInput",
    "batch_of",
    "describe_feeds",
    "make_feeds",
    "parse_dims",
    "parse_input_specs",
    "parse_shapes",
    "resolve_specs",
]

UNNAMED = ""
"""The key of an ``--input`` spec given without an input name."""

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".webp", ".tif", ".tiff"}
_KINDS = ("random", "zeros", "ones")
_SHAPE = re.compile(r"^\d+(x\d+)*$")


@dataclass(frozen=True)
class FedInput:
    """One input as it was fed to the measured queries.

    Attributes:
        name: the input's name.
        shape: the array's shape.
        dtype: numpy dtype name.
        spec: where the data came from (``random``, ``zeros:4x1x28x28``, a file, or ``array``
            for arrays handed in).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    spec: str

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "shape", "dtype", "spec"}``."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "spec": self.spec,
        }


def _unnamed(raw: str) -> bool:
    """A spec with no input name: a bare kind or file, or ``KIND:SHAPE``."""
    name, sep, rest = raw.partition(":")
    if not sep:
        return True
    return name in _KINDS and bool(_SHAPE.match(rest.lower()))


def parse_input_specs(specs: Sequence[str]) -> dict[str, str]:
    """Split ``[NAME:]SPEC`` strings into ``{name: spec}`` (an unnamed spec under
    :data:`UNNAMED`).

    Raises:
        InvalidInputError: an empty part or a repeated name.
    """
    out: dict[str, str] = {}
    for raw in specs:
        if _unnamed(raw):
            name, spec = UNNAMED, raw
        else:
            name, _, spec = raw.partition(":")
        if not spec or (not name and not _unnamed(raw)):
            raise InvalidInputError(
                f"--input {raw!r}: expected [NAME:]SPEC with SPEC one of random, zeros, ones "
                "(optionally :1x3x224x224), a .npy file or an image file"
            )
        if name in out:
            what = "an unnamed spec" if name == UNNAMED else repr(name)
            raise InvalidInputError(f"--input: {what} given twice; expected one SPEC per input")
        out[name] = spec
    return out


def _parse_sizes(text: str, what: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        raise InvalidInputError(f"{what}: shape {text!r} is not like 1x3x224x224") from None
    if not sizes or any(s < 1 for s in sizes):
        raise InvalidInputError(f"{what}: shape {text!r} has a size below 1; expected sizes >= 1")
    return sizes


def parse_shapes(items: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """``--shape NAME:AxBxC`` items as ``{input: shape}``.

    Raises:
        InvalidInputError: a malformed item or a repeated input.
    """
    out: dict[str, tuple[int, ...]] = {}
    for raw in items:
        name, sep, text = raw.rpartition(":")
        if not sep or not name or not text:
            raise InvalidInputError(
                f"--shape {raw!r}: expected INPUT:AxBxC, e.g. images:1x3x640x640"
            )
        if name in out:
            raise InvalidInputError(f"--shape: input {name!r} given twice")
        out[name] = _parse_sizes(text, f"--shape {raw!r}")
    return out


def parse_dims(items: Sequence[str]) -> dict[str, int]:
    """``--dim NAME=VALUE`` items as ``{dim: size}``.

    Raises:
        InvalidInputError: a malformed item, a size below 1 or a repeated name.
    """
    out: dict[str, int] = {}
    for raw in items:
        name, sep, text = raw.partition("=")
        try:
            value = int(text)
        except ValueError:
            value = 0
        if not sep or not name or value < 1:
            raise InvalidInputError(
                f"--dim {raw!r}: expected NAME=VALUE with a size >= 1, e.g. seq=128"
            )
        if name in out:
            raise InvalidInputError(f"--dim: {name!r} given twice")
        out[name] = value
    return out


def resolve_specs(inputs: Sequence[TensorDesc], specs: Mapping[str, str]) -> dict[str, str]:
    """``specs`` with an unnamed spec given to the only input, unknown names rejected.

    Raises:
        InvalidInputError: an unnamed spec for a model with several inputs, or an unknown name.
    """
    out = dict(specs)
    names = [d.name for d in inputs]
    if UNNAMED in out:
        spec = out.pop(UNNAMED)
        if len(names) != 1:
            raise InvalidInputError(
                f"--input {spec!r} names no input, and the model has {len(names)}: {names}; "
                "expected NAME:SPEC for each"
            )
        if names[0] in out:
            raise InvalidInputError(
                f"--input: input {names[0]!r} given twice (once unnamed); expected one SPEC"
            )
        out[names[0]] = spec
    for name in out:
        if name not in names:
            hint = difflib.get_close_matches(name, names, n=1)
            raise InvalidInputError(
                f"--input {name!r}: the model has no such input"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; expected one of {names}"
            )
    return out


def _fits(desc: TensorDesc, shape: Sequence[int]) -> bool:
    """Same rank, and the model's fixed sizes as they are."""
    return len(shape) == len(desc.shape) and all(
        not isinstance(d, int) or d == s for d, s in zip(desc.shape, shape)
    )


def _resolved(
    desc: TensorDesc, dims: Mapping[str, int], shapes: Mapping[str, Sequence[int]]
) -> TensorDesc:
    """``desc`` with the sizes ``--shape`` / ``--dim`` give filled in."""
    whole = shapes.get(desc.name)
    if whole is not None:
        if not _fits(desc, whole):
            raise InvalidInputError(
                f"--shape {desc.name}:{'x'.join(map(str, whole))} does not fit the model's "
                f"{desc.shape_str()}; expected rank {len(desc.shape)} with the fixed sizes as "
                "they are"
            )
        shape: tuple[Dim, ...] = tuple(int(s) for s in whole)
    else:
        shape = tuple(dims[d] if isinstance(d, str) and d in dims else d for d in desc.shape)
    return TensorDesc(desc.name, shape, desc.dtype, desc.layout)


def _shape_for(desc: TensorDesc, batch: int, explicit: str | None) -> tuple[int, ...]:
    if explicit:
        shape = _parse_sizes(explicit, f"input {desc.name!r}")
        if not _fits(desc, shape):
            lead = desc.shape[0] if desc.shape else None
            hint = (
                f" (the leading dim {shape[0]} differs from batch size {lead}: give the batch "
                "through --batch-size or the shape, or make them agree)"
                if len(shape) == len(desc.shape) and isinstance(lead, int) and lead != shape[0]
                else ""
            )
            raise InvalidInputError(
                f"input {desc.name!r}: shape {shape} does not fit the model's "
                f"{desc.shape_str()}{hint}"
            )
        return shape
    return concrete_shape(desc, batch=batch)


def _synthetic(
    desc: TensorDesc, shape: tuple[int, ...], kind: str, rng: np.random.Generator
) -> np.ndarray:
    dtype = np.dtype(desc.dtype)
    if kind == "zeros":
        return np.zeros(shape, dtype)
    if kind == "ones":
        return np.ones(shape, dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    if "mask" in desc.name.lower():
        # Attention masks: 1 = attend. Random 0/1 masks would measure a model nobody runs.
        return np.ones(shape, dtype)
    info = np.iinfo(dtype)
    # Small non-negative integers are valid token ids, class ids and indices for any vocab.
    return rng.integers(max(info.min, 0), min(info.max, 100), shape, dtype=dtype, endpoint=False)


def _load_file(desc: TensorDesc, path: Path, batch: int) -> np.ndarray:
    if not path.exists():
        raise InvalidInputError(f"input {desc.name!r}: file {str(path)!r} does not exist")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InvalidInputError(
                f"input {desc.name!r}: cannot read {str(path)!r}: {exc}"
            ) from None
        return np.asarray(arr)
    if path.suffix.lower() in _IMAGE_SUFFIXES:
        return _load_image(desc, path, batch)
    raise InvalidInputError(
        f"input {desc.name!r}: {str(path)!r} is neither .npy nor an image file; expected "
        f"random, zeros, ones, a .npy file or one of {sorted(_IMAGE_SUFFIXES)}"
    )


def _load_image(desc: TensorDesc, path: Path, batch: int) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependencyError("pillow", "image", "reading image inputs") from None
    if len(desc.shape) != 4:
        raise InvalidInputError(
            f"input {desc.name!r}: an image needs a 4-D input (NCHW or NHWC); the model's is "
            f"{desc.shape_str()}"
        )
    nhwc = desc.layout == "NHWC"
    h_dim, w_dim = (desc.shape[1], desc.shape[2]) if nhwc else (desc.shape[2], desc.shape[3])
    channels = desc.shape[3] if nhwc else desc.shape[1]
    img = Image.open(path).convert("L" if channels == 1 else "RGB")
    if isinstance(h_dim, int) and isinstance(w_dim, int):
        img = img.resize((w_dim, h_dim))
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[..., None]
    if not nhwc:
        arr = arr.transpose(2, 0, 1)
    arr = np.repeat(arr[None], batch, axis=0)
    dtype = np.dtype(desc.dtype)
    if dtype == np.uint8:
        return np.ascontiguousarray(arr)
    # Float models get pixels scaled to [0, 1]; normalisation is the model's business.
    return np.ascontiguousarray(arr.astype(dtype) / 255.0).astype(dtype)


def make_feeds(
    inputs: Sequence[TensorDesc],
    *,
    batch_size: int = 1,
    specs: Mapping[str, str] | None = None,
    seed: int = 0,
    dims: Mapping[str, int] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, np.ndarray]:
    """Build one feed for ``inputs``.

    Args:
        inputs: the model's inputs.
        batch_size: size of symbolic leading dimensions.
        specs: ``{name: SPEC}`` from ``--input`` (an unnamed one under :data:`UNNAMED`); inputs
            without one are ``random``.
        seed: random seed.
        dims: sizes of named symbolic dimensions (``--dim``).
        shapes: whole shapes by input name (``--shape``).

    Raises:
        InvalidInputError: unknown input names, bad specs, arrays that do not fit, or a symbolic
            non-batch dimension without a size (the message names it and the flags that set it).
    """
    chosen = resolve_specs(inputs, specs or {})
    # Only input names: ``dims`` may name dims the engine has already fixed in ``inputs`` (check
    # them against the model's declared inputs with check_dims_and_shapes).
    check_dims_and_shapes(inputs, shapes=shapes)
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for raw in inputs:
        desc = _resolved(raw, dims or {}, shapes or {})
        spec = chosen.get(desc.name, "random")
        kind, _, shape_text = spec.partition(":")
        if kind in _KINDS:
            shape = _shape_for(desc, batch_size, shape_text or None)
            feeds[desc.name] = _synthetic(desc, shape, kind, rng)
        else:
            feeds[desc.name] = _load_file(desc, Path(spec), batch_size)
    return feeds


def describe_feeds(
    feeds: Mapping[str, np.ndarray], specs: Mapping[str, str] | None = None, *, default: str
) -> tuple[FedInput, ...]:
    """What was fed: each input's shape, dtype and spec (``default`` where none was given)."""
    given = dict(specs or {})
    if UNNAMED in given and len(feeds) == 1:
        given[next(iter(feeds))] = given.pop(UNNAMED)
    return tuple(
        FedInput(name, tuple(int(s) for s in arr.shape), str(arr.dtype), given.get(name, default))
        for name, arr in feeds.items()
    )


def batch_of(inputs: Sequence[TensorDesc], feeds: Mapping[str, np.ndarray]) -> int:
    """Rows per query, for samples/s: the fed leading dimension of the first input the model
    declares with a symbolic leading dim; else of the first input of rank >= 2; else 1."""
    for desc in inputs:
        if desc.shape and not isinstance(desc.shape[0], int) and desc.name in feeds:
            arr = feeds[desc.name]
            return int(arr.shape[0]) if arr.ndim else 1
    for desc in inputs:
        if len(desc.shape) >= 2 and desc.name in feeds:
            return int(feeds[desc.name].shape[0])
    return 1
