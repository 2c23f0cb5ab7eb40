"""Click-prompted segmentation: a few clicks on a nerve give the whole nerve.

Positive clicks (1 = right, 2 = left) lie on a nerve, negative clicks (0) on what is not nerve. Per
side, the positive clicks are put in order along the nerve (the shortest open path through them),
and consecutive clicks are joined by a minimal path through a cost that is low where the model's
nerve probability is high (its short gaps half filled by a blurred copy of it, so that a gap the
model left costs the path a few millimetres, not a detour) and, where the model is unsure, where
the image stands out of its surroundings as the nerve does at the clicks (a local contrast, the
image over a nerve's core less its surroundings': bright on MR neurography, but its sign and
strength are read from the clicks, so a dark nerve of another sequence is followed too, and a bias
field does not move it); negative clicks make the cost very high around them. Where the clicks
stand out of nothing (no image guide) the cost also rises away from the smooth curve through the
clicks (:func:`smooth_course`), so where the model is silent too the path bends with the nerve
instead of cutting straight chords.

The result along that path: the pieces of the model's nerve (probability > 0.5) the path runs
through, kept whole (so the model's own outline, and the nerve beyond the end clicks as far as the
model follows it), and pieces away from the path dropped. Where the model has no piece near the
path, a tube is drawn: the nerve's width from the model's probability near the path (and, where the
model is silent, the voxels whose intensity is nearer the path's than the surroundings' and whose
local contrast reaches its value at the nerve's edge: where, near the clicks, the image falls half
way from the nerve to its surroundings, and no farther from the path than that edge), never wider
than ``max_radius_mm`` and never thinner than a core of ``core_radius_mm``. Where the image guides,
that width is measured from the path smoothed and moved onto the ridge of the local contrast
(:func:`.centring.centred_curve`, at most ``centre_search_mm``), not from its voxel staircase,
which runs anywhere on the nerve. Past a gap, the model's
pieces that continue the clicked nerve beyond an end are joined by the post-processing's rules
(:func:`.postprocess.grow_from`: ahead of an end, within reach, bridged along the probability;
pieces beside the course are not); a piece lying wholly ahead of an end click, as near as the
automatic post-processing keeps pieces (``keep_mm``), is kept as that keeps it: the clicks do not
say where the nerve runs beyond them, and it may turn sharply at its end. Beyond an end where
nothing goes on (the model silent there, or no model), the nerve is tracked along the image's local
contrast while it keeps about a third of the clicked nerve's (past fades of up to 3 mm: a nerve
leaving its canal fades), for at most one click spacing, and drawn thin. One click takes the whole
model piece it points at, and the pieces that continue it past a gap (by the same
:func:`.postprocess.grow_from` rules); one click in a gap of the model's nerve, with no piece
within ``end_reach_mm`` but two pieces whose ends face each other across it within
``gap_reach_mm``, is taken as three clicks: those two ends and itself. Anything within
``negative_radius_mm`` of a negative click is left out, and a model piece a negative click points
at is never joined.

:class:`InteractiveSession` keeps the clicks and recomputes only the side whose clicks changed,
in well under a second on a laptop CPU once the probability map exists.
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from scipy import ndimage

from .annotate import tube_of_curve
from .boxes import margin_voxels, widened_box
from .centring import centred_curve
from .normalise import normalise
from .postprocess import PathSettings, ball_offsets, grow_from
from .volume import SIDES


@dataclasses.dataclass
class InteractiveSettings:
    """Distances in mm; weights of the path cost."""

    max_radius_mm: float = 2.2
    core_radius_mm: float = 0.8
    negative_radius_mm: float = 2.5
    margin_mm: float = 6.0          # how far a path may leave the box of its two clicks ...
    margin_share: float = 0.25      # ... or this share of their distance, where more (a nerve bends off the chord between far clicks) ...
    max_margin_mm: float = 10.0     # ... up to this (the path's cost map grows with the box: one click stays under a second)
    probability_weight: float = 0.75
    floor: float = 0.02
    end_reach_mm: float = 3.0       # the model's nerve is followed beyond an end click it passes within this
    gap_reach_mm: float = 10.0      # a lone click in a gap joins two model pieces whose ends face each other this near it
    touch_mm: float = 1.5           # a model piece this close to the clicked path is the nerve (2+ clicks)
    covered_mm: float = 0.75        # ... and the path is drawn as a tube where no such piece is this close
    core_sigma_mm: float = 0.6      # the local contrast: the image smoothed over a nerve's core ...
    surround_sigma_mm: float = 3.0  # ... less the image smoothed over its surroundings
    min_contrast: float = 0.02      # below this (0-1 scale) a contrast guides nothing: no image guide, core-only tube
    spline_mm: float = 0.5          # ... and then, where the model is silent, the path keeps near the smooth curve through the clicks (cost x (1 + (d / this)^2))
    half_contrast: float = 0.5      # the drawn nerve's edge where it cannot be read (:func:`nerve_edge`): this share of the clicks' contrast
    track_contrast: float = 0.35    # beyond an end, a step finds the nerve where its local contrast is this share of the clicks' (a nerve leaving its canal fades)
    track_search_mm: float = 1.0    # beyond an end the model does not go on: each 0.5 mm step re-centres this far sideways ...
    track_fade_mm: float = 3.0      # ... and the tracking stops where the nerve has stayed below track_contrast this long
    bridge_sigma_mm: float = 3.0    # the path's cost also sees the model's nerve blurred this much (its short gaps half filled) ...
    bridge_weight: float = 0.5      # ... at most at this probability
    centre_search_mm: float = 1.0   # where the image guides, the width (and the track beyond an end) is drawn around the path moved this far at most onto the nerve's centre (0: the width around the voxel path, the track around its steps)


def bridged_probability(prob: np.ndarray, spacing, sigma_mm: float, weight: float) -> np.ndarray:
    """``prob`` blurred (Gaussian, ``sigma_mm``) and scaled so that along the model's nerve (its
    median where ``prob`` > 0.5) it reads ``weight``, at most ``weight`` anywhere (float32).

    A short gap in the model's nerve then costs a clicked path a few millimetres, not as much as
    a long detour along another structure (a 5 mm gap cost as much as 40 mm of detour, and two
    clicks across a bend took a 13 mm shortcut: a phantom case). Zero where the model sees no nerve.
    """
    blur = ndimage.gaussian_filter(prob, sigma_mm / np.asarray(spacing, dtype=float))
    on = prob > 0.5
    level = float(np.median(blur[on])) if on.any() else 0.0
    if level <= 0:
        return np.zeros_like(prob)
    return np.minimum(blur / level, 1.0).astype(np.float32) * np.float32(weight)


def order_clicks(points_mm: np.ndarray) -> np.ndarray:
    """Indices putting points in order along a curve: the shortest open path through them
    (exhaustive up to 8 points, then nearest neighbour + 2-opt)."""
    pts = np.asarray(points_mm, dtype=float)
    n = len(pts)
    if n <= 2:
        return np.arange(n)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=2)
    if n <= 8:
        best, best_len = None, np.inf
        for perm in itertools.permutations(range(n)):
            if perm[0] > perm[-1]:
                continue   # a path and its reverse are the same
            length = sum(d[a, b] for a, b in zip(perm[:-1], perm[1:]))
            if length < best_len:
                best, best_len = perm, length
        return np.asarray(best)
    start = int(np.argmax(d.sum(axis=1)))
    order = [start]
    left = set(range(n)) - {start}
    while left:
        nxt = min(left, key=lambda j: d[order[-1], j])
        order.append(nxt)
        left.remove(nxt)
    improved = True
    while improved:
        improved = False
        for i in range(1, n - 1):
            for j in range(i + 1, n):
                a, b = order[i - 1], order[i]
                c = order[j]
                e = order[j + 1] if j + 1 < n else None
                old = d[a, b] + (d[c, e] if e is not None else 0)
                new = d[a, c] + (d[b, e] if e is not None else 0)
                if new < old - 1e-9:
                    order[i:j + 1] = order[i:j + 1][::-1]
                    improved = True
    return np.asarray(order)


def _around(arr: np.ndarray, pts: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``arr``'s values at each point plus each offset, (points, offsets); offsets that leave
    ``arr`` are moved back onto its edge (still no farther from their point, so a ball of offsets
    around a point inside ``arr`` stays within that ball)."""
    idx = np.clip(np.asarray(pts, int)[:, None, :] + offsets[None], 0, np.asarray(arr.shape) - 1)
    return arr[tuple(idx.transpose(2, 0, 1))]


