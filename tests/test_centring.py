"""Centring a traced path on the nerve (:mod:`napari_ian.trainer.centring`)."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from napari_ian.trainer.centring import centred_curve, resample_polyline

SP = np.array([0.8, 0.5, 0.5])
SHAPE = (60, 40, 50)


def _oblique_nerve(sigma_mm=0.6):
    """A straight oblique nerve whose centre runs between voxels, and a field peaking on it."""
    t = np.linspace(0.0, 1.0, 400)[:, None]
    centre = (np.array([5.0, 20.3, 10.4]) + t * np.array([50.0, 0.0, 28.0])) * SP      # mm
    grid = np.indices(SHAPE).reshape(3, -1).T * SP
    d = cKDTree(centre).query(grid)[0].reshape(SHAPE)
    field = np.exp(-d ** 2 / (2 * sigma_mm ** 2))
    return centre, field


def _inner(curve, centre, end_mm=2.0):
    """The curve's points more than ``end_mm`` from either end of the nerve."""
    along = (curve - centre[0]) @ (centre[-1] - centre[0]) / np.linalg.norm(centre[-1] - centre[0])
    return curve[(along > end_mm) & (along < np.linalg.norm(centre[-1] - centre[0]) - end_mm)]


def test_a_staircase_path_beside_the_nerve_is_moved_onto_its_centre():
    centre, field = _oblique_nerve()
    # the path a minimal path would give on the nerve's flank: voxels 0.7 mm off its centre
    path = np.unique(np.rint(centre / SP + [0.0, 1.4, 0.0]).astype(int), axis=0)
    path = path[np.argsort(path[:, 0] * 1000 + path[:, 2])]
    tree = cKDTree(resample_polyline(centre, 0.05))
    assert np.median(tree.query(path * SP)[0]) > 0.5
    curve = centred_curve(path * SP, field, SP, search_mm=1.0)
    assert np.linalg.norm(np.diff(curve, axis=0), axis=1).max() < 0.3     # dense enough to measure from
    assert tree.query(_inner(curve, centre))[0].max() < 0.1


def test_where_nothing_stands_out_the_curve_stays_on_the_smoothed_path_and_moves_at_most_search_mm():
    centre, field = _oblique_nerve()
    path = np.unique(np.rint(centre / SP).astype(int), axis=0)
    path = path[np.argsort(path[:, 0] * 1000 + path[:, 2])]
    flat = centred_curve(path * SP, np.zeros(SHAPE), SP)
    assert cKDTree(path * SP).query(flat)[0].max() < 0.5          # the staircase smoothed
    assert np.linalg.norm(flat[[0, -1]] - path[[0, -1]] * SP, axis=1).max() < 1e-9    # its ends kept
    assert np.all(flat == centred_curve(path * SP, -field, SP))     # nothing stands out: not moved
    # a nerve 2 mm away is beyond a 0.5 mm search: the curve moves towards it, 0.5 mm at most
    moved = centred_curve(path * SP, np.roll(field, 4, axis=1), SP, search_mm=0.5)
    shift = np.linalg.norm(moved - flat, axis=1)
    assert shift.max() <= 0.5 + 1e-9 and np.median(shift) > 0.4


def test_one_bright_voxel_beside_the_nerve_does_not_pull_the_curve_off_it():
    centre, field = _oblique_nerve()
    path = np.unique(np.rint(centre / SP).astype(int), axis=0)
    path = path[np.argsort(path[:, 0] * 1000 + path[:, 2])]
    spiked = field.copy()
    mid = np.rint(centre[200] / SP).astype(int) + [0, 2, 0]        # 1 mm beside the centre
    spiked[tuple(mid)] = 50.0
    tree = cKDTree(resample_polyline(centre, 0.05))
    # (0.7 mm off when the discs reaching the spike were centred like the others: it was all of
    # their upper half)
    assert tree.query(_inner(centred_curve(path * SP, spiked, SP), centre))[0].max() < 0.25


def test_where_the_nerve_shows_with_the_other_sign_the_curve_is_not_pulled_onto_what_lies_beside_it():
    """A stretch where the nerve is dark in a field signed for a bright one (its contrast changes
    sign along the course): the field is negative under the path and something positive lies
    0.8 mm to one side; the curve stays on the path (it moved onto the positive side before)."""
    centre, field = _oblique_nerve()
    beside = np.roll(field, 2, axis=2)              # the same tube 1 mm to one side (RL)
    flipped = -field + 0.6 * beside
    path = np.unique(np.rint(centre / SP).astype(int), axis=0)
    path = path[np.argsort(path[:, 0] * 1000 + path[:, 2])]
    flat = centred_curve(path * SP, np.zeros(SHAPE), SP)         # the smoothed path, not moved
    moved = np.linalg.norm(centred_curve(path * SP, flipped, SP) - flat, axis=1)
    assert moved.max() < 0.1
