"""Annotation geometry in millimetres: spherical brush strokes on anisotropic voxels.

The paper's expert traced each nerve with overlapping spherical brush strokes. A sphere of
diameter d mm covers a different number of voxels along each axis when the voxels are
anisotropic (0.8 x 1.6 x 0.43 mm here), so the brush is defined in mm and converted here.
"""
from __future__ import annotations

import numpy as np


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


def centerline_curve(points, spacing, step_mm: float = 0.25) -> np.ndarray:
    """A smooth curve through ordered voxel points (cubic spline by chord length in mm).

    Two points give a straight segment; the curve passes through every point.
    """
    from scipy.interpolate import make_interp_spline

    pts = np.atleast_2d(np.asarray(points, dtype=float))
    if len(pts) < 2:
        return pts.copy()
    sp = np.asarray(spacing, dtype=float)
    keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0) * sp, axis=1) > 1e-6])
    pts = pts[keep]
    if len(pts) < 2:
        return pts.copy()
    t = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0) * sp, axis=1))])
    k = min(3, len(pts) - 1)
    spline = make_interp_spline(t, pts, k=k, bc_type="natural" if k == 3 else None)
    # sample each span on its own so every clicked point is on the curve exactly
    tt = [np.linspace(a, b, max(2, int(np.ceil((b - a) / step_mm)) + 1))[:-1] for a, b in zip(t[:-1], t[1:])]
    return spline(np.concatenate(tt + [t[-1:]]))


def tube_indices(points, diameter_mm: float, spacing, shape) -> tuple:
    """Voxels of a tube of ``diameter_mm`` along the smooth curve through ``points``.

    Painted as overlapping spheres along the curve, as the paper's expert did by hand.
    """
    from scipy.spatial import cKDTree

    sp = np.asarray(spacing, dtype=float)
    curve = centerline_curve(points, spacing, step_mm=max(0.05, min(sp) / 4.0))
    # candidates: spheres a voxel wider around the rounded curve; kept: centres within the radius
    wide = sphere_offsets(diameter_mm + 2 * float(np.linalg.norm(sp)), spacing)
    cand = np.stack(stroke_indices(curve[:: max(1, len(curve) // 400)], wide, shape), axis=1)
    if not len(cand):
        return tuple(np.empty(0, int) for _ in range(3))
    dist, _ = cKDTree(curve * sp).query(cand * sp)
    keep = cand[dist <= diameter_mm / 2.0 + 1e-9]
    return tuple(keep[:, i] for i in range(3))
