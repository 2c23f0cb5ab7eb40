"""Nerve-path post-processing: one continuous nerve per side from a probability map.

A network that looks at a few slices at a time leaves two kinds of error the anatomy rules out:
pieces far from the nerve (a bright vessel, a lymph node) and gaps along it (a faint stretch, a
metal artefact). Per side, :func:`nerve_path` starts from a long piece of ``probability > 0.5``
and grows it piece by piece, nearest first (each of the ``seeds`` longest pieces is tried as the
start; the result with the longest course times mean probability is the nerve):

* a piece within ``keep_mm`` of the nerve is kept as it is (a branch, a bifid canal, the fringe);
  a short one (under ``min_piece_mm``) is not itself a place further pieces are measured from;
* a piece that lies ahead of one of the nerve's ends (nothing of the nerve beyond that end, the
  step to the piece within ``max_turn_deg`` of the nerve's course there, 1.5 times that for gaps
  up to ``bridge_mm``) and within ``far_mm`` (pieces beyond ``bridge_mm`` must be at least
  ``min_piece_mm`` long, and none smaller than ``min_bridge_mm3``) is joined by a bridge along the most probable path between them (a
  minimal path through ``1 / (p + floor)``), drawn as a tube of the nerve's own width;
* anything else (a piece beside the nerve, or far from it) is dropped.

This is the centreline-tracking post-processing the source study names as future work.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .boxes import margin_voxels, widened_box


@dataclasses.dataclass
class PathSettings:
    """Thresholds of :func:`nerve_path` (mm, degrees)."""

    threshold: float = 0.5
    keep_mm: float = 2.5
    bridge_mm: float = 10.0
    far_mm: float = 25.0
    min_piece_mm: float = 5.0
    max_turn_deg: float = 40.0
    min_bridge_mm3: float = 2.0      # smaller pieces are never bridged to (only kept when touching)
    probability_floor: float = 0.02
    seeds: int = 3                   # the longest pieces each tried as the nerve's start


@dataclasses.dataclass
class SideReport:
    """What :func:`nerve_path` did to one side."""

    pieces: int = 0           # connected pieces above the threshold
    kept: int = 0             # pieces in the result (the nerve, its branches, joined pieces)
    bridges: int = 0
    bridged_mm: float = 0.0   # total length of the bridges
    dropped: int = 0
    dropped_mm3: float = 0.0
    length_mm: float = 0.0    # extent of the result along its course
    mean_probability: float = float("nan")
    bridge_slices: list = dataclasses.field(default_factory=list)   # coronal slices a bridge crosses


def _piece(pts, prob, sp, ident=0):
    mm = pts * sp
    c = mm - mm.mean(axis=0)
    if len(pts) > 2:
        axis = np.linalg.svd(c, full_matrices=False)[2][0]
        proj = c @ axis
        length = float(proj.max() - proj.min())
    else:
        length = float(np.linalg.norm(sp))
    return {"pts": pts, "mm": mm, "length": length, "mass": float(prob[tuple(pts.T)].sum()), "id": ident}


def _pieces(mask, prob, sp):
    comp, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    return [_piece(np.argwhere(comp[sl] == i + 1) + [s.start for s in sl], prob, sp, i + 1)
            for i, sl in enumerate(ndimage.find_objects(comp))]


def grow_from(prob: np.ndarray, spacing, nerve: np.ndarray, candidates: np.ndarray,
              settings: PathSettings | None = None) -> np.ndarray:
    """``nerve`` (bool) grown by the pieces of ``candidates`` (bool) that continue it, by the rules
    of :func:`one_nerve` (kept when touching, bridged when ahead of an end; the rest dropped).

    For a nerve that is already known, as clicks give it (:mod:`.interactive`), where the model's
    nerve goes on past the clicked course."""
    st = settings or PathSettings()
    sp = np.asarray(spacing, dtype=float)
    cand = np.asarray(candidates, bool) & ~nerve
    if not nerve.any() or not cand.any():
        return np.array(nerve, bool)
    pieces = [_piece(np.argwhere(nerve), prob, sp)] + _pieces(cand, prob, sp)
    out, _ = _grow(prob, sp, pieces, 0, st)
    return out


def _continues(nerve_mm, here, there, d, max_turn_deg, radius=8.0) -> bool:
    """Whether a piece at ``there`` continues the nerve from its end ``here``: the nerve ends at
    ``here`` (nothing of it lies beyond, toward the piece) and the step to the piece turns at
    most ``max_turn_deg`` from the nerve's course there."""
    course = _direction_near(nerve_mm, here, radius)
    if course is None:
        return d <= radius
    step = (there - here) / max(d, 1e-6)
    if step @ course < 0:
        course = -course
    near = nerve_mm[np.linalg.norm(nerve_mm - here, axis=1) <= radius]
    if ((near - here) @ course).max() > 1.5:
        return False   # the nerve goes on past this point: the piece is beside it, not ahead
    return bool(np.degrees(np.arccos(min(1.0, float(step @ course)))) <= max_turn_deg)


