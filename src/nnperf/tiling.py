"""``nnperf.tiling``: large images as overlapping patches (see :mod:`nnperf.optimize.tiling`)."""

from __future__ import annotations

from nnperf.optimize.tiling import Tile, TilingResult, plan_tiles, run_tiled, split, stitch, sweep

__all__ = ["Tile", "TilingResult", "plan_tiles", "run_tiled", "split", "stitch", "sweep"]
