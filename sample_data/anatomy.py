"""The lower face as a map of tissue classes, with both inferior alveolar nerves labelled.

This is the phantom's anatomy, kept apart from how it looks on a scanner: :func:`tissue_map`
rasterises one patient's anatomy onto any axis-aligned grid as an integer map of
:data:`TISSUES` (cortical bone, marrow, teeth and pulp, the mandibular canal, the nerve, the
artery and vein beside it, other nerves and vessels, muscles, tongue, glands, lymph nodes, fat,
skin, airway and sinuses, vertebrae, disc, spinal cord and CSF, skull base and brain, dental
metal) plus the IAN labels (0 background, 1 right, 2 left). :mod:`.render` turns a tissue map
into an MR image, either with one fixed nerve-selective look (the sample phantom) or with
randomised contrasts and artefacts (training data that teaches shape and context rather than one
generator's look, after Billot et al., SynthSeg, Med Image Anal 2023).

Anatomy is placed in millimetres with ``x`` lateral (patient's left positive), ``y`` posterior
of the chin and ``z`` inferior of the cranial base (the skull base's lower surface is z = 0).
Grids map onto it as canonical arrays: axis 0 anterior -> posterior (y), axis 1 superior ->
inferior (z), axis 2 patient's right -> left (x).

The IAN runs from the foramen ovale (where the mandibular nerve leaves the skull) down between
the pterygoid muscles, into the mandibular foramen on the inner face of the ramus, down and
forward in the mandibular canal below the molar roots, to the mental foramen (in some patients
after an anterior loop; in some a bifid canal branches off). The nerve tissue continues above
the skull base (to the trigeminal ganglion) and beyond the mental foramen (the mental nerve);
neither is labelled. The label is drawn a little inside the nerve's edge (partial volume).
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy.interpolate import make_interp_spline
from scipy.spatial import cKDTree

TISSUES = (
    "background", "air", "skin", "fat", "soft", "masseter", "pterygoid", "floor_muscle", "neck_muscle",
    "tongue", "parotid", "submandibular", "node", "cortex", "marrow", "tooth", "pulp", "canal", "nerve",
    "ian_artery", "ian_vein", "artery", "vein", "other_nerve", "mucosa", "vertebra", "disc", "cord", "csf",
    "brain", "metal",
)
"""Tissue classes of the map, in the order of their integer codes."""
T = {name: i for i, name in enumerate(TISSUES)}


@dataclasses.dataclass
class AnatomyParams:
    """One patient's anatomy, drawn from a seed by :func:`draw_anatomy`; all lengths in mm."""

    seed: int
    scale: float
    arch_half_width: float    # half distance between the gonial angles
    arch_length: float        # chin to gonial angle
    arch_power: float         # arch shape y = L |u|^p: 2 parabolic, lower = squarer
    body_height: float        # alveolar crest to inferior border (molar region)
    ramus_height: float
    ramus_lean: float         # backward lean of the ramus (mm of y per mm of z)
    nerve_radius: tuple       # (right, left)
    canal_depth: tuple        # height of the canal above the inferior border (molar region)
    mental_arc: tuple         # arc length of the mental foramen from the midline
    anterior_loop: tuple      # mm, 0 = none
    bifid: tuple              # length of a bifid (retromolar) canal branch, 0 = none
    vessel_turn: tuple        # angle (rad) of the artery/vein pair around the nerve
    vein_radius: float
    missing_teeth: list       # (jaw, side, index)
    metal: list               # dicts: side, tooth, jaw, kind, radius, near_canal
    nodes: list               # (side, x, y, z, r) in units of the arch (filled when drawn)
    tongue_scale: float
    vertebra_y: float         # y of the vertebral bodies' front
    head_extra: float         # soft tissue beyond the gonial angles

    def summary(self) -> dict:
        return {
            "seed": self.seed,
            "nerve_diameter_right_mm": round(2 * self.nerve_radius[0], 2),
            "nerve_diameter_left_mm": round(2 * self.nerve_radius[1], 2),
            "anterior_loop_right_mm": round(self.anterior_loop[0], 1),
            "anterior_loop_left_mm": round(self.anterior_loop[1], 1),
            "bifid_right_mm": round(self.bifid[0], 1), "bifid_left_mm": round(self.bifid[1], 1),
            "metal_objects": len(self.metal),
            "metal_near_canal": sum(bool(m["near_canal"]) for m in self.metal),
        }