_CUBE = np.argwhere(np.ones((3, 3, 3), bool)) - 1     # a voxel and its 26 neighbours


def nerve_edge(image, contrast, distance_mm, max_radius_mm, step_mm=0.25):
    """A nerve's edge: the local contrast there, and its distance from the centre.

    The local contrast is smoothed (to keep noise out), so its half maximum lies outside the
    nerve's edge, the more so the thinner the nerve. The edge is read from the image itself
    instead: the mean image against the distance from the nerve's centre falls half way from the
    centre's value to the surroundings' (beyond ``max_radius_mm`` + 0.5 mm) at the edge.

    Parameters
    ----------
    image, contrast, distance_mm : 1D arrays of the same length
        For voxels around a stretch of nerve: the image (nerve positive: multiply a dark nerve's
        by -1), the local contrast (any scale), and the distance from the centre.
    max_radius_mm : float
        The widest nerve; farther voxels are the surroundings.
    step_mm : float
        Width of the distance bins the mean image is read in.

    Returns
    -------
    (float, float) or None
        The mean smoothed contrast at the edge (in the units of ``contrast``) and the edge's
        distance from the centre (mm); None where no edge can be read: no surroundings, no nerve
        above them, or an image that does not fall below half way.
    """
    edges = np.arange(0.0, max_radius_mm + 1.5 + step_mm, step_mm)
    idx = np.digitize(distance_mm, edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1) & np.isfinite(image) & np.isfinite(contrast)
    n = np.bincount(idx[ok], minlength=len(edges) - 1)
    mean_img = np.bincount(idx[ok], weights=image[ok], minlength=len(edges) - 1) / np.maximum(n, 1)
    mean_con = np.bincount(idx[ok], weights=contrast[ok], minlength=len(edges) - 1) / np.maximum(n, 1)
    centres = edges[:-1] + step_mm / 2
    far = (centres > max_radius_mm + 0.5) & (n > 0)
    has = n > 0
    if not far.any() or not has[~far].any():
        return None
    background = float(np.average(mean_img[far], weights=n[far]))
    c, im, con = centres[has], mean_img[has], mean_con[has]
    half = (im[0] + background) / 2
    below = np.nonzero(im < half)[0]
    if im[0] <= background or not below.size or con[0] <= 0:
        return None
    k = below[0]
    radius = c[k - 1] + (im[k - 1] - half) / (im[k - 1] - im[k]) * (c[k] - c[k - 1])
    return float(np.interp(radius, c, con)), float(radius)


def smooth_course(points_mm: np.ndarray, step_mm: float = 0.25) -> np.ndarray:
    """The smooth curve (mm, ``(n, 3)``) through ordered points, sampled about every ``step_mm``:
    a cubic spline in the distance along the points' polyline (not-a-knot ends; a parabola through
    three points, the chord between two). Through five points on a semicircle it stays within
    1 % of the radius, where straight chords cut 8 % inside."""
    from scipy.interpolate import CubicSpline

    pts = np.asarray(points_mm, float)
    u = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    n = max(2, int(np.ceil(u[-1] / step_mm)) + 1)
    if len(pts) < 3 or u[-1] <= 0:
        return pts[0] + np.linspace(0.0, 1.0, n)[:, None] * (pts[-1] - pts[0])
    keep = np.concatenate([[True], np.diff(u) > 0])      # (a repeated point would stop the spline)
    return CubicSpline(u[keep], pts[keep], bc_type="not-a-knot")(np.linspace(0.0, u[-1], n))


def _near(shape, pts, radius_mm, sp) -> np.ndarray:
    """Boolean mask of voxels within ``radius_mm`` of voxel points."""
    out = np.zeros(shape, bool)
    if len(pts) == 0:
        return out
    idx = (np.asarray(pts, int)[:, None, :] + ball_offsets(radius_mm, sp)[None]).reshape(-1, 3)
    ok = np.all((idx >= 0) & (idx < np.asarray(shape)), axis=1)
    out[tuple(idx[ok].T)] = True
    return out