def _direction_near(mm_pts, at, radius=8.0):
    """Principal direction of the points within ``radius`` mm of ``at``."""
    near = mm_pts[np.linalg.norm(mm_pts - at, axis=1) <= radius]
    if len(near) < 3:
        return None
    c = near - near.mean(axis=0)
    return np.linalg.svd(c, full_matrices=False)[2][0]


def probable_path(prob, a, b, sp, floor=0.02, margin_mm=4.0) -> np.ndarray:
    """Voxel path from ``a`` to ``b`` minimising the sum of ``1 / (p + floor)`` (mm-weighted)."""
    from skimage.graph import MCP_Geometric

    a, b = np.asarray(a, int), np.asarray(b, int)
    box = widened_box(np.minimum(a, b), np.maximum(a, b) + 1, margin_voxels(margin_mm, sp), prob.shape)
    lo = np.asarray([s.start for s in box])
    crop = np.asarray(prob[box], dtype=np.float32)
    mcp = MCP_Geometric(1.0 / (np.clip(crop, 0, 1) + floor), sampling=tuple(sp))
    mcp.find_costs([tuple(a - lo)], [tuple(b - lo)])
    return np.asarray(mcp.traceback(tuple(b - lo)), dtype=int) + lo


def ball_offsets(radius_mm, sp) -> np.ndarray:
    """Voxel offsets ``(n, 3)`` within ``radius_mm`` of a voxel on a grid of spacing ``sp``."""
    r = np.ceil(radius_mm / sp).astype(int)
    offs = np.argwhere(np.ones(2 * r + 1, bool)) - r
    return offs[np.linalg.norm(offs * sp, axis=1) <= radius_mm + 1e-6]


def _tube(mask_shape, path, radius_mm, sp) -> tuple:
    """Voxel indices within ``radius_mm`` of a voxel path."""
    idx = (path[:, None, :] + ball_offsets(radius_mm, sp)[None]).reshape(-1, 3)
    ok = np.all((idx >= 0) & (idx < np.asarray(mask_shape)), axis=1)
    return tuple(idx[ok].T)


def _course_length(mm):
    if len(mm) < 3:
        return 0.0
    c = mm - mm.mean(axis=0)
    proj = c @ np.linalg.svd(c, full_matrices=False)[2][0]
    return float(proj.max() - proj.min())


def one_nerve(prob: np.ndarray, spacing, settings: PathSettings | None = None):
    """The nerve of one side: ``(mask, SideReport)`` from that side's probability map."""
    st = settings or PathSettings()
    sp = np.asarray(spacing, dtype=float)
    mask = prob > st.threshold
    if not mask.any():
        return mask, SideReport()
    pieces = _pieces(mask, prob, sp)
    pieces.sort(key=lambda p: (p["length"], p["mass"]), reverse=True)
    best = None
    for i in range(min(st.seeds, len(pieces))):
        if i and pieces[i]["length"] < st.min_piece_mm:
            break
        out, rep = _grow(prob, sp, pieces, i, st)
        # the nerve is the longest, surest course: a false piece may be longer than any one
        # piece of the nerve, but does not grow into a long course of confident pieces
        score = rep.length_mm * rep.mean_probability
        if best is None or score > best[0]:
            best = (score, out, rep)
    return best[1], best[2]