def draw_anatomy(seed: int, **overrides) -> AnatomyParams:
    """One patient's anatomy from ``seed`` (deterministic); keywords override any field."""
    rng = np.random.default_rng([seed, 11])
    s = float(rng.uniform(0.88, 1.12))
    metal = []
    for _ in range(int(rng.choice([0, 0, 1, 1, 2, 2, 3, 4]))):
        near = bool(rng.random() < 0.35)
        metal.append({
            "side": int(rng.choice([-1, 1])), "tooth": int(rng.integers(3, 8)),
            "jaw": "lower" if (near or rng.random() < 0.6) else "upper",
            "kind": "implant" if near else str(rng.choice(["crown", "filling", "crown"])),
            "radius": float(rng.uniform(2.0, 4.0)) * (1.2 if near else 1.0), "near_canal": near,
        })
    missing = [(str(rng.choice(["lower", "upper"])), int(rng.choice([-1, 1])), int(rng.integers(0, 8)))
               for _ in range(int(rng.choice([0, 0, 0, 1, 2, 3])))]
    nodes = [(int(rng.choice([-1, 1])), float(rng.uniform(-0.25, 0.05)), float(rng.uniform(-0.3, 0.2)),
              float(rng.uniform(-2, 14)), float(rng.uniform(1.8, 4.5))) for _ in range(int(rng.integers(2, 7)))]
    p = AnatomyParams(
        seed=seed, scale=s,
        arch_half_width=float(rng.uniform(42, 51) * s), arch_length=float(rng.uniform(63, 78) * s),
        arch_power=float(rng.uniform(1.6, 2.4)),
        body_height=float(rng.uniform(23, 32) * s), ramus_height=float(rng.uniform(46, 58) * s),
        ramus_lean=float(rng.uniform(0.15, 0.4)),
        nerve_radius=tuple(float(r) for r in rng.uniform(0.95, 1.5, 2)),
        canal_depth=tuple(float(d) for d in rng.uniform(6.5, 11.0, 2)),
        mental_arc=tuple(float(a) for a in rng.uniform(25, 33, 2) * s),
        anterior_loop=tuple(float(a) if rng.random() < 0.45 else 0.0 for a in rng.uniform(2.0, 6.0, 2)),
        bifid=tuple(float(b) if rng.random() < 0.12 else 0.0 for b in rng.uniform(10.0, 22.0, 2)),
        vessel_turn=tuple(float(a) for a in rng.uniform(-0.6, 0.6, 2)),
        vein_radius=float(rng.uniform(0.5, 1.0)),
        missing_teeth=missing, metal=metal, nodes=nodes,
        tongue_scale=float(rng.uniform(0.9, 1.1)), vertebra_y=float(rng.uniform(18, 28)),
        head_extra=float(rng.uniform(12, 20)),
    )
    return dataclasses.replace(p, **overrides) if overrides else p


# ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Grid:
    """An axis-aligned voxel grid over the anatomy: ``shape``, ``spacing`` (mm) and ``origin``,
    the (y, z, x) position in mm of voxel (0, 0, 0)."""

    shape: tuple
    spacing: tuple
    origin: tuple

    @property
    def coords(self):
        """Broadcastable y (n0,1,1), z (1,n1,1) and x (1,1,n2) voxel centres in mm (float32)."""
        y = (self.origin[0] + np.arange(self.shape[0]) * self.spacing[0]).astype(np.float32)[:, None, None]
        z = (self.origin[1] + np.arange(self.shape[1]) * self.spacing[1]).astype(np.float32)[None, :, None]
        x = (self.origin[2] + np.arange(self.shape[2]) * self.spacing[2]).astype(np.float32)[None, None, :]
        return y, z, x

    def to_index(self, xyz) -> np.ndarray:
        """(N, 3) anatomy points (x, y, z) mm -> (N, 3) fractional voxel indices (ap, si, rl)."""
        xyz = np.atleast_2d(np.asarray(xyz, dtype=float))
        o, sp = np.asarray(self.origin), np.asarray(self.spacing)
        return np.stack([(xyz[:, 1] - o[0]) / sp[0], (xyz[:, 2] - o[1]) / sp[1], (xyz[:, 0] - o[2]) / sp[2]], 1)

    def box(self, lo_xyz, hi_xyz):
        """Index slices covering the anatomy box [lo, hi] (x, y, z mm), or None when outside."""
        a, b = self.to_index(lo_xyz)[0], self.to_index(hi_xyz)[0]
        lo, hi = np.floor(np.minimum(a, b)).astype(int), np.ceil(np.maximum(a, b)).astype(int) + 1
        out = []
        for l_, h, n in zip(lo, hi, self.shape):
            l_, h = max(int(l_), 0), min(int(h), n)
            if h <= l_:
                return None
            out.append(slice(l_, h))
        return tuple(out)

    def sub(self, box) -> "Grid":
        """The grid of a box of this grid."""
        o = tuple(self.origin[i] + box[i].start * self.spacing[i] for i in range(3))
        return Grid(tuple(b.stop - b.start for b in box), self.spacing, o)


def _maxr(arrays):
    return functools.reduce(np.maximum, arrays)


def _superellipsoid(dx, dy, dz, a, b, c, n=4.0):
    """Approximate signed distance (mm) to a rounded box with half sizes a, b, c."""
    r = (np.abs(dx / a) ** n + np.abs(dy / b) ** n + np.abs(dz / c) ** n) ** (1.0 / n)
    return (r - 1.0) * min(a, b, c)


def _ellipsoid(dx, dy, dz, a, b, c):
    return (np.sqrt((dx / a) ** 2 + (dy / b) ** 2 + (dz / c) ** 2) - 1.0) * min(a, b, c)


def _smooth_curve(points, n=1600):
    """A C2 spline through control points (chord-length parameter), densely sampled."""
    pts = np.asarray(points, dtype=float)
    t = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    return make_interp_spline(t, pts, k=3, bc_type="natural")(np.linspace(0, t[-1], n))


