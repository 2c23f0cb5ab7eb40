"""Annotation geometry in millimetres: spherical brush strokes on anisotropic voxels.

The paper's expert traced each nerve with overlapping spherical brush strokes. A sphere of
diameter d mm covers a different number of voxels along each axis when the voxels are
anisotropic (0.8 x 1.6 x 0.43 mm here), so the brush is defined in mm and converted here.
"""
from __future__ import annotations

import numpy as np

from .boxes import margin_voxels, widened_box


def sphere_offsets(diameter_mm: float, spacing) -> np.ndarray:
    """Integer voxel offsets (N, 3) whose centres lie within a sphere of ``diameter_mm``.

    The centre voxel is always included, so the smallest brush paints one voxel.
    """
    sp = np.asarray(spacing, dtype=float)
    r = float(diameter_mm) / 2.0
    reach = np.floor(r / sp).astype(int)
    grids = np.meshgrid(*[np.arange(-n, n + 1) for n in reach], indexing="ij")
    off = np.stack([g.ravel() for g in grids], axis=1)
    d2 = ((off * sp) ** 2).sum(axis=1)
    return off[d2 <= r * r + 1e-9]


def sphere_indices(center, offsets: np.ndarray, shape) -> tuple:
    """Index arrays of a sphere at ``center`` (voxel coordinates, rounded), clipped to ``shape``."""
    c = np.round(np.asarray(center, dtype=float)).astype(int)
    pts = offsets + c
    inside = np.all((pts >= 0) & (pts < np.asarray(shape)), axis=1)
    pts = pts[inside]
    return tuple(pts[:, i] for i in range(3))


def stroke_indices(points, offsets: np.ndarray, shape, step_mm: float | None = None, spacing=None) -> tuple:
    """Union of spheres along a polyline of voxel points (sub-sampled so the spheres overlap)."""
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    if len(pts) > 1 and step_mm and spacing is not None:
        sp = np.asarray(spacing, dtype=float)
        dense = [pts[0]]
        for a, b in zip(pts[:-1], pts[1:]):
            n = max(1, int(np.ceil(np.linalg.norm((b - a) * sp) / step_mm)))
            dense += [a + (b - a) * t for t in np.linspace(0, 1, n + 1)[1:]]
        pts = np.array(dense)
    allpts = (np.round(pts).astype(int)[:, None, :] + offsets[None]).reshape(-1, 3)
    allpts = np.unique(allpts, axis=0)
    inside = np.all((allpts >= 0) & (allpts < np.asarray(shape)), axis=1)
    allpts = allpts[inside]
    return tuple(allpts[:, i] for i in range(3))


def _dedupe(points, spacing) -> np.ndarray:
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    if len(pts) < 2:
        return pts.copy()
    sp = np.asarray(spacing, dtype=float)
    keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0) * sp, axis=1) > 1e-6])
    return pts[keep]


def span_controls(points, spacing) -> list:
    """For each span between consecutive points, the four points that shape it (ends mirrored).

    The curve is a centripetal Catmull-Rom spline: span ``k`` (from point ``k`` to ``k + 1``)
    depends only on points ``k - 1 .. k + 2``, so moving one point changes only the two spans on
    each side of it (what lets the tracer re-paint just that stretch).
    """
    pts = _dedupe(points, spacing)
    if len(pts) < 2:
        return []
    ext = np.concatenate([[2 * pts[0] - pts[1]], pts, [2 * pts[-1] - pts[-2]]])
    return [ext[k:k + 4] for k in range(len(pts) - 1)]


