"""Benchmark inputs: ``--input NAME:SPEC`` parsing and synthetic feeds.

SPEC is one of ``random``, ``zeros``, ``ones`` (each optionally ``:DxDxD`` for the full shape),
a ``.npy`` file, or an image file (``.png``/``.jpg``/...; needs Pillow) resized to the input.
Symbolic dimensions take the batch size (leading) or 1 (others) unless a shape is given.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nnperf.errors import InvalidInputError, MissingDependencyError
from nnperf.types import TensorDesc

__all__ = ["make_feeds", "parse_input_specs"]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".webp", ".tif", ".tiff"}
_KINDS = ("random", "zeros", "ones")


def parse_input_specs(specs: Sequence[str]) -> dict[str, str]:
    """Split ``NAME:SPEC`` strings into ``{name: spec}``.

    Raises:
        InvalidInputError: a string without ``:`` or a repeated name.
    """
    out: dict[str, str] = {}
    for raw in specs:
        name, sep, spec = raw.partition(":")
        if not sep or not name or not spec:
            raise InvalidInputError(
                f"--input {raw!r}: expected NAME:SPEC with SPEC one of random, zeros, ones "
                "(optionally :1x3x224x224), a .npy file or an image file"
            )
        if name in out:
            raise InvalidInputError(f"--input: {name!r} given twice; expected one SPEC per input")
        out[name] = spec
    return out


def _shape_for(desc: TensorDesc, batch: int, explicit: str | None) -> tuple[int, ...]:
    if explicit:
        try:
            shape = tuple(int(p) for p in explicit.lower().split("x"))
        except ValueError:
            raise InvalidInputError(
                f"input {desc.name!r}: shape {explicit!r} is not like 1x3x224x224"
            ) from None
        if len(shape) != len(desc.shape) or any(
            isinstance(d, int) and d != s for d, s in zip(desc.shape, shape)
        ):
            raise InvalidInputError(
                f"input {desc.name!r}: shape {shape} does not fit the model's {desc.shape_str()}"
            )
        return shape
    return tuple(
        d if isinstance(d, int) else (batch if i == 0 else 1) for i, d in enumerate(desc.shape)
    )


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
) -> dict[str, np.ndarray]:
    """Build one feed for ``inputs``.

    Args:
        inputs: the model's inputs.
        batch_size: size of symbolic leading dimensions.
        specs: ``{name: SPEC}`` from ``--input``; unnamed inputs are ``random``.
        seed: random seed.

    Raises:
        InvalidInputError: unknown input names, bad specs, or arrays that do not fit.
    """
    specs = dict(specs or {})
    names = [d.name for d in inputs]
    for name in specs:
        if name not in names:
            hint = difflib.get_close_matches(name, names, n=1)
            raise InvalidInputError(
                f"--input {name!r}: the model has no such input"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; expected one of {names}"
            )
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for desc in inputs:
        spec = specs.get(desc.name, "random")
        kind, _, shape_text = spec.partition(":")
        if kind in _KINDS:
            shape = _shape_for(desc, batch_size, shape_text or None)
            feeds[desc.name] = _synthetic(desc, shape, kind, rng)
        else:
            feeds[desc.name] = _load_file(desc, Path(spec), batch_size)
    return feeds