class Arch:
    """A dental arch in the axial plane: ``x = W u``, ``y = y0 + L |u|^p`` for u in [-1, 1]
    (u = -1 the right gonial angle, 0 the chin, 1 the left angle)."""

    def __init__(self, half_width, length, y0=0.0, power=2.0):
        self.W, self.L, self.y0, self.p = half_width, length, y0, power
        self.u = np.linspace(-1.0, 1.0, 2001)
        self.pts = np.stack([self.W * self.u, self.y0 + self.L * np.abs(self.u) ** self.p], axis=1)
        seg = np.linalg.norm(np.diff(self.pts, axis=0), axis=1)
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        self.arc = arc - np.interp(0.0, self.u, arc)
        tang = np.gradient(self.pts, axis=0)
        self.tangents = tang / np.linalg.norm(tang, axis=1, keepdims=True)
        # outward (buccal) normal: the tangent turned toward the outside of the U
        self.normals = np.stack([self.tangents[:, 1], -self.tangents[:, 0]], axis=1)
        self.tree = cKDTree(self.pts)

    def _at(self, table, u):
        return np.array([np.interp(u, self.u, table[:, 0]), np.interp(u, self.u, table[:, 1])])

    def point(self, u):
        return self._at(self.pts, u)

    def normal(self, u):
        n = self._at(self.normals, u)
        return n / np.linalg.norm(n)

    def tangent(self, u):
        t = self._at(self.tangents, u)
        return t / np.linalg.norm(t)

    def u_at_arc(self, s):
        return float(np.interp(s, self.arc, self.u))

    def frame(self, x, y):
        """Signed buccal distance and arch parameter of axial points (nearest arch point)."""
        shape = np.broadcast(x, y).shape
        q = np.stack([np.broadcast_to(x, shape).ravel(), np.broadcast_to(y, shape).ravel()], axis=1)
        dist, idx = self.tree.query(q)
        sign = np.sign(((q - self.pts[idx]) * self.normals[idx]).sum(axis=1))
        return (dist * np.where(sign == 0, 1, sign)).reshape(shape), self.u[idx].reshape(shape)


class _Painter:
    """Writes tissue codes into a map, locally where a structure has a bounding box."""

    def __init__(self, grid: Grid):
        self.grid = grid
        self.tissue = np.full(grid.shape, T["background"], dtype=np.uint8)
        self.Y, self.Z, self.X = grid.coords

    def paint(self, sd, name, where=None, box=None):
        """``tissue[sd < 0] = name`` (optionally only where ``where``; ``sd`` on ``box``)."""
        target = self.tissue if box is None else self.tissue[box]
        m = np.broadcast_to(sd < 0, target.shape)
        if where is not None:
            m = m & np.broadcast_to(where, target.shape)
        target[m] = T[name]

    def local(self, lo_xyz, hi_xyz):
        """(box, Y, Z, X) for a local structure, or None when it misses the grid."""
        box = self.grid.box(lo_xyz, hi_xyz)
        if box is None:
            return None
        return box, self.Y[box[0]], self.Z[:, box[1]], self.X[:, :, box[2]]


@dataclasses.dataclass
class Landmarks:
    """Heights and shapes every structure is placed by (mm, anatomy coordinates)."""

    z_inf: float      # inferior border of the mandible
    z_crest: float    # lower alveolar crest
    z_occ: float      # occlusal plane
    z_palate: float
    arch: Arch
    upper: Arch
    W: float
    L: float

    def ramus_y_post(self, z, lean):
        return self.L + 4.0 + (self.z_inf - z) * lean

    def extent(self):
        """The anatomy's whole box (x, y, z) lo and hi in mm."""
        return (np.array([-(self.W + 32.0), -22.0, -28.0]),
                np.array([self.W + 32.0, self.L + 75.0, self.z_inf + 40.0]))


def landmarks(p: AnatomyParams) -> Landmarks:
    z_inf = 80.0 * p.scale
    z_crest = z_inf - p.body_height
    z_occ = z_crest - 7.5
    W, L = p.arch_half_width, p.arch_length
    return Landmarks(z_inf, z_crest, z_occ, z_occ - 21.0 * p.scale, Arch(W, L, 0.0, p.arch_power),
                     Arch(W + 2.5, L + 1.0, -2.5, p.arch_power), W, L)


