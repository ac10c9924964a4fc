"""Tiling: plan, split, stitch, run batched or across instances, sweep."""

from __future__ import annotations

import numpy as np
import pytest
from models import small_fcn

from nnperf import create, create_runner
from nnperf.errors import InvalidInputError
from nnperf.optimize.tiling import plan_tiles, run_tiled, split, stitch, sweep

IMG = np.random.default_rng(0).random((3, 50, 70), dtype=np.float32)


def test_plan_covers_every_pixel_once() -> None:
    tiles = plan_tiles(50, 70, 24, overlap=6)
    owned = np.zeros((50, 70), dtype=int)
    for t in tiles:
        owned[t.own_y0 : t.own_y1, t.own_x0 : t.own_x1] += 1
        assert t.y0 + t.size_y <= 50 and t.x0 + t.size_x <= 70
    assert (owned == 1).all()


def test_split_stitch_roundtrip() -> None:
    tiles = plan_tiles(50, 70, 16, overlap=4)
    patches = split(IMG, tiles)
    assert patches.shape == (len(tiles), 3, 16, 16)
    np.testing.assert_array_equal(stitch(patches, tiles, 50, 70), IMG)


def test_tiled_equals_whole_image_with_enough_overlap() -> None:
    m = small_fcn()
    with create(m, device="cpu(1)") as sess:
        whole = sess.run(IMG[None])[0][0]
        tiled = run_tiled(sess, IMG, patch=20, overlap=4, batch_size=3)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    with create_runner(m, device="cpu(1)*2") as runner:
        across = run_tiled(runner, IMG, patch=20, overlap=4, batch_size=2)
    np.testing.assert_allclose(across, whole, atol=1e-5)


def test_sweep_reports_each_patch_size() -> None:
    results = sweep(small_fcn(), IMG, [16, 32], overlap=4, repeats=2)
    assert [r.patch for r in results] == [16, 32]
    assert results[0].tiles > results[1].tiles
    for r in results:
        assert 0.0 < r.engine_share <= 1.0 and r.megapixels_per_s > 0
        assert r.max_abs_err is not None and r.max_abs_err < 1e-5


def test_bad_plans() -> None:
    with pytest.raises(InvalidInputError, match="overlap"):
        plan_tiles(50, 50, 8, overlap=8)
    with pytest.raises(InvalidInputError):
        split(IMG[None], plan_tiles(50, 70, 16))