def span_curve(controls, spacing, step_mm: float = 0.25) -> np.ndarray:
    """Samples of one span of the centripetal Catmull-Rom spline (both end points included).

    Parameters
    ----------
    controls : (4, 3) array
        ``P0, P1, P2, P3`` in voxel coordinates; the span runs from ``P1`` to ``P2``.
    spacing : sequence of 3 float
        Voxel size in mm (the parametrisation uses distances in mm, so anisotropy does not bend it).
    step_mm : float
        Sample spacing along the span.
    """
    p = np.asarray(controls, dtype=float)
    sp = np.asarray(spacing, dtype=float)
    d = np.maximum(np.linalg.norm(np.diff(p, axis=0) * sp, axis=1), 1e-9) ** 0.5   # centripetal: alpha = 1/2
    t0, t1, t2, t3 = 0.0, d[0], d[0] + d[1], d[0] + d[1] + d[2]
    n = max(2, int(np.ceil(np.linalg.norm((p[2] - p[1]) * sp) / step_mm)) + 1)
    t = np.linspace(t1, t2, n)[:, None]
    a1 = (t1 - t) / (t1 - t0) * p[0] + (t - t0) / (t1 - t0) * p[1]
    a2 = (t2 - t) / (t2 - t1) * p[1] + (t - t1) / (t2 - t1) * p[2]
    a3 = (t3 - t) / (t3 - t2) * p[2] + (t - t2) / (t3 - t2) * p[3]
    b1 = (t2 - t) / (t2 - t0) * a1 + (t - t0) / (t2 - t0) * a2
    b2 = (t3 - t) / (t3 - t1) * a2 + (t - t1) / (t3 - t1) * a3
    c = (t2 - t) / (t2 - t1) * b1 + (t - t1) / (t2 - t1) * b2
    c[0], c[-1] = p[1], p[2]                   # exactly through the clicked points
    return c


def centerline_curve(points, spacing, step_mm: float = 0.25) -> np.ndarray:
    """A smooth curve through ordered voxel points (centripetal Catmull-Rom, parametrised in mm).

    Two points give a straight segment; the curve passes through every point; it is local (see
    :func:`span_controls`).
    """
    pts = _dedupe(points, spacing)
    if len(pts) < 2:
        return pts.copy()
    spans = [span_curve(c, spacing, step_mm) for c in span_controls(pts, spacing)]
    return np.concatenate([spans[0]] + [s[1:] for s in spans[1:]])


def _tube_step(spacing) -> float:
    return max(0.05, min(np.asarray(spacing, dtype=float)) / 4.0)


