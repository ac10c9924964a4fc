"""Real evaluation data from a folder: queries for ``compare-models`` and ``--eval-data``.

Layout of ``DIR`` (files are read in sorted name order; other files are ignored):

* ``*.npy``: one query of a single-input model. An array with one dimension fewer than the
  input gets a leading batch dimension (``(1, 28, 28)`` for a ``(N, 1, 28, 28)`` input).
* ``*.npz``: one query, one array per input name (multi-input models).
* images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.ppm``, ``.pgm``, ``.webp``, ``.tif``):
  one query each, resized to a 4-D image input (NCHW or NHWC) as ``nnperf bench --input``
  reads images: uint8 inputs get the pixels, float inputs the pixels scaled to [0, 1].

Labels (``--labels FILE``): ``.npy`` of integers (one per query, in file order), or a text file
with one integer per line (same order), or ``name,label`` lines naming each query file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnperf.errors import InvalidInputError
from nnperf.types import TensorDesc

__all__ = ["IMAGE_SUFFIXES", "load_eval_data", "load_labels", "query_files", "shared_queries"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".webp", ".tif", ".tiff")
_SUFFIXES = (".npy", ".npz", *IMAGE_SUFFIXES)


def query_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The query files of ``folder``, sorted by name.

    Raises:
        InvalidInputError: not a directory, or no query files in it.
    """
    path = Path(folder)
    if not path.is_dir():
        raise InvalidInputError(
            f"{str(path)!r} is not a directory; expected a folder of .npy / .npz / image files"
        )
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _SUFFIXES)
    if not files:
        raise InvalidInputError(
            f"{str(path)!r} holds no .npy, .npz or image files (one query per file expected)"
        )
    return files


def _fit(arr: np.ndarray, desc: TensorDesc, source: Path) -> np.ndarray:
    if arr.ndim == len(desc.shape) - 1:
        arr = arr[None]
    if arr.ndim != len(desc.shape) or any(
        isinstance(d, int) and d != s for d, s in zip(desc.shape, arr.shape)
    ):
        raise InvalidInputError(
            f"{source.name}: input {desc.name!r} got shape {arr.shape}, expected "
            f"{desc.shape_str()} (or that without the batch dimension)"
        )
    want = np.dtype(desc.dtype)
    if arr.dtype != want:
        if np.issubdtype(arr.dtype, np.floating) != np.issubdtype(want, np.floating):
            raise InvalidInputError(
                f"{source.name}: input {desc.name!r} got {arr.dtype}, expected {want} (convert "
                "the data, or give images and let nnperf convert them)"
            )
        arr = arr.astype(want)
    return np.ascontiguousarray(arr)


def load_eval_data(
    folder: str | os.PathLike[str], inputs: Sequence[TensorDesc]
) -> list[dict[str, np.ndarray]]:
    """One feed per query file of ``folder`` (layout in the module docstring), fitted to
    ``inputs``.

    Raises:
        InvalidInputError: the folder or a file does not fit the model's inputs.
    """
    from nnperf.bench.inputs import make_feeds

    names = [d.name for d in inputs]
    feeds: list[dict[str, np.ndarray]] = []
    for path in query_files(folder):
        suffix = path.suffix.lower()
        if suffix == ".npy":
            if len(inputs) != 1:
                raise InvalidInputError(
                    f"{path.name}: .npy queries need a single-input model; this one has {names}; "
                    "use .npz files keyed by input name"
                )
            feeds.append({names[0]: _fit(np.load(path, allow_pickle=False), inputs[0], path)})
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                missing = [n for n in names if n not in z.files]
                if missing:
                    raise InvalidInputError(
                        f"{path.name}: no array for input(s) {missing}; it has {z.files}"
                    )
                feeds.append({d.name: _fit(z[d.name], d, path) for d in inputs})
        else:
            if len(inputs) != 1:
                raise InvalidInputError(
                    f"{path.name}: image queries need a single-input model; this one has {names}"
                )
            feeds.append(make_feeds(inputs, specs={names[0]: str(path)}))
    return feeds


def load_labels(path: str | os.PathLike[str], files: Sequence[Path]) -> np.ndarray:
    """Integer labels, one per query file (layout in the module docstring).

    Raises:
        InvalidInputError: unreadable, or not one label per query.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"--labels: {str(p)!r} does not exist")
    labels: np.ndarray
    if p.suffix.lower() == ".npy":
        labels = np.asarray(np.load(p, allow_pickle=False), dtype=np.int64).ravel()
    else:
        lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
        try:
            if lines and "," in lines[0]:
                by_name = {}
                for ln in lines:
                    name, _, value = ln.rpartition(",")
                    by_name[name.strip()] = int(value)
                missing = [f.name for f in files if f.name not in by_name]
                if missing:
                    raise InvalidInputError(
                        f"--labels: no label for {missing[:5]} (name,label lines expected for "
                        "every query file)"
                    )
                labels = np.asarray([by_name[f.name] for f in files], dtype=np.int64)
            else:
                labels = np.asarray([int(v) for v in lines], dtype=np.int64)
        except ValueError:
            raise InvalidInputError(
                f"--labels: {str(p)!r} is not integers, one per line, or name,label lines"
            ) from None
    if labels.size != len(files):
        raise InvalidInputError(
            f"--labels: got {labels.size} labels for {len(files)} queries; expected one each"
        )
    return labels


def shared_queries(evaluation: str | os.PathLike[str], calibration: str | os.PathLike[str]) -> int:
    """How many of ``evaluation``'s query files also appear (same contents) in ``calibration``;
    all of them when both name the same folder, 0 when either is not a folder."""
    pa, pb = Path(evaluation), Path(calibration)
    if not (pa.is_dir() and pb.is_dir()):
        return 0
    files = [f for f in pa.iterdir() if f.is_file() and f.suffix.lower() in _SUFFIXES]
    if pa.resolve() == pb.resolve():
        return len(files)
    import hashlib

    def digest(f: Path) -> str:
        return hashlib.sha256(f.read_bytes()).hexdigest()

    calib = {digest(f) for f in pb.iterdir() if f.is_file() and f.suffix.lower() in _SUFFIXES}
    return sum(1 for f in files if digest(f) in calib)
