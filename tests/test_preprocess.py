"""The paper's preprocessing made automatic, and its exact inverse."""
from __future__ import annotations

import numpy as np

from napari_ian.trainer.preprocess import (find_midline, fit, fit_transform, merge_sides, minmax,
                                           prepare_slices, split_sides, unfit)


def test_fit_preserves_aspect_and_centres():
    tf = fit_transform((60, 150), (256, 256))
    assert tf.resized == (102, 256) and tf.offset == (77, 0)
    img = np.arange(60 * 150, dtype=np.float32).reshape(60, 150)
    out = fit(minmax(img), tf, "image")
    assert out.shape == (256, 256)
    assert np.all(out[:77] == 0) and np.all(out[77 + 102:] == 0)   # zero padding above and below


def test_masks_stay_binary_and_the_inverse_is_exact_geometry():
    tf = fit_transform((60, 150), (64, 160))
    mask = np.zeros((60, 150), np.float32)
    mask[20:26, 40:60] = 1
    m = fit(mask, tf, "mask")
    assert set(np.unique(m)) <= {0.0, 1.0}
    back = unfit(m, tf) > 0.5
    assert back.shape == (60, 150)
    # the block comes back where it was (to within a pixel at its border)
    assert np.abs(back.astype(int) - mask.astype(int)).sum() <= 2 * (6 + 20)
    # identity sizes: exact
    tf1 = fit_transform((64, 160), (64, 160))
    r = np.random.default_rng(0).random((64, 160)).astype(np.float32)
    np.testing.assert_array_equal(unfit(fit(r, tf1), tf1), r)


def test_sides_split_mirror_and_merge_back():
    vol = np.random.default_rng(1).random((5, 6, 20)).astype(np.float32)
    halves = split_sides(vol, 9)
    assert halves[1].shape == (5, 6, 9) and halves[2].shape == (5, 6, 11)
    # both halves run lateral -> medial: column 0 of the left half is the volume's last column
    np.testing.assert_array_equal(halves[2][:, :, 0], vol[:, :, -1])
    np.testing.assert_array_equal(merge_sides(halves, 9, vol.shape), vol)


def test_midline_found_on_the_phantom(phantom):
    image, labels, spacing, info = phantom
    mid = find_midline(image)
    # the nerves lie symmetric about it: their mean distances from the midline agree within 4 mm
    r = np.argwhere(labels == 1)[:, 2].mean()
    l_ = np.argwhere(labels == 2)[:, 2].mean()
    assert abs((mid - r) - (l_ - mid)) * spacing[2] < 4.0


def test_prepare_slices_context_channels():
    half = np.stack([np.full((8, 10), i, np.float32) + np.eye(8, 10, dtype=np.float32) for i in range(4)])
    x, _, tf = prepare_slices(half, (16, 16), k=3)
    assert x.shape == (4, 3, 16, 16)
    # slice 0's first channel repeats slice 0 (edge), slice 2's channels are slices 1, 2, 3
    np.testing.assert_allclose(x[0, 0], x[0, 1])
    np.testing.assert_allclose(x[2, 0], x[1, 1])
    np.testing.assert_allclose(x[2, 2], x[3, 1])