# ------------------------------------------------------------------------------------------
def nerve_paths(p: AnatomyParams, lm: Landmarks | None = None) -> dict:
    """Centrelines of each side's nerve and its companions, in mm (x, y, z), densely sampled.

    Returns ``{side: {"ian", "labelled" (bool per ian point), "above", "mental", "artery", "vein",
    "lingual", "bifid" (or None), "radius"}}`` with side -1 = right, +1 = left.
    """
    lm = lm or landmarks(p)
    arch, W, z_inf, z_occ = lm.arch, lm.W, lm.z_inf, lm.z_occ
    y_post = functools.partial(lm.ramus_y_post, lean=p.ramus_lean)
    out = {}
    for side_i, s in enumerate((-1, 1)):
        r = p.nerve_radius[side_i]
        depth = p.canal_depth[side_i]
        u_m = arch.u_at_arc(s * p.mental_arc[side_i])
        x_ramus = W + 1.0

        def on_arch(u, d_h, z):
            xy = arch.point(u) + d_h * arch.normal(u)
            return [xy[0], xy[1], z]

        y_fo = y_post(6.0) - 14.0
        z_mf = z_occ - 3.0
        y_mf = y_post(z_mf) - 14.0
        x_inner = x_ramus - 3.8       # just inside the lingual cortex of the ramus
        ctrl = [
            [s * (W * 0.50), y_fo + 1.0, -1.5],                              # in the foramen ovale
            [s * (W * 0.53), y_fo, 1.5],                                     # leaving the skull base
            [s * (W * 0.64), y_fo - 1.0, 15.0],                              # infratemporal fossa
            [s * (W - 8.5), y_mf + 2.0, z_mf - 11.0],                        # between the pterygoids
            [s * (x_inner - 1.6), y_mf, z_mf],                               # mandibular foramen
            [s * (x_inner + 1.4), y_mf - 5.0, z_mf + 10.0],                  # in the ramus canal
            on_arch(s * 0.985, -1.3, z_inf - depth - 1.5),                  # near the angle
            on_arch(arch.u_at_arc(s * 54.0 * p.scale), -1.0, z_inf - depth),  # below the molars
            on_arch(arch.u_at_arc(s * 40.0 * p.scale), -0.3, z_inf - depth - 0.5),
        ]
        loop = p.anterior_loop[side_i]
        if loop > 0:
            ctrl += [on_arch(arch.u_at_arc(s * (p.mental_arc[side_i] - loop)), 0.6, z_inf - depth - 1.5),
                     on_arch(arch.u_at_arc(s * (p.mental_arc[side_i] - loop * 0.4)), 2.2, z_inf - depth - 4.0),
                     on_arch(u_m, 3.6 + 1.8 * (1 - abs(u_m)), z_inf - depth - 5.0)]
        else:
            ctrl += [on_arch(arch.u_at_arc(s * (p.mental_arc[side_i] + 3.0)), 0.8, z_inf - depth - 1.5),
                     on_arch(u_m, 3.6 + 1.8 * (1 - abs(u_m)), z_inf - depth - 4.0)]
        curve = _smooth_curve(ctrl)
        labelled = curve[:, 2] >= 0.0           # below the skull base's lower surface
        # the mandibular nerve above the skull base, to the trigeminal ganglion (not labelled)
        above = _smooth_curve([curve[0], [s * W * 0.46, y_fo + 3.0, -6.0], [s * W * 0.36, y_fo + 1.0, -12.0],
                               [s * W * 0.30, y_fo - 3.0, -15.0]], 200)
        # the mental nerve outside the bone (not labelled)
        t_end = curve[-1] - curve[-30]
        t_end /= np.linalg.norm(t_end)
        mental = curve[-1] + t_end * np.linspace(0, 6, 40)[:, None] + np.array([0, 0, -1.0]) * np.linspace(0, 2, 40)[:, None]
        # artery and vein beside the nerve, turned by a per-patient angle about it
        tang = np.gradient(curve, axis=0)
        tang /= np.linalg.norm(tang, axis=1, keepdims=True)
        side_dir = np.cross(tang, [0.0, 0.0, -1.0])
        side_dir /= np.linalg.norm(side_dir, axis=1, keepdims=True) + 1e-9
        up = np.cross(side_dir, tang)
        a0 = p.vessel_turn[side_i]
        artery = curve + (r + 0.8) * (np.cos(0.8 + a0) * up + np.sin(0.8 + a0) * side_dir * s)
        vein = curve + (r + p.vein_radius + 0.3) * (np.cos(-0.7 + a0) * up + np.sin(-0.7 + a0) * side_dir * s)
        # the lingual nerve: from V3 below the skull base, forward and down medial to the ramus
        j = int(np.argmin(np.abs(curve[:, 2] - 12.0)))
        lingual = _smooth_curve([curve[j], [s * (W - 12.0), y_mf + 4.0, z_mf - 6.0],
                                 [s * (W - 11.0), y_mf - 10.0, z_occ + 6.0],
                                 on_arch(arch.u_at_arc(s * 45.0 * p.scale), -8.0, z_occ + 9.0),
                                 on_arch(arch.u_at_arc(s * 30.0 * p.scale), -13.0, z_occ + 11.0)], 600)
        bifid = None
        if p.bifid[side_i] > 0:   # a retromolar branch from the canal near the angle, up and forward
            k = int(np.argmin(np.linalg.norm(curve[:, :2] - arch.point(s * 0.9), axis=1)
                              + 50 * (curve[:, 2] < z_occ)))
            start = curve[k]
            bifid = _smooth_curve([start, start + np.array([s * -0.5, -p.bifid[side_i] * 0.5, -3.0]),
                                   start + np.array([s * -1.0, -p.bifid[side_i], -7.0])], 200)
        out[s] = {"ian": curve, "labelled": labelled, "above": above, "mental": mental, "artery": artery,
                  "vein": vein, "lingual": lingual, "bifid": bifid, "radius": r}
    return out