def tube_of_curve(curve, diameter_mm: float, spacing, shape) -> np.ndarray:
    """The voxels whose centres lie within ``diameter_mm / 2`` of a sampled curve.

    Parameters
    ----------
    curve : (n, 3) array
        The curve's samples in voxel coordinates (any float positions), closer together than
        the radius.
    diameter_mm : float
    spacing : sequence of 3 float
        Voxel size in mm.
    shape : sequence of 3 int
        The volume's shape; voxels outside it are left out.

    Returns
    -------
    (N, 3) int array
    """
    from scipy.spatial import cKDTree

    sp = np.asarray(spacing, dtype=float)
    diag = float(np.linalg.norm(sp))
    # candidates: spheres a voxel diagonal wider around curve samples at most a diagonal apart
    # (every voxel within the radius of the curve is then a candidate); kept: centres within the radius
    wide = sphere_offsets(diameter_mm + 2 * diag, spacing)
    step = float(np.median(np.linalg.norm(np.diff(curve, axis=0) * sp, axis=1))) if len(curve) > 1 else diag
    stride = max(1, int(diag // max(step, 1e-6)))
    centres = np.concatenate([curve[::stride], curve[-1:]])
    cand = np.stack(stroke_indices(centres, wide, shape), axis=1)
    if not len(cand):
        return np.empty((0, 3), int)
    dist, _ = cKDTree(curve * sp).query(cand * sp)
    return cand[dist <= diameter_mm / 2.0 + 1e-9]


def tube_indices(points, diameter_mm: float, spacing, shape) -> tuple:
    """Voxels of a tube of ``diameter_mm`` along the smooth curve through ``points``.

    Painted as overlapping spheres along the curve, as the paper's expert did by hand.
    """
    curve = centerline_curve(points, spacing, step_mm=_tube_step(spacing))
    keep = tube_of_curve(curve, diameter_mm, spacing, shape)
    return tuple(keep[:, i] for i in range(3))


def span_tube(controls, diameter_mm: float, spacing, shape) -> np.ndarray:
    """Sorted flat indices of the tube around one span (the union over spans is :func:`tube_indices`)."""
    keep = tube_of_curve(span_curve(controls, spacing, _tube_step(spacing)), diameter_mm, spacing, shape)
    return np.unique(np.ravel_multi_index(tuple(keep.T), shape)) if len(keep) else np.empty(0, np.int64)


def bright_path(image: np.ndarray, start, end, spacing, margin_mm: float = 4.0, power: float = 2.0) -> np.ndarray:
    """The brightest path between two voxel points (a minimal path on an inverse-intensity cost).

    The nerve is bright on MR neurography, so a path that stays on bright voxels follows it
    between two clicked points instead of cutting across bone or fat. The search is limited to
    the box spanned by the two points plus ``margin_mm`` on each side, and path lengths are in mm
    (:class:`skimage.graph.MCP_Geometric` with the voxel spacing), so anisotropy does not bias it.

    Parameters
    ----------
    image : (AP, SI, RL) ndarray
        The MR volume.
    start, end : sequence of 3 float
        Voxel coordinates (rounded to the nearest voxel).
    spacing : sequence of 3 float
        Voxel size in mm.
    margin_mm : float
        How far the path may leave the box spanned by the two points.
    power : float
        Contrast of the cost: cost = (1 - normalised intensity) ** power + a small floor.

    Returns
    -------
    (N, 3) float ndarray
        Voxel coordinates from ``start`` to ``end`` (both included).
    """
    from skimage.graph import MCP_Geometric

    sp = np.asarray(spacing, dtype=float)
    shape = np.asarray(image.shape)
    a = np.clip(np.round(np.asarray(start, float)).astype(int), 0, shape - 1)
    b = np.clip(np.round(np.asarray(end, float)).astype(int), 0, shape - 1)
    box = widened_box(np.minimum(a, b), np.maximum(a, b) + 1, margin_voxels(margin_mm, sp), shape)
    lo = np.asarray([s.start for s in box])
    crop = np.asarray(image[box], dtype=np.float32)
    # normalise on the crop's own range so local contrast counts, robust to a few hot voxels
    p_lo, p_hi = np.percentile(crop, (2.0, 99.5))
    norm = np.clip((crop - p_lo) / max(float(p_hi - p_lo), 1e-6), 0.0, 1.0)
    cost = (1.0 - norm) ** power + 0.02
    mcp = MCP_Geometric(cost, sampling=tuple(sp))
    mcp.find_costs([tuple(a - lo)], [tuple(b - lo)])
    path = np.asarray(mcp.traceback(tuple(b - lo)), dtype=float) + lo
    return path


def snap_pair(image: np.ndarray, a, b, spacing, node_mm: float = 2.0, margin_mm: float = 4.0) -> np.ndarray:
    """Nodes about ``node_mm`` apart along the brightest path from ``a`` to ``b`` (``b`` included, ``a`` not)."""
    sp = np.asarray(spacing, dtype=float)
    path = bright_path(image, a, b, spacing, margin_mm=margin_mm)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0) * sp, axis=1))])
    n = int(arc[-1] // node_mm)
    out = []
    if n >= 2:
        targets = np.linspace(0, arc[-1], n + 1)[1:-1]
        out = [path[int(np.argmin(np.abs(arc - t)))] for t in targets]
    return np.asarray(out + [np.asarray(b, dtype=float)], dtype=float)


def snapped_points(image: np.ndarray, points, spacing, node_mm: float = 2.0, margin_mm: float = 4.0,
                   pair=None) -> np.ndarray:
    """Clicked points joined by brightest paths, thinned to nodes every ``node_mm`` for smoothing.

    The voxel path is a staircase; keeping every clicked point plus nodes about ``node_mm`` apart
    lets :func:`centerline_curve` pass a smooth spline along the bright nerve. ``pair(a, b)``
    replaces :func:`snap_pair` (the tracer passes a cached one).
    """
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    if len(pts) < 2:
        return pts.copy()
    pair = pair or (lambda a, b: snap_pair(image, a, b, spacing, node_mm, margin_mm))
    return np.concatenate([pts[:1]] + [pair(a, b) for a, b in zip(pts[:-1], pts[1:])])
