"""Centring a traced nerve path on the nerve.

A minimal path through a cost map runs anywhere inside the cheap valley the nerve makes, and its
voxel staircase lies up to half a voxel off any smooth course: on a nerve two to five voxels across
that is much of its width. :func:`centred_curve` turns such a path into a smooth curve in mm and
moves it, across its own direction, onto the ridge of a field that peaks at the nerve's centre
(the image's local contrast, signed so the nerve is positive).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["resample_polyline", "centred_curve"]


def resample_polyline(points_mm: np.ndarray, step_mm: float) -> np.ndarray:
    """Points evenly spaced along a polyline.

    Parameters
    ----------
    points_mm : (n, 3) array
        The polyline's vertices in mm, in order (repeated consecutive vertices are skipped).
    step_mm : float
        The largest spacing wanted.

    Returns
    -------
    (m, 3) array
        Points from the first vertex to the last, evenly spaced at most ``step_mm`` apart; one
        point where the polyline has no length.
    """
    pts = np.asarray(points_mm, float).reshape(-1, 3)
    if len(pts) < 2:
        return pts.copy()
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    keep = np.r_[True, seg > 0]
    pts = pts[keep]
    u = np.r_[0.0, np.cumsum(seg[seg > 0])]
    if u[-1] <= 0:
        return pts[:1].copy()
    t = np.linspace(0.0, u[-1], max(2, int(np.ceil(u[-1] / step_mm)) + 1))
    return np.stack([np.interp(t, u, pts[:, k]) for k in range(3)], axis=1)


def _running_mean(values: np.ndarray, n: int) -> np.ndarray:
    """Mean over ``n`` (odd) neighbouring rows, the window shrinking symmetrically towards the
    ends (so the first and last rows stay where they are and nothing jumps there)."""
    m = len(values)
    if n <= 1 or m < 3:
        return values
    i = np.arange(m)
    half = np.minimum(np.minimum(i, m - 1 - i), n // 2)
    c = np.concatenate([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])
    return (c[i + half + 1] - c[i - half]) / (2 * half + 1)[:, None]


def _normals(curve: np.ndarray):
    """Two unit vectors across the curve's direction at each of its points, and whether that
    direction is defined there (a path folding back on itself has none)."""
    t = np.gradient(curve, axis=0)
    length = np.linalg.norm(t, axis=1, keepdims=True)
    t = t / np.maximum(length, 1e-12)
    helper = np.where(np.abs(t[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    u = np.cross(t, helper)
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    return u, np.cross(t, u), length[:, 0] > 1e-9


def centred_curve(path_mm: np.ndarray, field: np.ndarray, spacing, search_mm: float = 1.0,
                  step_mm: float = 0.25, smooth_mm: float = 3.0, iterations: int = 3,
                  ridge_height: float | None = None) -> np.ndarray:
    """A traced path, smoothed and moved onto the ridge of ``field``.

    Parameters
    ----------
    path_mm : (n, 3) array
        The path's points in mm (voxel indices times ``spacing``), in order.
    field : 3D array
        Peaks at the nerve's centre (e.g. the local contrast, signed so the nerve is positive).
    spacing : 3 floats
        ``field``'s voxel size in mm.
    search_mm : float
        How far across its direction a point looks for the ridge, and the most the curve moves
        off the smoothed path in all.
    step_mm : float
        The path is resampled at this spacing before it is smoothed and centred.
    smooth_mm : float
        Length of the running means along the curve (the path before centring, and the moves).
    iterations : int
        Centring steps (each re-reads the curve's direction).
    ridge_height : float, optional
        The ridge's expected height (e.g. the field at the clicks); a disc whose maximum is over
        twice the larger of this and the median of the discs' maxima along the curve is taken for
        an outlier. Default: that median alone.

    Returns
    -------
    (m, 3) array
        The centred curve in mm, a point at most about every ``step_mm``.

    Notes
    -----
    Each point's own move is towards the centroid of the disc of ``search_mm`` across the curve,
    each sample weighted by how far it rises above half the disc's maximum. A point makes no move
    of its own where nothing in its disc stands out (``field`` ≤ 0 throughout), where the field
    under the point itself is ≤ 0 (a stretch where the nerve shows with the other sign), or where
    its disc holds an outlier (one very bright voxel, a metal rim: it would be all of the disc's
    upper half). The moves are then smoothed along the curve, a running median then a running
    mean, so such a point follows its neighbours.
    """
    sp = np.asarray(spacing, float)
    curve = resample_polyline(path_mm, step_mm)
    if len(curve) < 3 or search_mm <= 0:
        return curve
    n = 2 * int(round(smooth_mm / step_mm / 2)) + 1
    start = _running_mean(curve, n)
    grid = np.arange(-search_mm, search_mm + 1e-9, step_mm)
    a, b = (g.ravel() for g in np.meshgrid(grid, grid, indexing="ij"))
    disc = (a ** 2 + b ** 2) <= search_mm ** 2 + 1e-9
    a, b = a[disc], b[disc]
    here = int(np.argmin(a ** 2 + b ** 2))          # the disc's centre, the point itself
    cur = start.copy()
    for _ in range(iterations):
        u, v, defined = _normals(cur)
        pts = cur[:, None] + a[None, :, None] * u[:, None] + b[None, :, None] * v[:, None]
        vals = ndimage.map_coordinates(field, (pts / sp).reshape(-1, 3).T, order=1,
                                       mode="nearest").reshape(pts.shape[:2])
        top = vals.max(axis=1, keepdims=True)
        usual = float(np.median(top[top > 0])) if np.any(top > 0) else 0.0
        if ridge_height is not None:
            usual = max(usual, float(ridge_height))
        ok = (top > 0) & (top <= 2.0 * usual) & (vals[:, here:here + 1] > 0) & defined[:, None]
        w = np.where(ok, np.clip(vals - 0.5 * top, 0.0, None), 0.0)
        total = w.sum(axis=1)
        move = np.where(total[:, None] > 0,
                        (w[..., None] * (pts - cur[:, None])).sum(axis=1) / np.maximum(total, 1e-12)[:, None], 0.0)
        move = _running_mean(ndimage.median_filter(move, size=(n, 1), mode="nearest"), n)
        cur = cur + move
        # never farther than search_mm from where it started
        off = cur - start
        far = np.linalg.norm(off, axis=1, keepdims=True)
        cur = start + off * np.minimum(1.0, search_mm / np.maximum(far, 1e-12))
    return cur