# ------------------------------------------------------------------------------------------
def tissue_map(p: AnatomyParams, grid: Grid, label_inset: float = 0.3, with_labels: bool = True):
    """Rasterise one patient's anatomy on ``grid``.

    Parameters
    ----------
    p : AnatomyParams
    grid : Grid
        Any axis-aligned grid (the anatomy's whole extent is about
        ``Landmarks.extent()``; outside it the map is background).
    label_inset : float
        The label is the nerve minus this margin (mm): drawn a little inside its edge.

    Returns
    -------
    tissue : uint8 ndarray
        Codes of :data:`TISSUES`.
    labels : uint8 ndarray or None
        0 background, 1 right IAN, 2 left IAN (:func:`ian_labels`; None unless ``with_labels``).
    info : dict
        ``paths`` (:func:`nerve_paths`), ``metal`` (centre, radius, kind of each metal object in
        mm), ``landmarks``.
    """
    lm = landmarks(p)
    P = _Painter(grid)
    Y, Z, X = P.Y, P.Z, P.X
    W, L, z_inf, z_crest, z_occ, z_palate = lm.W, lm.L, lm.z_inf, lm.z_crest, lm.z_occ, lm.z_palate
    arch, upper = lm.arch, lm.upper
    y_post = functools.partial(lm.ramus_y_post, lean=p.ramus_lean)
    rng = np.random.default_rng([p.seed, 23])

    # ---- head, neck and skin ------------------------------------------------------------------
    half_w = (W + p.head_extra) + 8.0 * np.clip((z_occ - Z) / 40.0, -1, 1) - 6.0 * np.clip((Z - z_inf - 10) / 25, 0, 1)
    ex = X / half_w
    ey = (Y + 4.0 - 60.0) / 64.0
    head_r = np.sqrt(ex ** 2 + np.clip(ey, None, 0) ** 2 + np.clip(ey, 0, None) ** 2 * 0.2)
    chin_floor = z_inf + 6.0 + 14.0 * np.clip((Y - 12.0) / 30.0, 0, 1)     # under the chin, then the neck
    neck_front = np.clip(Z - chin_floor, 0, None)
    neck_sd = _ellipsoid(X, Y - (L + 30.0), 0.0 * Z, W * 1.05, 48.0, 1e6)     # the neck's cylinder
    head_sd = np.minimum((head_r - 1.0) * 30.0 + neck_front * 1.5, np.where(Z > z_inf, neck_sd, 1e3))
    P.paint(head_sd, "soft")
    P.paint(np.abs(head_sd + 4.5) - 3.0, "fat", where=head_sd < 0)
    P.paint(np.abs(head_sd + 0.8) - 0.8, "skin", where=head_sd < 0)

    # ---- skull base and brain (above z = 0, posterior of the maxilla) -------------------------
    fossa = (Y > 22.0) & (Y < L + 48.0) & (np.abs(X) < W + 12.0)
    P.paint(np.maximum(np.abs(Z + 3.0) - 3.0, head_sd + 6.0), "marrow", where=fossa)
    P.paint(np.maximum(np.abs(np.abs(Z + 3.0) - 2.4) - 0.6, head_sd + 6.0), "cortex", where=fossa)
    P.paint(np.maximum(Z + 6.5, head_sd + 6.0), "brain", where=fossa)
    P.paint(np.maximum(np.abs(Z + 6.5) - 0.8, head_sd + 6.0), "csf", where=fossa)
    # clivus: the sloping bone behind the nasopharynx
    cl_sd = _maxr([np.abs(X) - 11.0, np.abs((Y - (L + 14.0)) - 0.55 * Z) - 5.0, Z - 24.0, -Z - 6.0])
    P.paint(cl_sd, "marrow")
    P.paint(np.maximum(np.abs(cl_sd + 0.8) - 0.8, cl_sd), "cortex")

    # ---- muscles ------------------------------------------------------------------------------
    y_mid = lambda z: y_post(z) - 15.0                                     # noqa: E731
    for s in (-1, 1):
        P.paint(_superellipsoid(X - s * (W + 8.5), Y - (y_mid(Z) - 3.0), Z - (z_inf + 12.0) / 2.0,
                                6.5, 17.0, (z_inf - 12.0) / 2.0), "masseter", where=head_sd < 0)
        x_mp = s * (W - 9.0 - 0.22 * np.clip(z_inf - Z, 0, None))
        P.paint(_superellipsoid(X - x_mp, Y - (y_mid(Z) + 2.0), Z - (z_inf + 14.0) / 2.0 - 2.0,
                                5.0, 9.0, (z_inf - 18.0) / 2.0), "pterygoid")
        P.paint(_superellipsoid(X - s * (W - 14.0), Y - (y_post(12.0) - 22.0), Z - 17.0, 8.0, 12.0, 7.0),
                "pterygoid")
        P.paint(np.sqrt(((X - s * (W + 4.0)) / 11.0) ** 2 + ((Y - y_post(Z) - 11.0) / 11.0) ** 2
                        + ((Z - (z_occ + 2.0)) / 26.0) ** 2) * 10.0 - 10.0, "parotid", where=head_sd < -1)
        P.paint(np.sqrt(((X - s * (W - 12.0)) / 8.0) ** 2 + ((Y - (L - 12.0)) / 11.0) ** 2
                        + ((Z - (z_inf + 2.0)) / 7.0) ** 2) * 7.0 - 7.0, "submandibular")
    # floor of the mouth (mylohyoid sling) under the tongue, inside the mandible
    d_up, u_up = arch.frame(X, Y)
    floor_sd = _maxr([np.abs(Z - (z_inf - 3.0 + 0.03 * (np.abs(X) ** 1.5) / max(W, 1) * 4)) - 2.2,
                      d_up + 4.0, Y - (L - 4.0)])
    P.paint(floor_sd, "floor_muscle")
    # neck: prevertebral and posterior muscles
    vy = L + p.vertebra_y
    P.paint(_superellipsoid(X, Y - (vy + 38.0), Z - (z_inf + 10.0), W * 0.55, 20.0, 60.0), "neck_muscle",
            where=head_sd < -3)
    P.paint(_superellipsoid(X, Y - (vy - 3.0), Z - (z_inf + 5.0), 13.0, 3.5, 60.0), "neck_muscle")

    # ---- tongue, oral air, airway ---------------------------------------------------------------
    ts = p.tongue_scale
    t_sd = np.sqrt((X / ((W - 15.0) * ts)) ** 2 + ((Y - 0.46 * L - 6.0) / (0.55 * L * ts)) ** 2
                   + ((Z - (z_occ + 12.0)) / (15.0 * ts)) ** 2) * 14.0 - 14.0
    P.paint(t_sd, "tongue")
    P.paint(np.maximum(np.abs(X) - 0.6, t_sd), "fat")                       # lingual septum
    P.paint(np.maximum(np.abs(X) - 6.0, np.maximum(t_sd + 4.0, np.abs(Z - (z_occ + 14.0)) - 3.0)),
            "floor_muscle")                                                # genioglossus core
    du, uu = upper.frame(X, Y)
    oral = _maxr([np.abs(t_sd - 1.2) - 1.0, (z_occ + 3.0) - Z, -du - 4.0, Y - 0.85 * L])
    P.paint(oral, "air")
    air_sd = np.sqrt((X / 9.0) ** 2 + ((Y - (L + 12.0)) / 7.0) ** 2) * 7.0 - 7.0
    naso = _maxr([_superellipsoid(X, Y - (L + 6.0), Z - 14.0, 12.0, 8.0, 12.0), -Z + 4.0])
    airway = np.minimum(np.maximum(air_sd, Z - (z_inf + 40.0)), naso)
    P.paint(np.maximum(np.abs(airway - 1.2) - 1.0, -airway - 3.0), "mucosa", where=Z > 4.0)
    P.paint(airway, "air", where=Z > 2.0)

    # ---- lymph nodes ------------------------------------------------------------------------------
    for s, fx, fy, dz, r in p.nodes:
        c = (s * W * (1.0 + fx), L * (1.0 + fy), z_inf + dz)
        loc = P.local(np.array(c) - 2 * r, np.array(c) + 2 * r)
        if loc is None:
            continue
        box, yb, zb, xb = loc
        P.paint(_ellipsoid(xb - c[0], yb - c[1], zb - c[2], r, 1.4 * r, 1.2 * r), "node", box=box)

    # ---- maxilla, palate, nasal cavity, sinuses --------------------------------------------------
    widen = np.clip((z_occ - 6.5 - Z) / 12.0, 0, 1)
    maxilla_sd = _maxr([np.abs(du + 1.0) - (3.2 + 4.5 * widen), z_palate - 3.0 - Z, Z - (z_occ - 6.5),
                        np.abs(uu) - 0.93])
    z_vault = z_palate - 5.0 * (1.0 - np.clip((X / (W - 8.0)) ** 2, 0, 1))
    palate_sd = _maxr([du + 2.0, np.abs(Z - z_vault) - 2.0, np.abs(uu) - 0.9, Y - 0.62 * L])
    max_sd = np.minimum(maxilla_sd, palate_sd)
    P.paint(max_sd, "marrow", where=head_sd < 0)
    P.paint(np.maximum(np.abs(max_sd + 0.9) - 0.9, max_sd), "cortex", where=head_sd < 0)
    nasal_sd = np.maximum(_superellipsoid(X, Y - 0.38 * L, Z - z_palate + 3.0, 14.0, 0.36 * L, 40.0),
                          Z - (z_palate - 3.0))
    P.paint(nasal_sd, "air")
    P.paint(np.maximum(np.abs(X) - 1.2, nasal_sd + 1.0), "mucosa")
    for s in (-1, 1):
        for zt in (z_palate - 9.0, z_palate - 20.0):
            P.paint(np.maximum(np.sqrt(((X - s * 11.0) / 3.0) ** 2 + ((Z - zt) / 4.0) ** 2) * 3.0 - 3.0, nasal_sd),
                    "mucosa")
        sin_sd = np.sqrt(((X - s * 27.0) / 11.0) ** 2 + ((Y - 0.45 * L) / 16.0) ** 2
                         + ((Z - (z_palate - 16.0)) / 14.0) ** 2) * 11.0 - 11.0
        P.paint(np.abs(sin_sd) - 0.9, "cortex", where=head_sd < 0)
        P.paint(sin_sd + 0.9, "air")
        P.paint(np.abs(sin_sd + 1.6) - 0.7, "mucosa", where=sin_sd < -0.9)

    # ---- vertebrae C1-C4, discs, spinal canal ------------------------------------------------------
    vb_top = z_occ - 14.0
    for k in range(4):
        zc = vb_top + 6.0 + k * 16.0
        loc = P.local([-30, vy - 4, zc - 10], [30, vy + 45, zc + 10])
        if loc is None:
            continue
        box, yb, zb, xb = loc
        if k == 0:   # C1: a ring (anterior arch) around the dens
            ring = np.maximum(np.abs(_ellipsoid(xb, yb - (vy + 12.0), zb - zc, 22.0, 16.0, 1e6)) - 2.5,
                              np.abs(zb - zc) - 4.5)
            P.paint(ring, "marrow", box=box)
            P.paint(_ellipsoid(xb, yb - (vy + 5.0), zb - (zc + 2.0), 5.0, 5.0, 9.0), "marrow", box=box)
        else:
            body = _superellipsoid(xb, yb - (vy + 8.0), zb - zc, 9.0 + k, 8.0, 6.0)
            P.paint(body, "vertebra", box=box)
            P.paint(np.maximum(np.abs(body + 0.6) - 0.6, body), "cortex", box=box)
            P.paint(_superellipsoid(xb, yb - (vy + 8.0), zb - (zc + 8.0), 9.0 + k, 8.0, 1.8), "disc", box=box)
            arch_sd = np.maximum(np.abs(_ellipsoid(xb, yb - (vy + 25.0), 0 * zb, 12.0, 10.0, 1e6)) - 2.5,
                                 np.abs(zb - zc) - 5.0)
            P.paint(arch_sd, "vertebra", box=box)
            P.paint(_superellipsoid(xb, yb - (vy + 40.0), zb - zc, 2.5, 7.0, 4.0), "vertebra", box=box)
    cz = np.clip(Z, vb_top - 6.0, None)
    canal_sd = _ellipsoid(X, Y - (vy + 25.0), cz * 0, 8.5, 7.5, 1e6)
    P.paint(np.maximum(canal_sd, vb_top - 8.0 - Z), "csf")
    P.paint(np.maximum(_ellipsoid(X, Y - (vy + 25.0), cz * 0, 5.0, 4.0, 1e6), vb_top - 8.0 - Z), "cord")

    # ---- mandible: body along the arch, rami, condyle and coronoid ------------------------------
    au = np.abs(u_up)
    top = z_crest - 3.0 * (1 - au)
    h = np.clip((Z - top) / (z_inf - top), 0, 1)
    round_bottom = np.sqrt(np.clip(1.0 - np.clip((Z - (z_inf - 5.0)) / 5.0, 0, 1) ** 2, 0, 1))
    half_thick = (5.0 + 1.8 * au) * (0.55 + 0.45 * np.sqrt(np.clip(h * 1.7, 0, 1))) * (0.3 + 0.7 * round_bottom)
    body_sd = _maxr([np.abs(d_up + 0.5) - half_thick, top - Z, Z - z_inf, (au - 1.0) * 60.0])
    ramus_sd = None
    for s in (-1, 1):
        thick = 3.2 + 1.6 * np.clip((Z - (z_inf - p.ramus_height)) / p.ramus_height, 0, 1)
        yp = y_post(Z)
        y_ant = yp - 31.0 + 6.0 * np.clip((z_crest - Z) / 30.0, 0, 1)
        z_top = z_inf - p.ramus_height
        notch = 9.0 * np.exp(-(((Y - (yp - 13.0)) / 7.0) ** 2))
        sd = _maxr([np.abs(X - s * (W + 1.0)) - thick, y_ant - Y, Y - yp, (z_top + notch) - Z,
                    Z - z_inf + 2.0 * np.clip((Y - yp + 8) / 8, 0, 1)])
        # condylar process up to the joint below the skull base
        cond = _maxr([np.abs(X - s * (W + 0.5)) - (3.5 + 3.0 * np.clip((8.0 - Z) / 6.0, 0, 1)),
                      np.abs(Y - (y_post(6.0) - 4.0)) - 4.5, 2.5 - Z, Z - z_top - 4.0])
        sd = np.minimum(sd, cond)
        ramus_sd = sd if ramus_sd is None else np.minimum(ramus_sd, sd)
    bone_sd = np.minimum(body_sd, ramus_sd)
    P.paint(bone_sd, "marrow")
    cortex_t = 1.6 + 1.4 * np.clip((Z - (z_inf - 6.0)) / 6.0, 0, 1)
    P.paint(np.maximum(np.abs(bone_sd + cortex_t / 2) - cortex_t / 2, bone_sd), "cortex")
    in_bone = bone_sd < 0
    del d_up, u_up, du, uu

    # ---- teeth and dental metal --------------------------------------------------------------------
    tooth_arcs = np.array([3.5, 10.0, 17.0, 24.0, 31.0, 40.0, 50.5, 61.0]) * p.scale
    tooth_md = np.array([5.5, 6.0, 7.0, 7.0, 7.0, 10.5, 10.0, 9.5]) * 0.5
    tooth_bl = np.array([3.0, 3.2, 3.8, 4.0, 4.3, 5.0, 5.0, 4.8])
    root_len = np.array([12.0, 13.0, 16.0, 13.5, 13.5, 12.5, 12.5, 11.0])
    missing = {tuple(m) for m in p.missing_teeth}
    metal_by_tooth = {(m["jaw"], m["side"], m["tooth"]): m for m in p.metal}
    metal_info = []
    paths = nerve_paths(p, lm)
    for jaw, ar, z_base, sgn in (("lower", arch, z_crest, 1.0), ("upper", upper, z_occ - 7.5, -1.0)):
        for s in (-1, 1):
            for k in range(8):
                m = metal_by_tooth.get((jaw, s, k))
                u0 = ar.u_at_arc(s * tooth_arcs[k] * (1.04 if jaw == "upper" else 1.0))
                cxy = ar.point(u0)
                tt, nn = ar.tangent(u0), ar.normal(u0)
                implant = m is not None and m["kind"] == "implant"
                if (jaw, s, k) in missing and not implant:
                    continue
                ext = max(tooth_md[k], tooth_bl[k]) + 2.0
                zl, zh = (z_base - 8.0, z_base + root_len[k] + 1) if sgn > 0 else (z_base - root_len[k] - 1, z_base + 8.0)
                loc = P.local([cxy[0] - ext, cxy[1] - ext, zl], [cxy[0] + ext, cxy[1] + ext, zh])
                if loc is None:
                    continue
                box, yb, zb, xb = loc
                lx, ly = xb - cxy[0], yb - cxy[1]
                a = lx * tt[0] + ly * tt[1]
                b = lx * nn[0] + ly * nn[1]
                hh = (zb - z_base) * sgn
                crown = np.sqrt((a / tooth_md[k]) ** 2 + (b / tooth_bl[k]) ** 2 + (np.clip(-hh - 3.5, 0, None) / 4.5) ** 2)
                crown_sd = np.maximum((crown - 1.0) * tooth_md[k], np.maximum(-hh - 8.0, hh - 0.5))
                taper = np.clip(1.0 - hh / root_len[k], 0.15, 1.0)
                root_sd = np.maximum(np.sqrt((a / (tooth_md[k] * 0.7)) ** 2 + (b / (tooth_bl[k] * 0.75)) ** 2) / taper * 2.5 - 2.5,
                                     np.maximum(-hh - 0.5, hh - root_len[k]))
                if not implant:
                    P.paint(np.minimum(crown_sd, root_sd), "tooth", box=box)
                    P.paint(np.maximum(np.sqrt(a ** 2 + b ** 2) - 0.7 * taper,
                                       np.maximum(-hh - 4.0, hh - root_len[k] + 2.0)), "pulp", box=box)
                if m is None:
                    continue
                centre = np.array([cxy[0], cxy[1], z_base - sgn * 4.0])
                if implant:   # a screw fixture from the crest down toward the canal
                    cl = paths[s]["ian"]
                    j = int(np.argmin(np.hypot(cl[:, 0] - cxy[0], cl[:, 1] - cxy[1])))
                    z_tip = min(cl[j, 2] - paths[s]["radius"] - 1.5, z_base + 14.0)
                    fix_sd = np.maximum(np.sqrt(a ** 2 + b ** 2) - 2.0, np.maximum(-hh + 0.5, hh - (z_tip - z_base)))
                    P.paint(np.minimum(fix_sd, crown_sd), "metal", box=box)
                    centre = np.array([cxy[0], cxy[1], 0.5 * (z_base + z_tip)])
                elif m["kind"] == "crown":
                    P.paint(crown_sd, "metal", box=box)
                else:   # filling: the top of the crown
                    P.paint(np.maximum(crown_sd + 1.0, hh + 4.0), "metal", box=box)
                metal_info.append({"centre": centre, "radius": m["radius"], "kind": m["kind"], "side": s})

    # ---- vessels elsewhere (confounding tubes) ---------------------------------------------------
    tubes = []
    for s in (-1, 1):
        yp0 = y_post(z_occ)
        tubes += [
            ("vein", _smooth_curve([[s * (W + 5.0), yp0 + 6.0, 2.0], [s * (W + 4.0), yp0 + 5.0, z_occ],
                                    [s * (W + 2.0), yp0 + 2.0, z_inf + 8.0]], 300), rng.uniform(1.2, 2.2)),
            ("vein", _smooth_curve([[s * 20.0, vy + 4.0, 0.0], [s * 23.0, vy + 3.0, z_occ],
                                    [s * 24.0, vy + 2.0, z_inf + 40.0]], 300), rng.uniform(3.0, 5.0)),
            ("artery", _smooth_curve([[s * 14.0, vy + 2.0, 0.0], [s * 16.0, vy - 1.0, z_occ],
                                      [s * 18.0, vy - 3.0, z_inf + 40.0]], 300), rng.uniform(2.0, 3.0)),
            ("artery", _smooth_curve([[s * (W + 3.0), yp0 + 3.0, z_inf + 10.0], [s * (W + 2.0), L - 18.0, z_inf + 0.5],
                                      [s * (W - 2.0), L - 28.0, z_crest]], 300), rng.uniform(0.8, 1.3)),
            ("artery", _smooth_curve([[s * (W + 1.0), y_post(12.0) - 2.0, 12.0], [s * (W - 10.0), y_post(12.0) - 12.0, 14.0],
                                      [s * (W - 20.0), y_post(12.0) - 22.0, 16.0]], 300), rng.uniform(1.0, 1.6)),
        ]
    for name, curve, r in tubes:
        _paint_tube(P, curve, r, name)

    # ---- the canal, the nerve and its companions -------------------------------------------------
    for s in (-1, 1):
        path = paths[s]
        r = path["radius"]
        branches = [path["ian"]] + ([path["bifid"]] if path["bifid"] is not None else [])
        # the canal: a fatty sleeve with a thin cortical wall, inside bone only
        for curve in branches:
            _paint_tube(P, curve, r + 1.9, "cortex", where=in_bone)
            _paint_tube(P, curve, r + 1.4, "canal", where=in_bone)
        _paint_tube(P, path["lingual"], 0.9 + 0.3 * r, "other_nerve")
        _paint_tube(P, path["vein"], p.vein_radius, "ian_vein")
        _paint_tube(P, path["artery"], 0.55, "ian_artery")
        _paint_tube(P, np.concatenate(branches + [path["above"], path["mental"]]), r, "nerve")
    labels = ian_labels(paths, grid, label_inset) if with_labels else None
    return P.tissue, labels, {"paths": paths, "metal": metal_info, "landmarks": lm}