class InteractiveSession:
    """Clicks on one volume and the nerves they give.

    Parameters
    ----------
    image : (AP, SI, RL) ndarray
        The canonical image (NaN allowed).
    spacing : 3 floats, mm
    probability : ndarray, optional
        The model's nerve probability on the same grid (:func:`napari_ian.trainer.predict.predict_volume`);
        without it the paths follow the image's local contrast alone.
    settings : InteractiveSettings, optional
        Fixed for the session's life, like the image and the probability (courses are cached).
    """

    def __init__(self, image, spacing, probability=None, settings: InteractiveSettings | None = None):
        self.shape = tuple(image.shape)
        self.sp = np.asarray(spacing, dtype=float)
        self.st = settings or InteractiveSettings()
        self.norm = normalise(image)          # not clipped: the nerve's edge is read from it
        bright = np.clip(self.norm, 0.0, 1.5) / 1.5     # the common scale, 0-1
        # the image over a nerve's core less its surroundings': a nerve stands out of what is around
        # it (bright on MR neurography, dark or grey on other sequences) wherever a bias field or a
        # coil's falloff puts its own level
        core = ndimage.gaussian_filter(bright, self.st.core_sigma_mm / self.sp)
        self.local_contrast = core - ndimage.gaussian_filter(bright, self.st.surround_sigma_mm / self.sp)
        del bright
        self.prob = None if probability is None else np.asarray(probability, dtype=np.float32)
        self._pieces = None           # the model's nerve pieces (labelled once, on first use)
        self._piece_mm3 = None        # ... and their volumes
        # what the path's cost reads: the probability, its short gaps half filled (computed now,
        # with the probability, not in the first click's time)
        self._path_prob = None if self.prob is None else np.maximum(
            self.prob, bridged_probability(self.prob, self.sp, self.st.bridge_sigma_mm, self.st.bridge_weight))
        self._courses = {}            # side: (its clicks and the negatives, its course)
        self.clicks: list[tuple[np.ndarray, int]] = []

    # -- clicks ------------------------------------------------------------------------------
    def set_clicks(self, clicks) -> set:
        """Replace all clicks (``[(voxel (ap, si, rl), label)]``); returns the sides that changed."""
        old = {s: self._side_clicks(s) for s in (1, 2)}
        old_negatives = self._negatives_key()
        new = [(np.asarray(v, float), int(lab)) for v, lab in clicks]
        for v, lab in new:
            if lab not in (0, 1, 2):
                raise ValueError(f"click label {lab}: use 1 (right nerve), 2 (left nerve) or 0 (not nerve)")
            if np.any(v < -0.5) or np.any(v > np.asarray(self.shape) - 0.5):
                raise ValueError(f"click at voxel {tuple(np.round(v, 1))} lies outside the image {self.shape}")
        # a click on the image's outer half-voxel belongs to the edge voxel
        self.clicks = [(np.clip(v, 0, np.asarray(self.shape) - 1), lab) for v, lab in new]
        negs_changed = old_negatives != self._negatives_key()
        return {s for s in (1, 2) if negs_changed or not _same(old[s], self._side_clicks(s))}

    def _side_clicks(self, side):
        return [v for v, lab in self.clicks if lab == side]

    def _course_points(self, side):
        """The points ``side``'s course joins: its clicks, or for one click in a gap of the
        model's nerve, the two facing ends of the gap and the click (:meth:`_gap_ends`)."""
        pts = self._side_clicks(side)
        if len(pts) != 1 or self.prob is None or self._pieces_near(np.rint(pts[0]).astype(int)).size:
            return pts
        ends = self._gap_ends(pts[0])
        return pts if ends is None else [ends[0], pts[0], ends[1]]

    def _gap_ends(self, point):
        """Voxels ``(a, b)`` of two of the model's pieces whose ends face each other across
        ``point`` (a click where the model's nerve has a gap), or ``None``.

        Within ``gap_reach_mm`` of the click, each piece's voxel nearest to it; a pair qualifies
        when those two lie on opposite sides of the click (at least 120 degrees apart as seen
        from it) and the click lies within ``end_reach_mm`` of the straight line between them.
        Of those, the pair closest together. A click beside one continuous piece, or off to the
        side of a gap, finds none; pieces smaller than the post-processing bridges to are ignored.
        """
        st = self.st
        here = np.asarray(point, float)
        idx = np.rint(here).astype(int) + ball_offsets(st.gap_reach_mm, self.sp)
        idx = idx[np.all((idx >= 0) & (idx < np.asarray(self.shape)), axis=1)]
        labs = self._model_pieces()[tuple(idx.T)]
        if self._piece_mm3 is None:
            self._piece_mm3 = np.bincount(self._model_pieces().ravel()) * float(np.prod(self.sp))
        keep = (labs > 0) & (self._piece_mm3[labs] >= PathSettings().min_bridge_mm3)
        idx, labs = idx[keep], labs[keep]
        nearest = {}
        for lab in np.unique(labs):
            mine = idx[labs == lab]
            nearest[lab] = mine[np.argmin(np.linalg.norm((mine - here) * self.sp, axis=1))]
        best, best_gap = None, np.inf
        for a, b in itertools.combinations(nearest.values(), 2):
            va, vb = (a - here) * self.sp, (b - here) * self.sp
            if va @ vb > -0.5 * np.linalg.norm(va) * np.linalg.norm(vb):
                continue            # on the same side of the click, or at a right angle
            ab = vb - va
            t = float(np.clip(-(va @ ab) / max(ab @ ab, 1e-9), 0.0, 1.0))
            if np.linalg.norm(va + t * ab) > st.end_reach_mm or np.linalg.norm(ab) >= best_gap:
                continue
            best, best_gap = (a.astype(float), b.astype(float)), float(np.linalg.norm(ab))
        return best

    def _negatives_key(self):
        return _points_key(v for v, lab in self.clicks if lab == 0)

    # -- one side --------------------------------------------------------------------------
    def _cost(self, box, level, smooth_mm=None):
        """Low where the model sees a nerve and, where it is unsure, where the image stands out of
        its surroundings the way the clicked nerve does (``level``: the local contrast at the
        side's clicks, its polarity and strength, not assumed); negative clicks are walls. Where
        the clicks stand out of nothing, the image guides nothing: the cost then rises with the
        distance from ``smooth_mm`` (the smooth curve through the side's clicks, mm), so where the
        model is silent too the path is that curve rather than straight chords between clicks."""
        st = self.st
        lo = np.array([s.start for s in box])
        if self._guides(level):
            alike = np.clip(self.local_contrast[box] / level, 0.0, 1.0)
        else:
            alike = np.zeros(self.local_contrast[box].shape, np.float32)
        if self.prob is None:
            good = alike
        else:
            good = st.probability_weight * self._path_prob[box] + (1 - st.probability_weight) * alike
        cost = 1.0 / (good + st.floor)
        if smooth_mm is not None and len(smooth_mm) > 2:     # (given only where the image guides nothing)
            from scipy.spatial import cKDTree

            grid = (np.indices(cost.shape).reshape(3, -1).T + lo) * self.sp
            d = cKDTree(smooth_mm).query(grid)[0].reshape(cost.shape)
            # (where the model sees the nerve, its course wins over the curve)
            silent = 1.0 if self.prob is None else 1.0 - np.clip(self.prob[box], 0.0, 1.0)
            cost = cost * (1.0 + silent * (d / st.spline_mm) ** 2)
        negs = [v - lo for v, lab in self.clicks if lab == 0]
        if negs:
            cost[_near(cost.shape, np.rint(negs), st.negative_radius_mm, self.sp)] = 1e4
        return cost

    def _path(self, a, b, level, smooth_mm=None) -> np.ndarray:
        from skimage.graph import MCP_Geometric

        shape = np.asarray(self.shape)
        a, b = np.rint(a).astype(int), np.rint(b).astype(int)
        share = self.st.margin_share * float(np.linalg.norm((b - a) * self.sp))
        margin = max(self.st.margin_mm, min(share, self.st.max_margin_mm))
        box = widened_box(np.minimum(a, b), np.maximum(a, b) + 1, margin_voxels(margin, self.sp), shape)
        lo = np.asarray([s.start for s in box])
        mcp = MCP_Geometric(self._cost(box, level, smooth_mm), sampling=tuple(self.sp))
        mcp.find_costs([tuple(a - lo)], [tuple(b - lo)])
        return np.asarray(mcp.traceback(tuple(b - lo)), dtype=int) + lo

    def course(self, side: int) -> np.ndarray:
        """The clicked course of ``side``: the voxels ``(n, 3)`` of the minimal paths joining its
        clicks in their order along the nerve (none without clicks)."""
        pts = self._course_points(side)
        key = (_points_key(pts), self._negatives_key())
        if self._courses.get(side, (None,))[0] == key:
            return self._courses[side][1]
        path, spacing = np.empty((0, 3), int), 0.0
        if pts:
            pts = np.asarray(pts)[order_clicks(np.asarray(pts) * self.sp)]
            path = np.rint(pts[:1]).astype(int)
            side_level = self._level(side)
            smooth = smooth_course(pts * self.sp) if len(pts) >= 2 else None
            for a, b in zip(pts[:-1], pts[1:]):
                level = self._segment_level(a, b, side_level)
                path = np.concatenate([path, self._path(a, b, level, None if self._guides(level) else smooth)[1:]])
            if len(pts) > 1:
                spacing = float(np.median(np.linalg.norm(np.diff(pts, axis=0) * self.sp, axis=1)))
        path.flags.writeable = False     # shared with the cache
        self._courses[side] = (key, path, spacing)
        return path

    def _click_spacing(self, side: int) -> float:
        """The median distance (mm) between ``side``'s neighbouring clicks along the nerve (kept
        with :meth:`course`, whose ordering of the clicks it needs)."""
        self.course(side)
        return self._courses[side][2]

    def _level(self, side: int) -> float:
        """The local contrast of ``side``'s nerve where it was clicked (median over its clicks)."""
        pts = np.rint(self._course_points(side)).astype(int)
        return float(np.median(self.local_contrast[tuple(pts.T)]))

    def _segment_level(self, a, b, side_level: float) -> float:
        """The clicked contrast that guides the path between neighbouring clicks ``a`` and ``b``
        (voxels): the side's (``side_level``, :meth:`_level`), unless both clicks stand out of the
        image (:meth:`_guides`) the same way and the side's contrast does not stand out that way
        (it is too weak, or of the other sign); then the weaker of the two clicks' contrasts.

        A nerve's contrast changes along its course (in its bony canal, among muscle, near a
        foramen), on some sequences even its sign; with one contrast for the whole side, the path
        between two clicks on a stretch that looked otherwise followed whatever nearby looked
        like the side's median click, up to 12 mm away (a phantom case). One click alone does not
        overrule the side: the contrast at a click on a thin nerve can read weak or even reversed
        where the click is a voxel off its centre."""
        la, lb = (float(self.local_contrast[tuple(np.rint(v).astype(int))]) for v in (a, b))
        agree = self._guides(la) and self._guides(lb) and np.sign(la) == np.sign(lb)
        if agree and (not self._guides(side_level) or np.sign(la) != np.sign(side_level)):
            return float(np.sign(la) * min(abs(la), abs(lb)))
        return side_level

    def _guides(self, level: float) -> bool:
        """Whether a clicked contrast ``level`` (:meth:`_level`) stands out enough for the image to
        guide the path and the drawn width (above ``min_contrast``)."""
        return abs(level) > self.st.min_contrast

    def tube(self, side: int, radius_mm: float) -> np.ndarray:
        """Voxels within ``radius_mm`` of :meth:`course` (bool, full grid)."""
        return _near(self.shape, self.course(side), radius_mm, self.sp)

    def side_mask(self, side: int) -> np.ndarray:
        """The nerve of ``side`` (1 right, 2 left) given the current clicks (bool, full grid)."""
        st = self.st
        pts = self._course_points(side)
        out = np.zeros(self.shape, bool)
        if not pts:
            return out
        path = self.course(side)
        # work in the box around the path (plus room for the ends and the width)
        reach = max(st.max_radius_mm, st.end_reach_mm) + 40.0
        pad = np.ceil(reach / self.sp).astype(int)
        lo = np.maximum(path.min(axis=0) - pad, 0)
        hi = np.minimum(path.max(axis=0) + pad + 1, self.shape)
        box = tuple(slice(int(l_), int(h)) for l_, h in zip(lo, hi))
        local = path - lo
        shape = tuple(h - l_ for l_, h in zip(lo, hi))
        # the drawn tube, in a tight box around the path (its nearest-voxel map is the costly part)
        # (the centred curve may lie centre_search_mm off the path, and the surroundings are read
        # out to max_radius_mm + 1.5 mm from it)
        tpad = np.ceil((st.max_radius_mm + 2.0 + st.centre_search_mm) / self.sp).astype(int)
        tlo = np.maximum(local.min(axis=0) - tpad, 0)
        thi = np.minimum(local.max(axis=0) + tpad + 1, shape)
        tight = tuple(slice(int(a), int(c)) for a, c in zip(tlo, thi))
        tl = local - tlo
        tshape = tuple(int(c - a) for a, c in zip(tlo, thi))
        near = _near(tshape, tl, st.max_radius_mm, self.sp)
        core_t = _near(tshape, tl, st.core_radius_mm, self.sp)
        raw = self.norm[box][tight]
        b = np.clip(raw, 0.0, 1.5) / 1.5
        # the nerve's own width: the model where it sees the nerve, else the voxels nearer the
        # path's intensity nearby (the nearest path voxel's, smoothed) than the surroundings' (a
        # nerve brighter or darker than what is around it)
        path_mask = np.zeros(tshape, bool)
        path_mask[tuple(tl.T)] = True
        smooth = ndimage.uniform_filter(b, size=3)
        dist, nearest = ndimage.distance_transform_edt(~path_mask, sampling=self.sp, return_indices=True)
        on_path = smooth[tuple(nearest)]
        level = self._level(side)
        lcb = self.local_contrast[box][tight]
        at = (np.asarray(pts) - lo - tlo) * self.sp
        frame = None
        if self._guides(level) and st.centre_search_mm > 0:
            # the width is drawn around the path centred on the nerve (a voxel path runs anywhere
            # in the nerve's valley of the cost, and half a voxel off is much of a thin nerve)
            frame = self._centred_width_frame(tl, tshape, np.sign(level) * lcb, smooth, dist, on_path, at, abs(level))
        centred = frame is not None
        if centred:
            dist, on_path, by_click, core_t, near = frame
        else:
            path_by_click = np.zeros(tshape, bool)
            path_by_click[tuple(tl.T)] = np.linalg.norm(tl[:, None] * self.sp - at[None], axis=2).min(axis=1) <= 2.0
            by_click = path_by_click[tuple(nearest)]
        shell = (dist <= st.max_radius_mm + 1.5) & ~near
        around = float(np.median(b[shell])) if shell.any() else 0.0
        step = on_path - around
        like_path = ((b - (on_path + around) / 2) * np.sign(step) >= 0) & (np.abs(step) > st.min_contrast)
        # ... and whose local contrast (a smoothed measure) reaches the nerve's edge (the
        # voxel-wise test alone lets noise beside the nerve in), the edge read from the image
        # around the path where it runs within 2 mm of a click (there it is on the nerve)
        if self._guides(level):
            found = nerve_edge(np.sign(level) * raw[by_click], lcb[by_click] / level, dist[by_click],
                               st.max_radius_mm)
            # (kept within 0.3-0.9 of the clicked contrast: a stretch the path misses reads no edge)
            edge = st.half_contrast if found is None else float(np.clip(found[0], 0.3, 0.9))
            like_path &= lcb / level >= edge
            if found is not None and edge == found[0]:
                # ... and no wider than the nerve is at the clicks: the radius where the image
                # falls half way to the surroundings (a noisy image lets blobs beside the nerve
                # pass both tests), plus half the finest voxel where it is measured from the voxel
                # path (its own staircase); not where the edge read had to be clamped (the path
                # misses the nerve)
                like_path &= dist <= found[1] + (0.0 if centred else 0.5 * float(self.sp.min()))
        else:
            like_path[:] = False
        if self.prob is not None:
            p = self.prob[box][tight]
            width = near & ((p > 0.5) | ((p > 0.2) & like_path))
            # where the model is silent on the path (its probability at the nearest path voxel),
            # the intensity decides
            on_path_p = np.zeros(tshape, np.float32)
            on_path_p[tuple(tl.T)] = _around(p, tl, _CUBE).max(axis=1)
            silent = on_path_p[tuple(nearest)] < 0.3
            width |= near & like_path & silent
        else:
            width = near & like_path
        core, mask = np.zeros(shape, bool), np.zeros(shape, bool)
        core[tight] = core_t
        mask[tight] = core_t | width
        # beyond the end clicks: the model's nerve, as far as it goes on from there
        if self.prob is not None and len(pts) >= 2:
            comp = self._model_pieces()[box]
            for end, prev in ((local[0], local[min(len(local) - 1, 8)]), (local[-1], local[max(0, len(local) - 9)])):
                touch = np.unique(comp[_near(shape, end[None], st.end_reach_mm, self.sp)])
                touch = touch[touch > 0]
                if not touch.size:
                    continue
                cand = np.isin(comp, touch)
                idx = np.argwhere(cand)
                beyond = ((idx - end) * self.sp) @ ((end - prev) * self.sp) > 0
                ext = np.zeros(shape, bool)
                ext[tuple(idx[beyond].T)] = True
                # keep what is connected to the end
                lab, _ = ndimage.label(ext | core, structure=np.ones((3, 3, 3)))
                keep = np.unique(lab[core])
                mask |= np.isin(lab, keep[keep > 0]) & ext
        out[box] = mask
        if self.prob is not None and len(pts) == 1:
            # one click: the whole piece of the model's nerve it points at (its course is the
            # model's), and the pieces that continue it past a gap, as the post-processing joins them
            touch = self._pieces_near(path[0])
            if touch.size:    # (a click on no piece has no course to continue)
                out = self._continued(out | np.isin(self._model_pieces(), touch))
        elif self.prob is not None:
            out = self._continued(self._corridor(path, out), path)
        if len(pts) >= 2:
            out |= self._tracked_ends(side, path, out)
        negs = [np.rint(v) for v, lab in self.clicks if lab == 0]
        if negs:
            out &= ~_near(self.shape, np.asarray(negs), st.negative_radius_mm, self.sp)
        return out

    def _centred_width_frame(self, tl, tshape, field, smooth, dist, on_path, at, height):
        """What :meth:`side_mask` draws the width around, moved from the voxel path ``tl`` (in the
        tight box ``tshape``) onto the curve centred on the nerve (:func:`.centring.centred_curve`
        on ``field``, the clicked nerve's local contrast, positive on it): each voxel's distance
        from that curve, the path's smoothed intensity (``smooth``) where the curve is nearest,
        whether that is within 2 mm of a click (``at``, mm), the core and the reach of the width;
        None where the path is too short to centre (under three points). ``height`` is the
        clicked contrast (the ridge's expected height). Voxels beyond any edge read
        (``max_radius_mm`` + 2 mm from the curve) are put at an infinite distance, or keep ``dist``
        where they are farther still from the voxel path, and are never near a click."""
        from scipy.spatial import cKDTree

        st = self.st
        curve = centred_curve(tl * self.sp, field, self.sp, st.centre_search_mm, ridge_height=height)
        if len(curve) < 3:
            return None
        reach = st.max_radius_mm + 2.0
        zone = dist <= reach + st.centre_search_mm + 0.5
        d, i = cKDTree(curve).query(np.argwhere(zone) * self.sp, distance_upper_bound=reach)
        i = np.minimum(i, len(curve) - 1)        # (beyond reach: no neighbour, an infinite distance)
        dist, on_path, by_click = dist.copy(), on_path.copy(), np.zeros(tshape, bool)
        dist[zone] = d
        on_path[zone] = ndimage.map_coordinates(smooth, (curve / self.sp).T, order=1, mode="nearest")[i]
        by_click[zone] = (np.linalg.norm(curve[:, None] - at[None], axis=2).min(axis=1) <= 2.0)[i]
        return dist, on_path, by_click, zone & (dist <= st.core_radius_mm), zone & (dist <= st.max_radius_mm)

    def _tracked_ends(self, side: int, path: np.ndarray, nerve: np.ndarray) -> np.ndarray:
        """Beyond each end click where ``nerve`` (the model's, or the drawn one) does not go on:
        the nerve tracked along the image's local contrast (:meth:`_track`), at most one click
        spacing (the median distance between neighbouring clicks), drawn at the core's width (an
        extrapolation is drawn thin) around the track smoothed and centred on the nerve
        (:func:`.centring.centred_curve`). Nothing where the clicks stand out of nothing."""
        st = self.st
        out = np.zeros(self.shape, bool)
        level = self._level(side)
        if not self._guides(level) or len(path) < 2:
            return out
        reach = self._click_spacing(side)
        near = np.ceil(4.0 / self.sp).astype(int)     # the 4 mm around an end that is looked at
        for end, prev in ((path[0], path[min(len(path) - 1, 8)]), (path[-1], path[max(0, len(path) - 9)])):
            direction = (end - prev) * self.sp
            if not np.any(direction):
                continue
            direction = direction / np.linalg.norm(direction)
            lo = np.maximum(end - near, 0)
            box = tuple(slice(int(a), int(b)) for a, b in zip(lo, end + near + 1))
            rel = (np.argwhere(nerve[box]) + lo - end) * self.sp
            ahead = rel @ direction
            # the nerve already goes on here (a model piece beyond the end): nothing to track; the
            # drawn tube's own rounded end reaches max_radius_mm ahead, so only what lies further counts
            if np.any((ahead > st.max_radius_mm + 0.5) & (np.linalg.norm(rel, axis=1) < 4.0)):
                continue
            track = self._track(end, direction, level, reach)
            if len(track):
                # each step re-centres on the best voxel within reach, a zigzag up to a millimetre
                # off the nerve: the tube is drawn around the track smoothed and centred
                steps = np.concatenate([end[None].astype(float), track])
                # (the field only around the track: the whole volume would be copied per end)
                box = widened_box(np.floor(steps.min(axis=0)), np.ceil(steps.max(axis=0)) + 1,
                                  margin_voxels(st.centre_search_mm + 1.0, self.sp), self.shape)
                lo = np.asarray([s.start for s in box])
                field = np.float32(np.sign(level)) * self.local_contrast[box]
                curve = centred_curve((steps - lo) * self.sp, field, self.sp, st.centre_search_mm,
                                      ridge_height=abs(level))
                tube = tube_of_curve(curve / self.sp + lo, 2 * st.core_radius_mm, self.sp, self.shape)
                out[tuple(tube.T)] = True
        return out

    def _track(self, start, direction_mm, level: float, max_mm: float) -> np.ndarray:
        """Follow a nerve from ``start`` (voxel) along ``direction_mm`` (a unit vector in mm) in
        steps of 0.5 mm: each step goes on ahead and moves sideways (up to ``track_search_mm``) to
        where the local contrast is most like the clicked nerve's (``level``), turning gently
        towards it; a step where that is below ``track_contrast`` of ``level`` keeps straight on,
        and ``track_fade_mm`` of such steps, the image's edge, a negative click or ``max_mm`` end it.
        Returns the voxels (float, (n, 3)) where the nerve was found."""
        st = self.st
        step = 0.5
        shape = np.asarray(self.shape)
        d = np.asarray(direction_mm, float)
        p = np.asarray(start, float)
        radii = np.arange(step, st.track_search_mm + 1e-6, step)
        angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        disc = np.array([(0.0, 0.0)] + [(r * np.cos(t), r * np.sin(t)) for r in radii for t in angles])
        negs = np.asarray([v for v, lab in self.clicks if lab == 0], float).reshape(-1, 3) * self.sp
        found, faded, gone = [], 0.0, 0.0
        while gone < max_mm:
            ahead = p * self.sp + d * step
            helper = np.array([1.0, 0, 0]) if abs(d[0]) < 0.9 else np.array([0, 1.0, 0])
            u = np.cross(d, helper)
            u /= np.linalg.norm(u)
            v = np.cross(d, u)
            cand = (ahead + disc[:, :1] * u + disc[:, 1:] * v) / self.sp
            idx = np.rint(cand).astype(int)
            inside = np.all((idx >= 0) & (idx < shape), axis=1)
            if not inside[0] or (len(negs) and np.linalg.norm(negs - ahead, axis=1).min() < st.negative_radius_mm):
                break
            like = np.full(len(cand), -np.inf)
            like[inside] = self.local_contrast[tuple(idx[inside].T)] / level
            best = int(np.argmax(like))
            gone += step
            if like[best] >= st.track_contrast:
                turn = (cand[best] - p) * self.sp
                d = 0.7 * d + 0.3 * turn / np.linalg.norm(turn)
                d /= np.linalg.norm(d)
                p = cand[best]
                found.append(p)
                faded = 0.0
            else:
                p = ahead / self.sp
                faded += step
                if faded > st.track_fade_mm:
                    break
        return np.asarray(found, float).reshape(-1, 3)

    def _continued(self, nerve: np.ndarray, path: np.ndarray | None = None) -> np.ndarray:
        """The clicked nerve and the model's pieces that continue it (past a gap, beyond an end
        click: :func:`napari_ian.trainer.postprocess.grow_from`); never a piece a negative click
        points at. With the clicked ``path`` (two or more clicks, full-grid voxels), also the
        pieces :meth:`_round_the_ends` takes."""
        # pieces beside the clicked course are not the nerve (the clicks say where it runs): only
        # pieces touching it are kept without a bridge, the rest must lie ahead of an end (or,
        # below, round the nerve's end beyond the end clicks)
        st = PathSettings(keep_mm=1.0)
        nz = np.argwhere(nerve)
        if not len(nz):
            return nerve
        pad = np.ceil(st.far_mm / self.sp).astype(int)
        lo = np.maximum(nz.min(axis=0) - pad, 0)
        hi = np.minimum(nz.max(axis=0) + pad + 1, self.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        pieces = self._model_pieces()[box]
        cand = pieces > 0
        hit = np.empty(0, pieces.dtype)
        negs = [np.rint(v) - lo for v, lab in self.clicks if lab == 0]
        if negs:
            hit = np.unique(pieces[_near(pieces.shape, np.asarray(negs), self.st.negative_radius_mm, self.sp)])
            cand &= ~np.isin(pieces, hit[hit > 0])
        grown = grow_from(self.prob[box], self.sp, nerve[box], cand, st)
        if path is not None and len(path) > 1:
            grown = self._round_the_ends(grown, pieces, cand & ~grown, path - lo)
        out = np.array(nerve, copy=True)
        out[box] |= grown
        # a joined piece is kept whole, also where it runs on beyond the box
        joined = np.setdiff1d(np.unique(pieces[grown & ~nerve[box]]), np.r_[0, hit])
        if joined.size:
            out |= np.isin(self._model_pieces(), joined)
        return out

    def _round_the_ends(self, nerve: np.ndarray, pieces: np.ndarray, cand: np.ndarray,
                        path: np.ndarray) -> np.ndarray:
        """``nerve`` (bool, a box of the grid) and the model's pieces (``pieces``' labels among
        ``cand``) that lie wholly beyond an end of the clicked ``path`` (voxels in the same box)
        within the automatic post-processing's ``keep_mm`` of the nerve, as that keeps them: the
        clicks say where the nerve runs between them, not beyond them (there it may turn sharply
        at its end). Beyond an end: a voxel's nearest path voxel is the path's first or last, and
        it lies ahead of it (along the path's last 3 mm); so a piece beside the end click, or
        beside the course, is not taken."""
        from scipy.spatial import cKDTree

        keep_mm = PathSettings().keep_mm
        idx = np.argwhere(cand)
        if not len(idx) or not nerve.any():
            return nerve
        lab = pieces[tuple(idx.T)]
        # only pieces that come within keep_mm of the nerve (cheap to find; most are far)
        near = np.isfinite(cKDTree(np.argwhere(nerve) * self.sp).query(
            idx * self.sp, distance_upper_bound=keep_mm + 1e-6)[0])
        mine = np.isin(lab, lab[near])
        if not mine.any():
            return nerve
        idx, lab = idx[mine], lab[mine]
        path_mm, idx_mm = path * self.sp, idx * self.sp
        _, k = cKDTree(path_mm).query(idx_mm)
        beyond = np.zeros(len(idx), bool)
        along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path_mm, axis=0), axis=1))])
        for end, inner in ((0, int(np.searchsorted(along, 3.0))),
                           (len(path) - 1, int(np.searchsorted(along, along[-1] - 3.0)) - 1)):
            inner = int(np.clip(inner, 0, len(path) - 1))
            ahead = path_mm[end] - path_mm[inner]
            sel = k == end
            beyond[sel] = (idx_mm[sel] - path_mm[end]) @ ahead > 0
        todo = {int(i): idx[lab == i] for i in np.setdiff1d(lab[beyond], lab[~beyond])}
        out = np.array(nerve, copy=True)
        while todo:     # nearest first, each joined piece a place the next is measured from
            tree = cKDTree(np.argwhere(out) * self.sp)
            d = {i: tree.query(pts * self.sp)[0].min() for i, pts in todo.items()}
            i = min(d, key=d.get)
            if d[i] > keep_mm + 1e-6:
                break
            out[tuple(todo.pop(i).T)] = True
        return out

    def lone_click_finds_nothing(self, side: int) -> bool:
        """True when ``side`` has one positive click, none of the model's nerve lies within
        ``end_reach_mm`` of it and it is not in a gap of the model's nerve (:meth:`_gap_ends`), or
        there is no model: that click alone gives only a blob at the click, because nothing says
        which way the nerve runs; a second click along it does."""
        pts = self._course_points(side)
        if len(pts) != 1:
            return False
        return self.prob is None or not self._pieces_near(np.rint(pts[0]).astype(int)).size

    def nothing_guides(self, side: int) -> bool:
        """True when ``side`` has two or more positive clicks, its nerve does not stand out of the
        image at them (local contrast within ``min_contrast``) and the model sees no nerve along
        most of the clicked course (or there is no model): the path between the clicks is then the
        smooth curve through them and the nerve is drawn at its core's width, so it is only as
        right as the clicks are dense where the nerve bends."""
        pts = self._side_clicks(side)
        if len(pts) < 2 or self._guides(self._level(side)):
            return False
        return self.prob is None or np.mean(self.prob[tuple(self.course(side).T)] > 0.5) < 0.5

    def hints(self) -> list:
        """The one-line hints for the current clicks, per side in order (CLI and panel):
        :func:`lone_click_hint`, :func:`nothing_guides_hint`."""
        out = []
        for side in (1, 2):
            if self.lone_click_finds_nothing(side):
                out.append(lone_click_hint(side))
            elif self.nothing_guides(side):
                out.append(nothing_guides_hint(side))
        return out

    def _pieces_near(self, point) -> np.ndarray:
        """Labels of the model's pieces within ``end_reach_mm`` of voxel ``point`` (what a lone
        click points at)."""
        idx = np.asarray(point, int) + ball_offsets(self.st.end_reach_mm, self.sp)
        idx = idx[np.all((idx >= 0) & (idx < np.asarray(self.shape)), axis=1)]
        found = np.unique(self._model_pieces()[tuple(idx.T)])
        return found[found > 0]

    def _model_pieces(self) -> np.ndarray:
        if self._pieces is None:   # the probability never changes: label its pieces once
            self._pieces = ndimage.label(self.prob > 0.5, structure=np.ones((3, 3, 3)))[0]
        return self._pieces

    def _corridor(self, path: np.ndarray, drawn: np.ndarray) -> np.ndarray:
        """Two or more clicks: the model's outline where it follows the clicked course, the drawn
        tube where it does not.

        The model's pieces that the path between the clicks runs through are kept whole (the model
        outlines a nerve it sees better than a tube does, and its pieces go on beyond the end
        clicks); pieces away from the path are dropped. Where no kept piece lies within
        ``covered_mm`` of the path (a gap, a piece the model missed), the drawn tube fills in.
        """
        st = self.st
        pieces = self._model_pieces()
        lo = np.maximum(path.min(axis=0) - 3, 0)
        hi = np.minimum(path.max(axis=0) + 4, self.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        local = path - lo
        shape = tuple(int(b - a) for a, b in zip(lo, hi))
        touch = np.unique(pieces[box][_near(shape, local, st.touch_mm, self.sp)])
        touch = touch[touch > 0]
        if not touch.size:
            return drawn
        kept_box = np.isin(pieces[box], touch)
        # a path voxel is covered when a kept voxel lies within covered_mm of it
        covered = _around(kept_box, local, ball_offsets(st.covered_mm, self.sp)).any(axis=1)
        out = np.isin(pieces, touch)
        if not covered.all():
            out |= drawn & _near(self.shape, path[~covered], st.max_radius_mm + 0.5, self.sp)
        return out

    def labels(self) -> np.ndarray:
        """Both sides as labels (1 right, 2 left; where they would overlap, the nearer click wins)."""
        out = np.zeros(self.shape, np.uint8)
        for side in (1, 2):
            out[self.side_mask(side) & (out == 0)] = side
        return out


def _points_key(points) -> tuple:
    """A hashable key of voxel points (to a thousandth of a voxel)."""
    return tuple(tuple(np.round(v, 3)) for v in points)


def _same(a, b) -> bool:
    return len(a) == len(b) and all(np.allclose(x, y) for x, y in zip(a, b))


def lone_click_hint(side: int) -> str:
    """The one line said when :meth:`InteractiveSession.lone_click_finds_nothing` (CLI and panel)."""
    name = SIDES[side]
    return (f"the {name} nerve's one click found no nerve near it, so only the click's spot is labelled: "
            f"add a {name} click further along the nerve to trace it")


def nothing_guides_hint(side: int) -> str:
    """The one line said when :meth:`InteractiveSession.nothing_guides`."""
    name = SIDES[side]
    return (f"the {name} nerve does not stand out of the image at its clicks and the model sees no nerve there, "
            f"so it is drawn thin along the smooth curve through the clicks: add {name} clicks where the nerve "
            f"bends away from it")


def world_to_voxel(points_world: np.ndarray, canonical_affine: np.ndarray) -> np.ndarray:
    """RAS+ mm points (N, 3) -> fractional canonical voxel indices (N, 3)."""
    pts = np.atleast_2d(np.asarray(points_world, dtype=float))
    inv = np.linalg.inv(np.asarray(canonical_affine, dtype=float))
    return (inv @ np.c_[pts, np.ones(len(pts))].T).T[:, :3]


def read_clicks_csv(path, canonical_affine, shape) -> list:
    """``x,y,z,label`` rows (RAS+ mm; label 1 right, 2 left, 0 not nerve) -> ``[(voxel, label)]``.

    Raises ValueError naming the file and the problem (header, numbers, labels, outside the image).
    """
    import csv
    from pathlib import Path

    path = Path(path)
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the clicks ({getattr(exc, 'strerror', None) or exc})") from None
    if not rows or set(rows[0].keys() or ()) != {"x", "y", "z", "label"}:
        raise ValueError(f"{path}: expected a header x,y,z,label and at least one click")
    clicks = []
    for i, r in enumerate(rows, start=2):
        try:
            xyz = [float(r[k]) for k in ("x", "y", "z")]
            lab = int(r["label"])
        except (TypeError, ValueError):
            raise ValueError(f"{path}: line {i}: x, y, z must be numbers (mm) and label 0, 1 or 2") from None
        if lab not in (0, 1, 2) or not np.all(np.isfinite(xyz)):
            raise ValueError(f"{path}: line {i}: label {r['label']!r} (use 1 right nerve, 2 left nerve, 0 not nerve)")
        v = world_to_voxel(xyz, canonical_affine)[0]
        if np.any(v < -0.5) or np.any(v > np.asarray(shape) - 0.5):
            raise ValueError(f"{path}: line {i}: the click ({', '.join(f'{c:g}' for c in xyz)}) mm lies outside "
                             "the image")
        clicks.append((v, lab))
    return clicks
