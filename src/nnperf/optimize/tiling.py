"""Large images as patches (Furiosa's perf-guide "patching"): split an image into overlapping
tiles, run them batched on one session or spread across instances, and stitch the outputs.

The model must be fully convolutional with outputs the size of its inputs (segmentation,
denoising, super-resolution at scale 1). Each output pixel is taken from the tile in which it lies
furthest from a border; with ``overlap`` at least twice the model's receptive-field radius the
stitched result equals a whole-image run.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError
from nnperf.model import ModelSource
from nnperf.runtime.executor import Executor

if TYPE_CHECKING:
    from nnperf.runtime.session import Session
from nnperf.optimize.config import run_config

__all__ = ["Tile", "TilingResult", "plan_tiles", "run_tiled", "split", "stitch", "sweep"]


@dataclass(frozen=True)
class Tile:
    """One patch: its window in the image and the part of the output it owns.

    Attributes:
        y0, x0: top-left corner of the patch window (pixels).
        size_y, size_x: patch size.
        own_y0, own_y1, own_x0, own_x1: the image region whose output comes from this patch.
    """

    y0: int
    x0: int
    size_y: int
    size_x: int
    own_y0: int
    own_y1: int
    own_x0: int
    own_x1: int


def _starts(length: int, patch: int, overlap: int) -> list[int]:
    if patch >= length:
        return [0]
    stride = patch - overlap
    starts = list(range(0, length - patch, stride))
    starts.append(length - patch)
    return sorted(set(starts))


def _owned(starts: list[int], patch: int, length: int) -> list[tuple[int, int]]:
    bounds = [0]
    for a, b in itertools.pairwise(starts):
        bounds.append((b + min(a + patch, length)) // 2)  # middle of the overlap
    bounds.append(length)
    return list(itertools.pairwise(bounds))


def plan_tiles(
    height: int, width: int, patch: int | tuple[int, int], overlap: int = 0
) -> list[Tile]:
    """Tiles covering a ``height`` x ``width`` image with patches of ``patch`` pixels.

    Raises:
        InvalidInputError: non-positive sizes, or ``overlap`` >= ``patch``.
    """
    py, px = (patch, patch) if isinstance(patch, int) else patch
    if min(height, width, py, px) < 1 or overlap < 0:
        raise InvalidInputError(
            f"plan_tiles: got image {height}x{width}, patch {py}x{px}, overlap {overlap}; "
            "expected positive sizes and overlap >= 0"
        )
    py, px = min(py, height), min(px, width)
    if overlap >= min(py, px):
        raise InvalidInputError(
            f"plan_tiles: overlap {overlap} must be smaller than the patch ({py}x{px})"
        )
    ys, xs = _starts(height, py, overlap), _starts(width, px, overlap)
    oy, ox = _owned(ys, py, height), _owned(xs, px, width)
    return [
        Tile(y, x, py, px, oy[i][0], oy[i][1], ox[j][0], ox[j][1])
        for i, y in enumerate(ys)
        for j, x in enumerate(xs)
    ]


def split(image: np.ndarray, tiles: Sequence[Tile]) -> np.ndarray:
    """Cut ``image`` (``[C, H, W]``) into a batch ``[T, C, patch, patch]``."""
    if image.ndim != 3:
        raise InvalidInputError(
            f"split: got an array of shape {image.shape}, expected one image [C, H, W]"
        )
    return np.stack([image[:, t.y0 : t.y0 + t.size_y, t.x0 : t.x0 + t.size_x] for t in tiles])


def stitch(patches: np.ndarray, tiles: Sequence[Tile], height: int, width: int) -> np.ndarray:
    """Assemble per-patch outputs (``[T, C, patch, patch]``) into ``[C, height, width]``."""
    if len(patches) != len(tiles):
        raise InvalidInputError(f"stitch: got {len(patches)} patches for {len(tiles)} tiles")
    out = np.empty((patches.shape[1], height, width), dtype=patches.dtype)
    for p, t in zip(patches, tiles):
        out[:, t.own_y0 : t.own_y1, t.own_x0 : t.own_x1] = p[
            :, t.own_y0 - t.y0 : t.own_y1 - t.y0, t.own_x0 - t.x0 : t.own_x1 - t.x0
        ]
    return out


def run_tiled(
    target: Session | Executor,
    image: np.ndarray,
    *,
    patch: int,
    overlap: int = 0,
    batch_size: int = 4,
) -> np.ndarray:
    """Run ``image`` (``[C, H, W]``) through a model patch by patch and stitch the first output.

    Args:
        target: a :class:`nnperf.runtime.Session` (batches run one after another) or a
            :class:`nnperf.runtime.Runner` (batches submitted together, spread across its
            instances).
        image: one image, channels first.
        patch: patch side in pixels.
        overlap: pixels shared by neighbouring patches (>= 2x the receptive-field radius for an
            exact result).
        batch_size: patches per query (the last query may be smaller).
    """
    if batch_size < 1:
        raise InvalidInputError(f"batch_size: got {batch_size}, expected >= 1")
    _, height, width = image.shape
    tiles = plan_tiles(height, width, patch, overlap)
    batch = split(image, tiles)
    chunks = [batch[i : i + batch_size] for i in range(0, len(batch), batch_size)]
    if isinstance(target, Executor):
        futures: list[Future[list[np.ndarray]]] = [target.submit(c) for c in chunks]
        outs = [f.result()[0] for f in futures]
    else:
        outs = [target.run(c)[0] for c in chunks]
    return stitch(np.concatenate(outs), tiles, height, width)


@dataclass(frozen=True)
class TilingResult:
    """One patch size of :func:`sweep`.

    Attributes:
        patch: patch side (pixels).
        tiles: patches per image.
        latency_ms: median time for one whole image (split, run, stitch).
        megapixels_per_s: image pixels processed per second.
        engine_share: fraction of the time spent inside the engine (the rest: splitting,
            stitching, Python).
        max_abs_err: largest difference from a whole-image run (``None`` when not compared).
    """

    patch: int
    tiles: int
    latency_ms: float
    megapixels_per_s: float
    engine_share: float
    max_abs_err: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def sweep(
    model: ModelSource,
    image: np.ndarray,
    patch_sizes: Sequence[int],
    *,
    overlap: int = 0,
    batch_size: int = 4,
    repeats: int = 5,
    config: RunConfig | None = None,
) -> list[TilingResult]:
    """Throughput and engine share per patch size, each checked against a whole-image run."""
    from nnperf.runtime import RunEvent, Session

    cfg = run_config(config)
    _, height, width = image.shape
    engine_ns = [0]

    class _Obs:
        def on_run(self, event: RunEvent) -> None:
            engine_ns[0] += event.engine_end_ns - event.engine_start_ns

    results = []
    with Session(model, config=cfg) as sess:
        whole = sess.run(image[None])[0][0]
        obs = _Obs()
        for patch in patch_sizes:
            run_tiled(sess, image, patch=patch, overlap=overlap, batch_size=batch_size)  # warm
            times = []
            engine_ns[0] = 0
            sess.observers.add(obs)
            try:
                for _ in range(repeats):
                    t0 = time.perf_counter_ns()
                    out = run_tiled(
                        sess, image, patch=patch, overlap=overlap, batch_size=batch_size
                    )
                    times.append(time.perf_counter_ns() - t0)
            finally:
                sess.observers.remove(obs)
            median_ns = float(np.median(times))
            err = float(np.max(np.abs(out - whole))) if out.shape == whole.shape else None
            results.append(
                TilingResult(
                    patch=patch,
                    tiles=len(plan_tiles(height, width, patch, overlap)),
                    latency_ms=median_ns / 1e6,
                    megapixels_per_s=height * width / 1e6 / (median_ns / 1e9),
                    engine_share=engine_ns[0] / sum(times) if sum(times) else 0.0,
                    max_abs_err=err,
                )
            )
    return results