def ian_labels(paths: dict, grid: Grid, label_inset: float = 0.3) -> np.ndarray:
    """The IAN labels (1 right, 2 left) of :func:`nerve_paths` on ``grid``: the nerve from the
    skull base to the mental foramen (bifid branches included), ``label_inset`` mm inside its edge.

    The voxels the centreline passes through are always labelled, so a thin nerve stays one
    connected (26-neighbour) tube on a coarse grid.
    """
    P = _Painter(grid)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    for s, code in ((-1, 1), (1, 2)):
        path = paths[s]
        labelled = [path["ian"][path["labelled"]]] + ([path["bifid"]] if path["bifid"] is not None else [])
        for curve in labelled:
            _paint_tube(P, curve, path["radius"] - label_inset, None, labels=labels, code=code)
            ci = np.rint(grid.to_index(curve)).astype(int)
            ok = np.all((ci >= 0) & (ci < np.asarray(grid.shape)), axis=1)
            labels[ci[ok, 0], ci[ok, 1], ci[ok, 2]] = code
    return labels


_TUBE_PIECE_MM = 10.0    # length of curve painted per box


def _paint_tube(P: _Painter, curve, radius, name, where=None, labels=None, code=0):
    """Paint a tube of ``radius`` mm around a sampled curve (tissue ``name`` or label ``code``)."""
    if len(curve) == 0 or radius <= 0:
        return
    pad = radius + 1.0
    # piece by piece along the curve: a long curved nerve's one bounding box is mostly far from it
    # (three quarters of a phantom's time went on such voxels); a voxel within ``radius`` of the
    # curve is within it of some piece, and is in that piece's box, so the tube is the same
    along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=1))])
    piece = np.floor(along / max(_TUBE_PIECE_MM, 2 * pad)).astype(int)
    for k in np.unique(piece):
        part = curve[piece == k]
        loc = P.local(part.min(axis=0) - pad, part.max(axis=0) + pad)
        if loc is None:
            continue
        box, yb, zb, xb = loc
        shape = tuple(s.stop - s.start for s in box)
        pts = np.stack(np.broadcast_arrays(xb, yb, zb), axis=-1).reshape(-1, 3)
        d, _ = cKDTree(part).query(pts, distance_upper_bound=radius + 1e-3)
        inside = np.isfinite(d).reshape(shape)
        if where is not None:
            inside &= np.asarray(where)[box] if np.ndim(where) else bool(where)
        if labels is not None:
            labels[box][inside] = code
        else:
            P.tissue[box][inside] = T[name]
