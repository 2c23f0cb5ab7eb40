"""Boxes around things in a volume (napari_ian/trainer/boxes.py): widened, clipped, at least a size."""
from __future__ import annotations

import numpy as np
import pytest

from napari_ian.trainer.boxes import margin_voxels, mask_box, widened_box


def test_a_margin_in_mm_is_whole_voxels_rounded_up_per_axis():
    assert margin_voxels(12.0, (0.8, 0.5, 0.43)).tolist() == [15, 24, 28]
    assert margin_voxels(0.0, (1.0, 2.0)).tolist() == [0, 0]
    with pytest.raises(ValueError, match="positive spacings"):
        margin_voxels(1.0, (1.0, 0.0))
    with pytest.raises(ValueError, match="margin >= 0"):
        margin_voxels(-1.0, (1.0, 1.0))


def test_a_box_is_widened_on_each_side_and_clipped_to_the_volume():
    assert widened_box([5, 0], [8, 3], [2, 2], (20, 4)) == (slice(3, 10), slice(0, 4))
    assert widened_box([5, 5], [8, 8], 0, (20, 20)) == (slice(5, 8), slice(5, 8))
    # a start before the volume (a coarse pass's neighbour of slice 0) is clipped like the rest
    assert widened_box([-3, 2], [4, 30], [1, 1], (20, 25)) == (slice(0, 5), slice(1, 25))


def test_a_short_box_grows_about_its_centre_to_the_least_size_the_volume_allows():
    # centred where there is room ...
    assert widened_box([10], [12], [1], (100,), least=[20]) == (slice(1, 21),)
    assert widened_box([40], [42], [0], (100,), least=[20]) == (slice(31, 51),)
    # ... moved inside at an edge, and the whole axis when the volume is shorter than the least size
    assert widened_box([97], [99], [0], (100,), least=[20]) == (slice(80, 100),)
    assert widened_box([2], [4], [0], (10,), least=[20]) == (slice(0, 10),)
    # a box already as long is left alone
    assert widened_box([0], [30], [0], (100,), least=[20]) == (slice(0, 30),)


def test_the_box_of_a_mask_holds_every_true_voxel_and_none_is_none():
    m = np.zeros((6, 7, 8), bool)
    assert mask_box(m) is None
    m[1, 2, 3] = m[4, 5, 3] = True
    box = mask_box(m, pad=1)
    assert box == (slice(0, 6), slice(1, 7), slice(2, 5))
    assert m[box].sum() == m.sum()