def _grow(prob, sp, pieces, seed, st):
    """Grow the nerve from ``pieces[seed]`` (see the module docstring)."""
    rep = SideReport(pieces=len(pieces))
    nerve = pieces[seed]
    out = np.zeros(prob.shape, bool)
    out[tuple(nerve["pts"].T)] = True
    kept_mm = [nerve["mm"]]
    rest = pieces[:seed] + pieces[seed + 1:]
    # the nerve's own radius, from its coronal cross-sections (area of a disc)
    areas = np.bincount(nerve["pts"][:, 0])
    areas = areas[areas > 0] * sp[1] * sp[2]
    radius = float(np.clip(np.sqrt(np.median(areas) / np.pi), 0.6, 2.0)) if areas.size else 1.0
    rep.kept = 1
    voxel_mm3 = float(np.prod(sp))

    def closest(tree, p):
        d, j = tree.query(p["mm"])
        k = int(np.argmin(d))
        return float(d[k]), k, tree.data[int(j[k])]

    # each remaining piece's closest approach to what is kept so far, updated as pieces join
    tree = cKDTree(nerve["mm"])
    best = [closest(tree, p) for p in rest]
    while rest:
        all_kept = np.concatenate(kept_mm)
        accepted = None
        for oi in np.argsort([b_[0] for b_ in best]):
            p, (d, k, here) = rest[oi], best[oi]
            if d > st.far_mm:
                break
            if d <= st.keep_mm:
                accepted = (oi, False)
                break
            if len(p["pts"]) * voxel_mm3 < st.min_bridge_mm3:
                continue   # a speck beyond the fringe is not joined from afar
            if (d <= st.bridge_mm or p["length"] >= st.min_piece_mm) and _continues(
                    all_kept, here, p["mm"][k], d, st.max_turn_deg * (1.5 if d <= st.bridge_mm else 1.0)):
                accepted = (oi, True)
                break
        if accepted is None:
            break
        oi, bridge = accepted
        p, (d, k, here) = rest[oi], best[oi]
        added = [p["mm"]]
        if bridge:
            a = np.rint(here / sp).astype(int)
            path = probable_path(prob, a, p["pts"][k], sp, st.probability_floor)
            out[_tube(prob.shape, path, radius, sp)] = True
            rep.bridges += 1
            rep.bridged_mm += float(np.linalg.norm(np.diff(path * sp, axis=0), axis=1).sum())
            rep.bridge_slices += sorted(set(int(i) for i in path[:, 0]))
            added.append(path * sp)
        out[tuple(p["pts"].T)] = True
        rep.kept += 1
        del rest[oi], best[oi]
        if not bridge and p["length"] < st.min_piece_mm:
            continue   # a short fringe piece is kept but anchors nothing: specks never chain through a field of them
        kept_mm.append(p["mm"])
        tree = cKDTree(np.concatenate(added))
        best = [min(b_, closest(tree, q), key=lambda t: t[0]) for b_, q in zip(best, rest)]
    for p in rest:
        rep.dropped += 1
        rep.dropped_mm3 += len(p["pts"]) * float(np.prod(sp))
    pts = np.argwhere(out)
    rep.length_mm = _course_length(pts * sp)
    rep.mean_probability = float(prob[out].mean()) if out.any() else float("nan")
    return out, rep


def nerve_path(prob: np.ndarray, spacing, midline: int, settings: PathSettings | None = None):
    """Labels (1 right, 2 left) with one continuous nerve per side, and a report per side.

    Parameters
    ----------
    prob : (AP, SI, RL) float ndarray
        Nerve probability (either side) on the volume's canonical grid.
    spacing : 3 floats, mm
    midline : int
        First column (RL axis) of the patient's left half.
    settings : PathSettings, optional

    Returns
    -------
    labels : uint8 ndarray
    reports : dict ``{1: SideReport, 2: SideReport}``
    """
    st = settings or PathSettings()
    labels = np.zeros(prob.shape, np.uint8)
    reports = {}
    for code, cols in ((1, slice(0, midline)), (2, slice(midline, prob.shape[2]))):
        half = prob[:, :, cols]
        mask = half > st.threshold
        if not mask.any():
            reports[code] = SideReport()
            continue
        # work on the box around this side's candidates (plus room for bridges)
        pad = np.ceil(st.far_mm / np.asarray(spacing)).astype(int)
        nz = np.argwhere(mask)
        lo = np.maximum(nz.min(axis=0) - pad, 0)
        hi = np.minimum(nz.max(axis=0) + pad + 1, half.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        m, rep = one_nerve(half[box], spacing, st)
        rep.bridge_slices = [i + int(lo[0]) for i in rep.bridge_slices]
        sub = labels[:, :, cols]
        sub[box][m] = code
        reports[code] = rep
    return labels, reports
