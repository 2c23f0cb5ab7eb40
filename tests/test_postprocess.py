"""Nerve-path post-processing on constructed probability maps: fragments joined, far blobs
dropped, true branches kept, sides kept apart."""
from __future__ import annotations

import numpy as np

from napari_ian.trainer.postprocess import PathSettings, nerve_path, one_nerve

SP = (0.8, 0.5, 0.5)


def _tube(shape, pts_vox, radius_mm, value=0.9, sp=SP, out=None):
    """Paint a tube of ``radius_mm`` around a polyline of voxel points into a float map."""
    out = np.zeros(shape, np.float32) if out is None else out
    grid = np.indices(shape).reshape(3, -1).T * np.asarray(sp)
    pts = np.asarray(pts_vox, float)
    dense = np.concatenate([np.linspace(a, b, 60) for a, b in zip(pts[:-1], pts[1:])]) * np.asarray(sp)
    from scipy.spatial import cKDTree
    d, _ = cKDTree(dense).query(grid, distance_upper_bound=radius_mm)
    flat = out.reshape(-1)
    flat[np.isfinite(d)] = np.maximum(flat[np.isfinite(d)], value)
    return out


def _nerve(shape=(90, 40, 40)):
    # a nerve running along AP, dipping a little in SI
    return [(5, 12, 20), (45, 20, 20), (85, 24, 22)]


def test_fragment_is_joined_across_a_gap_along_the_probable_path():
    shape = (90, 40, 40)
    prob = _tube(shape, _nerve(), 1.2)
    prob[40:48] = np.minimum(prob[40:48], 0.3)   # a faint stretch of 8 slices (6.4 mm): below 0.5
    mask, rep = one_nerve(prob, SP)
    assert rep.pieces == 2 and rep.bridges == 1 and rep.dropped == 0
    # the gap is filled: every coronal slice along the nerve has nerve voxels
    assert all(mask[i].any() for i in range(6, 85))
    # and the bridge follows the faint nerve, not a straight shortcut elsewhere
    faint = (prob > 0.2) & (prob < 0.5)
    assert (mask[40:48] & faint[40:48]).sum() >= 0.5 * mask[40:48].sum()


def test_far_blob_is_dropped_and_a_near_branch_is_kept():
    shape = (90, 40, 40)
    prob = _tube(shape, _nerve(), 1.2)
    # a bright blob about 9 mm beside the nerve (a lymph node), not along its course
    prob[48:52, 4:8, 34:38] = 0.95
    # a branch touching the nerve (a bifid canal) leaving it at slice 60
    prob = _tube(shape, [(60, 21, 21), (75, 14, 30)], 0.8, out=prob)
    mask, rep = one_nerve(prob, SP)
    assert not mask[48:52, 4:8, 34:38].any(), "the far blob must be dropped"
    assert rep.dropped == 1
    assert mask[74, 13:16, 29:32].any(), "the branch must be kept"


def test_far_piece_ahead_of_the_nerve_is_joined_but_one_beside_it_is_not():
    shape = (120, 40, 40)
    prob = _tube(shape, [(5, 20, 20), (60, 20, 20)], 1.2)
    prob = _tube(shape, [(78, 20, 20), (115, 20, 20)], 1.2, out=prob)    # 14 mm ahead, in line
    prob = _tube(shape, [(30, 4, 38), (45, 4, 38)], 1.0, out=prob)      # 13 mm aside, parallel
    mask, rep = one_nerve(prob, SP)
    assert mask[100, 18:23, 18:23].any(), "the piece in line with the nerve is joined"
    assert not mask[35, 3:6, 36:40].any(), "the parallel piece beside the nerve is dropped"
    assert rep.bridges == 1 and rep.dropped == 1
    assert all(mask[i].any() for i in range(6, 115))


def test_sides_are_split_at_the_midline_and_each_side_is_cleaned_alone():
    shape = (90, 40, 80)
    right = [(p[0], p[1], p[2]) for p in _nerve()]
    left = [(p[0], p[1], 80 - p[2]) for p in _nerve()]
    prob = _tube(shape, right, 1.2)
    prob = _tube(shape, left, 1.2, out=prob)
    prob[10:12, 35:37, 50:52] = 0.9        # a speck on the left, far from the left nerve
    labels, reps = nerve_path(prob, SP, midline=40)
    assert set(np.unique(labels[:, :, :40]).tolist()) == {0, 1}
    assert set(np.unique(labels[:, :, 40:]).tolist()) == {0, 2}
    assert reps[2].dropped == 1 and reps[1].dropped == 0
    assert reps[1].length_mm > 60


