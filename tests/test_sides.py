"""Which side a nerve is on when the field of view holds one side only (constructed volumes)."""
from __future__ import annotations

import numpy as np
import torch

from napari_ian.trainer.pipeline import Slices25D
from napari_ian.trainer.predict import predict_volume
from napari_ian.trainer.sides import (course_slope, crossed_midline, label_midline, lone_nerve_midline,
                                       side_from_course)


def _nerve(shape, code, start_col, slope, ap=(10, 50), row=15):
    """A 2-voxel-wide tube along AP whose column moves ``slope`` voxels per slice (1 mm voxels)."""
    lab = np.zeros(shape, np.uint8)
    for a in range(*ap):
        c = int(round(start_col + slope * (a - ap[0])))
        lab[a, row:row + 2, c:c + 2] = code
    return lab


def test_the_course_says_the_side_and_a_straight_or_short_one_says_nothing():
    shape = (60, 30, 80)
    right = _nerve(shape, 1, 30, -0.3) > 0       # runs towards the midline (larger columns) anteriorly
    left = _nerve(shape, 1, 45, 0.3) > 0
    assert course_slope(right, (1, 1, 1))[0] < -0.25 and course_slope(left, (1, 1, 1))[0] > 0.25
    assert side_from_course(right, (1, 1, 1)) == 1 and side_from_course(left, (1, 1, 1)) == 2
    assert side_from_course(_nerve(shape, 1, 30, 0.0) > 0, (1, 1, 1)) is None            # straight
    assert side_from_course(_nerve(shape, 1, 30, 0.3, ap=(10, 22)) > 0, (1, 1, 1)) is None   # 12 mm: too short


def test_the_ascending_stretch_alone_tells_its_side():
    """A view that holds mostly the stretch from the angle of the mandible up to the skull base
    (as the in-style render test17 does): the right nerve climbs, runs back a little and turns
    medially (to larger columns) as it climbs. Against the posterior distance alone it looked like
    a left nerve; against posterior + inferior it is the right one, and the mirrored view the left."""
    shape = (60, 80, 80)
    right = np.zeros(shape, bool)
    for k in range(50):
        a, r, c = 10 + int(0.6 * k), 70 - k, 20 + int(0.5 * k)
        right[a, r:r + 2, c:c + 2] = True
    idx = np.flatnonzero(right.any(axis=(1, 2)))
    cols = np.array([np.nonzero(right[i].any(axis=0))[0].mean() for i in idx])
    assert np.polyfit(idx, cols, 1)[0] > 0.5                  # what the posterior distance alone sees
    assert side_from_course(right, (1, 1, 1)) == 1
    assert side_from_course(right[:, :, ::-1], (1, 1, 1)) == 2


def test_where_the_course_cannot_tell_the_body_rule_does():
    """A left nerve that climbs one mm per mm it runs back (posterior + inferior stays the same, so
    that slope says nothing) still converges on the midline towards the chin: the posterior
    distance alone decides."""
    shape = (60, 80, 80)
    left = np.zeros(shape, bool)
    for a in range(10, 50):
        c = int(round(20 + 0.3 * (a - 10)))
        left[a, 70 - (a - 10):72 - (a - 10), c:c + 2] = True
    assert course_slope(left, (1, 1, 1))[1] < 5
    assert side_from_course(left, (1, 1, 1)) == 2
    assert side_from_course(left[:, :, ::-1], (1, 1, 1)) == 1


def test_a_course_that_bends_back_still_tells_its_side():
    """A left nerve that converges on the midline along most of its course, then bends back
    medially at its posterior end (towards the skull base) for a stretch: a least-squares line
    through it is nearly flat; the course still says left."""
    shape = (100, 30, 80)
    lab = _nerve(shape, 2, 10, 0.3, ap=(5, 65)) + _nerve(shape, 2, 28, -0.8, ap=(65, 90))
    ap = np.flatnonzero(lab.any(axis=(1, 2)))
    cols = np.array([np.nonzero(lab[i].any(axis=0))[0].mean() for i in ap])
    assert abs(np.polyfit(ap, cols, 1)[0]) < 0.1            # what a straight-line fit would see
    assert side_from_course(lab > 0, (1, 1, 1)) == 2


def test_a_lone_nerve_moves_to_its_side_and_a_pair_stays():
    shape = (60, 30, 80)
    lone_left_called_right = _nerve(shape, 1, 5, 0.3)            # a left nerve, right of a wrong mirror axis at 40
    assert lone_nerve_midline(lone_left_called_right, (1, 1, 1), 40) == 0
    lone_right = _nerve(shape, 1, 20, -0.3)                       # already on its side
    assert lone_nerve_midline(lone_right, (1, 1, 1), 40) == 40
    pair = _nerve(shape, 1, 30, -0.3) + _nerve(shape, 2, 50, 0.3)
    assert lone_nerve_midline(pair, (1, 1, 1), 40) == 40
    straight = _nerve(shape, 2, 60, 0.0)                          # its course cannot tell: the symmetry plane stands
    assert lone_nerve_midline(straight, (1, 1, 1), 40) == 40
    lone_right_called_left = _nerve(shape, 2, 70, -0.3)
    assert lone_nerve_midline(lone_right_called_left, (1, 1, 1), 40) == 80


