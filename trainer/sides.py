"""Which side a lone nerve is on, from its course; where the sides of labelled volumes divide.

The head's symmetry plane (:func:`~napari_ian.trainer.preprocess.find_midline`) tells the sides
apart when both nerves are in view. A field of view that holds one side only has no such plane:
the mirror axis found then lies anywhere in the image, and a lone nerve may fall on the wrong side
of it. Its course says which side it is: each nerve lies furthest out near the angle of the
mandible and runs medially away from it at both ends, forwards along the mandible's body to the
chin and upwards from the mandibular foramen to the skull base. On the canonical grid (axis 0
runs posteriorly, axis 1 inferiorly, axis 2 towards the patient's left) the right nerve's column
therefore falls as ``posterior + inferior`` (mm) grows and the left one's rises, in either
stretch (:func:`course_slope`). Where that slope is too shallow to tell (a straight piece, or a
false stretch the post-processing joined on), the slope against the posterior distance alone
decides, which holds along the body only (:func:`body_slope`; the rule before the sixteenth stop,
which took a view of mostly the ascending stretch for the other side). On partial views of
labelled phantom nerves the two together called the wrong side far less often than the second
alone (``bench/bench_sides.py``, ``BENCHMARKS.md``).

A field of view off the head's centre can also put the mirror axis found straight through a
nerve; a nerve never crosses the midline, so the column then moves to that nerve's edge, on the
side its course names (:func:`crossed_midline`).
"""
from __future__ import annotations

import numpy as np

MIN_SLOPE = 0.15         # mm RL per mm of posterior + inferior
MIN_BODY_SLOPE = 0.1     # mm RL per mm of AP (the fallback)
MIN_EXTENT_MM = 20.0     # of the nerve along the coordinate each slope is read against
CROSS_MIN_MM = 5.0       # a nerve piece this long (along its course) on each side of the midline crosses it
LONE_OTHER_MM = 15.0     # a side whose labels run shorter than this (along their course) counts as empty
MAX_POINTS = 500         # voxels of the nerve the slope is read from (a fixed sample: same answer each time)


def _theil_sen(y, x) -> float:
    # the median of the pairwise slopes: a bridged or extra stretch would pull a least-squares line flat
    from scipy.stats import theilslopes

    return float(theilslopes(y, x)[0])


def course_slope(mask: np.ndarray, spacing) -> tuple[float, float]:
    """``(slope, extent)``: RL position (mm, towards the left) per mm of ``posterior + inferior``
    of the voxels of ``mask``, and the extent they cover along ``posterior + inferior`` (mm). NaN
    slope when the mask holds fewer than ten voxels."""
    sp = np.asarray(spacing, dtype=float)
    pts = np.argwhere(mask)
    if len(pts) < 10:
        return float("nan"), 0.0
    if len(pts) > MAX_POINTS:
        pts = pts[np.random.default_rng(0).choice(len(pts), MAX_POINTS, replace=False)]
    pts = pts * sp
    along = pts[:, 0] + pts[:, 1]
    if np.ptp(along) <= 0:
        return float("nan"), 0.0
    return _theil_sen(pts[:, 2], along), float(np.ptp(along))


def body_slope(mask: np.ndarray, spacing) -> tuple[float, float]:
    """``(slope, extent)``: RL position (mm, towards the left) per mm of AP (towards posterior) of
    the per-slice centroids of ``mask``, and the AP extent they cover (mm): the convergence on the
    chin along the mandible's body. NaN slope when the mask spans fewer than three slices."""
    sp = np.asarray(spacing, dtype=float)
    idx = np.flatnonzero(mask.any(axis=(1, 2)))
    if idx.size < 3:
        return float("nan"), 0.0
    cols = np.array([np.nonzero(mask[i].any(axis=0))[0].mean() for i in idx]) * sp[2]
    ap = idx * sp[0]
    return _theil_sen(cols, ap), float(ap.max() - ap.min())


def side_by(measure, min_slope: float, mask: np.ndarray, spacing) -> int | None:
    """1 (right) or 2 (left) from one slope (:func:`course_slope` or :func:`body_slope`): a column
    falling along the course is the right nerve; None when the slope is under ``min_slope`` or
    read over less than ``MIN_EXTENT_MM``."""
    slope, extent = measure(mask, spacing)
    if extent < MIN_EXTENT_MM or not np.isfinite(slope) or abs(slope) < min_slope:
        return None
    return 1 if slope < 0 else 2