def test_empty_probability_gives_empty_labels():
    labels, reps = nerve_path(np.zeros((10, 10, 10), np.float32), SP, midline=5)
    assert not labels.any() and reps[1].pieces == 0 and reps[2].pieces == 0


def test_settings_are_honoured():
    shape = (90, 40, 40)
    prob = _tube(shape, _nerve(), 1.2)
    prob[40:48] = np.minimum(prob[40:48], 0.3)
    mask, rep = one_nerve(prob, SP, PathSettings(bridge_mm=3.0, far_mm=4.0))
    assert rep.bridges == 0 and rep.dropped == 1


def test_doubts_name_what_looks_unlike_one_nerve_per_side():
    from napari_ian.trainer.predict import doubts

    shape = (90, 40, 80)
    prob = _tube(shape, _nerve(), 1.2)
    prob = _tube(shape, [(p[0], p[1], 80 - p[2]) for p in _nerve()], 1.2, out=prob)
    labels, reps = nerve_path(prob, SP, midline=40)
    assert doubts(labels, prob, SP, reps) == []
    # a short, faint left nerve and no right one
    faint = np.zeros(shape, np.float32)
    faint = _tube(shape, [(40, 20, 60), (50, 20, 60)], 1.2, value=0.6, out=faint)
    labels, reps = nerve_path(faint, SP, midline=40)
    d = doubts(labels, faint, SP, reps)
    assert "no right nerve found" in d
    assert any(x.startswith("left nerve only") for x in d) and any("faint" in x for x in d)
    # a long gap bridged: named with its slices
    gap = _tube(shape, _nerve(), 1.2)
    gap[30:44] = np.minimum(gap[30:44], 0.3)
    labels, reps = nerve_path(gap, SP, midline=40)
    assert any("bridged over" in x and "coronal slices" in x for x in doubts(labels, gap, SP, reps))


def test_a_field_of_specks_beside_the_nerve_is_not_chained_into_it():
    """Specks each within reach of the next (textured tissue firing) must not be kept one after
    another just because the first one touches the nerve's fringe."""
    from napari_ian.trainer.postprocess import one_nerve

    prob = np.zeros((80, 40, 60), np.float32)
    prob[5:75, 20, 10] = 0.9                                  # the nerve: a straight tube along AP
    prob[5:75, 19:22, 9:12] = 0.9
    for x in range(13, 58, 2):                                # a row of specks 2 mm apart (not touching)
        prob[40, 20, x] = 0.8
    mask, rep = one_nerve(prob, (1.0, 1.0, 1.0))
    assert mask[40, 20, 13]                                    # the speck touching the nerve's fringe stays
    assert not mask[40, 20, 19:].any()                          # the chain beyond it does not
    assert rep.dropped >= 10


def test_a_long_false_piece_does_not_win_over_a_nerve_in_pieces():
    """The longest single piece is a vein-like streak; the nerve lies in three shorter pieces
    with small gaps. Tried as starts, the nerve's pieces grow into the longer, surer course."""
    shape = (120, 100, 60)
    prob = np.zeros(shape, np.float32)
    for a, b in ((5, 38), (44, 77), (83, 115)):                  # the nerve along AP: 26 mm pieces
        prob = _tube(shape, [(a, 50, 12), (b, 50, 12)], 1.2, value=0.95, out=prob)
    prob = _tube(shape, [(60, 10, 50), (60, 90, 50)], 1.2, value=0.7, out=prob)   # a 40 mm streak along SI
    mask, rep = one_nerve(prob, SP)
    assert all(mask[i, 48:53, 10:15].any() for i in range(6, 115)), "the nerve, its gaps bridged"
    assert not mask[60, 10:40, 48:53].any(), "the streak beside it is dropped"
    assert rep.bridges == 2 and rep.length_mm > 85
    only_longest, _ = one_nerve(prob, SP, PathSettings(seeds=1))   # the former rule: the longest piece
    assert only_longest[60, 10:90, 48:53].any() and not only_longest[20].any()