def test_labels_split_by_side_where_the_symmetry_plane_does_not():
    lab = np.zeros((10, 5, 50), np.uint8)
    lab[:, 2, 5:8] = 2                     # only the left nerve labelled, left of a plane at column 25
    assert label_midline(lab, 25) == 0
    lab[:, 2, 40:42] = 1                   # a right nerve beyond the left one: nothing separates them
    assert label_midline(lab, 25) == 25
    lab = np.zeros((10, 5, 50), np.uint8)
    lab[:, 2, 5:8], lab[:, 2, 12:14] = 1, 2
    assert label_midline(lab, 25) == 10    # between them
    lab[:, 2, 12:14] = 0
    assert label_midline(lab, 25) == 25 and label_midline(lab, 6) == 50


class _Bright(torch.nn.Module):
    """A 'network' that calls bright voxels nerve."""

    def forward(self, x):
        return (x[:, x.shape[1] // 2:x.shape[1] // 2 + 1] > 1.5).float() * 20 - 10


def test_prediction_on_a_one_sided_field_of_view_labels_the_nerve_by_its_course():
    rng = np.random.default_rng(0)
    image = rng.normal(100, 5, (60, 30, 40)).astype(np.float32)
    image[:, :, 0:2] = image[:, :, 38:40] = 20      # dark bars: a mirror axis at column 19.5, beside the nerve
    truth = _nerve(image.shape, 2, 4, 0.3)          # the left nerve; the field of view stops short of the midline
    image[truth > 0] = 1000
    meta = {"network": "test", "preprocessing": Slices25D(context=1, spacing_mm=(1.0, 1.0, 1.0)).to_dict()}
    pred = predict_volume(image, _Bright(), meta, (1.0, 1.0, 1.0), device="cpu")
    assert (pred.labels == 2).sum() > 0.9 * (truth > 0).sum() and not (pred.labels == 1).any()
    assert pred.midline == 0 and "called left from its course" in pred.doubts[0]


def test_a_nerve_across_the_mirror_axis_moves_it_beside_the_nerve():
    """The mirror axis found ran through a nerve (a field of view off the head's centre): the sides
    divide at the nerve's edge on the side its course names, mirrored too."""
    shape = (60, 30, 80)
    right = _nerve(shape, 1, 30, -0.3) > 0                 # columns 30 -> 18, across a wrong axis at 25
    assert crossed_midline(right, (1, 1, 1), 25) == (32, 1)
    assert crossed_midline(right[:, :, ::-1], (1, 1, 1), 80 - 25) == (80 - 32, 2)
    # an axis beside the nerve, or a speck across it, moves nothing
    assert crossed_midline(right, (1, 1, 1), 40) == (40, None)
    speck = right.copy()
    speck[30, 5, 38:42] = True
    assert crossed_midline(speck, (1, 1, 1), 40) == (40, None)


def test_two_nerves_joined_across_the_axis_leave_it_where_it_is():
    """Both nerves in view, joined by a false piece in front of the chin: each part names its own
    side, so the piece is not one nerve and the symmetry plane stands."""
    shape = (60, 30, 80)
    pair = (_nerve(shape, 1, 30, -0.3) > 0) | (_nerve(shape, 1, 50, 0.3) > 0)
    pair[10, 15:17, 30:52] = True
    assert crossed_midline(pair, (1, 1, 1), 40) == (40, None)


def test_prediction_divides_the_sides_beside_a_nerve_the_mirror_axis_ran_through():
    rng = np.random.default_rng(0)
    image = rng.normal(100, 5, (60, 30, 40)).astype(np.float32)
    image[:, :, 4:7] = image[:, :, 34:37] = 20           # dark bars: a mirror axis at column 20.5
    truth = _nerve(image.shape, 1, 26, -0.3)              # the right nerve, columns 26 -> 14, across it
    image[truth > 0] = 1000
    meta = {"network": "test", "preprocessing": Slices25D(context=1, spacing_mm=(1.0, 1.0, 1.0)).to_dict()}
    pred = predict_volume(image, _Bright(), meta, (1.0, 1.0, 1.0), device="cpu")
    assert (pred.labels == 1).sum() > 0.9 * (truth > 0).sum() and not (pred.labels == 2).any()
    assert pred.midline == 28 and "right nerve crossed the mirror axis found" in pred.doubts[0]