def side_from_course(mask: np.ndarray, spacing) -> int | None:
    """1 (right) or 2 (left) for one nerve's mask, from its course; None when the course is too
    short or too straight to tell."""
    side = side_by(course_slope, MIN_SLOPE, mask, spacing)
    return side if side is not None else side_by(body_slope, MIN_BODY_SLOPE, mask, spacing)


def lone_nerve_midline(labels: np.ndarray, spacing, midline: int) -> int:
    """The column dividing the sides, corrected for a field of view that holds one nerve only.

    When one side of ``midline`` holds a nerve and the other (next to) nothing, and the nerve's
    course clearly says it is the other side, returns the image edge that puts the whole volume
    on that side (0: all left, the width: all right); otherwise ``midline``.
    """
    from .postprocess import _course_length

    sp = np.asarray(spacing, dtype=float)
    extent = {c: _course_length(np.argwhere(labels == c) * sp) for c in (1, 2)}   # along its own course
    present = [c for c in (1, 2) if extent[c] >= LONE_OTHER_MM]
    if len(present) != 1:     # both sides or neither: the symmetry plane stands
        return midline
    code = present[0]
    side = side_from_course(labels == code, spacing)
    if side is None or side == code:
        return midline
    return 0 if side == 2 else labels.shape[2]


def crossed_midline(nerve: np.ndarray, spacing, midline: int) -> tuple[int, int | None]:
    """The column dividing the sides, moved off a nerve that runs across it.

    A nerve never crosses the head's midline, so a piece of ``nerve`` (the model's confident
    voxels, bool) that runs on both sides of ``midline`` for at least ``CROSS_MIN_MM`` along its
    course each says the mirror axis found is not the head's (a field of view off the head's
    centre, or one side's only). The largest such piece is then one nerve: when its course names
    its side (:func:`side_from_course`), the column moves to the piece's edge so that it lies wholly
    on that side. A piece whose two parts name opposite sides is both nerves joined by something
    in between, and moves nothing.

    Returns
    -------
    midline : int
        The new dividing column, or ``midline`` when nothing crosses it or the side is unclear.
    side : int or None
        The crossing nerve's side (1 right, 2 left) when the column moved.
    """
    from scipy import ndimage

    from .postprocess import _course_length

    sp = np.asarray(spacing, dtype=float)
    comp, _ = ndimage.label(nerve, structure=np.ones((3, 3, 3)))
    best = None
    for i, box in enumerate(ndimage.find_objects(comp), start=1):
        if box is None or box[2].start >= midline or box[2].stop <= midline:
            continue
        pts = np.argwhere(comp[box] == i) + [s.start for s in box]
        parts = pts[pts[:, 2] < midline], pts[pts[:, 2] >= midline]
        if min(_course_length(part * sp) for part in parts) < CROSS_MIN_MM:
            continue
        if best is None or len(pts) > len(best[0]):
            best = pts, parts
    if best is None:
        return midline, None
    pts, parts = best

    def mask_of(p):
        m = np.zeros(nerve.shape, bool)
        m[tuple(p.T)] = True
        return m

    if [side_from_course(mask_of(p), sp) for p in parts] == [1, 2]:
        return midline, None
    side = side_from_course(mask_of(pts), sp)
    if side is None:
        return midline, None
    return (int(pts[:, 2].max()) + 1 if side == 1 else int(pts[:, 2].min())), side


def label_midline(labels: np.ndarray, fallback: int) -> int:
    """A column with the right labels (1) before it and the left ones (2) from it on, for splitting
    a labelled volume by side; ``fallback`` (the symmetry plane) when both sides are labelled and
    it already separates them, or when nothing does."""
    cols = {c: np.nonzero((labels == c).any(axis=(0, 1)))[0] for c in (1, 2)}
    r, l_ = cols[1], cols[2]
    if r.size and l_.size:
        if r.max() < fallback <= l_.min() or r.max() >= l_.min():
            return fallback
        return int((r.max() + 1 + l_.min()) // 2)
    if r.size:
        return fallback if r.max() < fallback else labels.shape[2]
    if l_.size:
        return fallback if l_.min() >= fallback else 0
    return fallback
