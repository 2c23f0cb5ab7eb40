"""A synthetic fat-suppressed MR neurography volume of the lower jaw, with the IAN labelled.

No patient data can ship, so this phantom stands in for it. It is built to read as an MRN of a
mandible: a U-shaped mandibular body and two rami with dark cortical bone and suppressed marrow,
lower and upper teeth (dark, with a faint pulp), the maxilla, palate, nasal cavity and
maxillary sinuses, masseter, pterygoid muscles and tongue with fibre texture, parotid and
submandibular glands, a few lymph nodes, and the airway. Each inferior alveolar nerve is a
bright 2–3 mm tube from the cranial base, between the pterygoid muscles, into the mandibular
foramen on the inner face of the ramus, down and forward inside the mandibular canal below the
molar roots, to the mental foramen below the premolars (in some patients after an anterior
loop). A dark artery and vein run beside it. Acquisition effects: partial volume, coil bias
field, motion ghosting along the phase-encoding direction, dental-metal artifacts (signal voids
with bright pile-up rims and read-out distortion; some near the canal) and Rician noise.

The label is the nerve itself (not the canal) from the cranial base to the mental foramen,
drawn conservatively (a radius a little smaller than the bright tube), 1 = right, 2 = left.

Everything is in the canonical orientation of :mod:`napari_ian.trainer.volume`:
axis 0 anterior -> posterior, axis 1 superior -> inferior, axis 2 patient's right -> left.
Internally, anatomy is placed in millimetres with ``x`` = lateral (patient's left positive),
``y`` = posterior of the chin, ``z`` = inferior of the top of the volume (the cranial base).
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy import ndimage
from scipy.interpolate import make_interp_spline
from scipy.spatial import cKDTree

# Intensity scale: 1.0 = nominal nerve signal before contrast variation.
SIGNAL = {
    "air": 0.0, "cortex": 0.02, "tooth": 0.015, "pulp": 0.22, "marrow": 0.07, "fat": 0.07,
    "soft": 0.21, "muscle": 0.29, "tongue": 0.33, "parotid": 0.42, "submandibular": 0.46,
    "node": 0.68, "skin": 0.30, "mucosa": 0.42, "canal": 0.12, "vessel": 0.03, "nerve": 1.0,
}
# Data are stored as integers times this slope (a power of two, so the value is exact both as
# DICOM RescaleSlope and NIfTI scl_slope, and a DICOM round trip gives identical voxels).
INTENSITY_SLOPE = 2.0 ** -12


@dataclasses.dataclass
class PhantomParams:
    """Per-patient anatomy and acquisition settings, drawn from a seed by :func:`draw_params`."""

    seed: int
    spacing: tuple            # (AP, SI, RL) mm
    fov: tuple                # (AP, SI, RL) mm
    jaw_scale: float
    arch_half_width: float    # mm, half distance between the gonial angles
    arch_length: float        # mm, chin to gonial angle
    body_height: float        # mm, alveolar crest to inferior border (molar region)
    ramus_height: float
    nerve_radius: tuple       # mm (right, left)
    canal_depth: tuple        # mm above the inferior border in the molar region (right, left)
    mental_arc: tuple         # mm along the arch from the midline (right, left)
    anterior_loop: tuple      # mm (0 = none) (right, left)
    nerve_contrast: float
    snr: float
    bias_strength: float
    ghost_strength: float
    metal: list               # list of dicts: side, tooth index, kind, radius, near_canal
    asymmetry: float

    def summary(self) -> dict:
        return {
            "seed": self.seed,
            "spacing_ap_mm": round(self.spacing[0], 3), "spacing_si_mm": round(self.spacing[1], 3),
            "spacing_rl_mm": round(self.spacing[2], 3),
            "nerve_diameter_right_mm": round(2 * self.nerve_radius[0], 2),
            "nerve_diameter_left_mm": round(2 * self.nerve_radius[1], 2),
            "anterior_loop_right_mm": round(self.anterior_loop[0], 1),
            "anterior_loop_left_mm": round(self.anterior_loop[1], 1),
            "metal_artifacts": len(self.metal),
            "metal_near_canal": sum(bool(m["near_canal"]) for m in self.metal),
            "snr": round(self.snr, 1), "nerve_contrast": round(self.nerve_contrast, 2),
            "ghost_strength": round(self.ghost_strength, 3),
        }


def draw_params(seed: int, **overrides) -> PhantomParams:
    """Draw one patient's parameters from ``seed`` (deterministic); keywords override any field."""
    rng = np.random.default_rng(seed)
    scale = float(rng.uniform(0.9, 1.1))
    spacing = (float(rng.uniform(0.75, 0.85)), float(rng.uniform(1.5, 1.7)), float(rng.uniform(0.41, 0.45)))
    metal = []
    for _ in range(int(rng.choice([0, 1, 1, 2, 2, 3, 4]))):
        near = bool(rng.random() < 0.35)
        metal.append({
            "side": int(rng.choice([-1, 1])),
            "tooth": int(rng.integers(3, 8)),          # premolars and molars carry restorations
            "jaw": "lower" if (near or rng.random() < 0.6) else "upper",
            "kind": "implant" if near else str(rng.choice(["crown", "filling", "crown"])),
            "radius": float(rng.uniform(2.5, 4.5)) * (1.25 if near else 1.0),
            "near_canal": near,
        })
    p = PhantomParams(
        seed=seed, spacing=spacing, fov=(96.0 * scale, 88.0 * scale, 118.0 * scale), jaw_scale=scale,
        arch_half_width=float(rng.uniform(43, 50) * scale), arch_length=float(rng.uniform(66, 76) * scale),
        body_height=float(rng.uniform(25, 31) * scale), ramus_height=float(rng.uniform(48, 56) * scale),
        nerve_radius=tuple(float(r) for r in rng.uniform(1.0, 1.45, 2)),
        canal_depth=tuple(float(d) for d in rng.uniform(7.5, 10.5, 2)),
        mental_arc=tuple(float(a) for a in rng.uniform(26, 32, 2) * scale),
        anterior_loop=tuple(float(a) if rng.random() < 0.45 else 0.0 for a in rng.uniform(2.0, 5.0, 2)),
        nerve_contrast=float(rng.uniform(0.8, 1.15)), snr=float(rng.uniform(20, 34)),
        bias_strength=float(rng.uniform(0.15, 0.4)), ghost_strength=float(rng.uniform(0.02, 0.3)),
        metal=metal, asymmetry=float(rng.uniform(-2.0, 2.0)),
    )
    return dataclasses.replace(p, **overrides) if overrides else p


# ------------------------------------------------------------------------------------------
# geometry helpers
def _soft(signed_dist, width=0.35):
    """Partial-volume membership from a signed distance in mm (negative inside)."""
    return (0.5 - 0.5 * np.tanh(np.asarray(signed_dist, dtype=np.float32) / np.float32(width))).astype(np.float32)


def _maxr(arrays):
    """Elementwise maximum of broadcastable arrays (an intersection of signed distances)."""
    return functools.reduce(np.maximum, arrays)


def _superellipsoid(dx, dy, dz, a, b, c, n=4.0):
    """Approximate signed distance (mm) to a rounded box with half sizes a, b, c."""
    r = (np.abs(dx / a) ** n + np.abs(dy / b) ** n + np.abs(dz / c) ** n) ** (1.0 / n)
    return (r - 1.0) * min(a, b, c)


def _blend(img, membership, value):
    """Paint ``value`` over ``img`` with a fractional membership (in place)."""
    img += membership * (np.float32(value) - img)


class _Arch:
    """The mandibular (or maxillary) dental arch: a parabola in the axial plane.

    ``u`` in [-1, 1] runs from the right gonial angle (u = -1) through the chin (u = 0) to the
    left one; ``x = W u``, ``y = y0 + L u**2``.
    """

    def __init__(self, half_width, length, y0):
        self.W, self.L, self.y0 = half_width, length, y0
        self.u = np.linspace(-1.0, 1.0, 2001)
        self.pts = np.stack([self.W * self.u, self.y0 + self.L * self.u ** 2], axis=1)
        seg = np.linalg.norm(np.diff(self.pts, axis=0), axis=1)
        self.arc = np.concatenate([[0.0], np.cumsum(seg)]) - 0.0
        self.arc -= np.interp(0.0, self.u, self.arc)  # signed arc length, 0 at the midline
        self.tree = cKDTree(self.pts)

    def point(self, u):
        return np.array([self.W * u, self.y0 + self.L * u ** 2])

    def normal(self, u):
        """Outward (buccal/labial) unit normal in the axial plane."""
        n = np.array([2 * self.L * u, -self.W], dtype=float)
        return n / np.linalg.norm(n)

    def tangent(self, u):
        t = np.array([self.W, 2 * self.L * u], dtype=float)
        return t / np.linalg.norm(t)

    def u_at_arc(self, s):
        """Arch parameter at signed arc length ``s`` mm from the midline."""
        return float(np.interp(s, self.arc, self.u))

    def frame(self, x, y):
        """Signed buccal distance and arch parameter of axial points (nearest arch point)."""
        q = np.stack([np.broadcast_to(x, np.broadcast(x, y).shape).ravel(),
                      np.broadcast_to(y, np.broadcast(x, y).shape).ravel()], axis=1)
        dist, idx = self.tree.query(q)
        u = self.u[idx]
        n = np.stack([2 * self.L * u, -self.W * np.ones_like(u)], axis=1)
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        sign = np.sign(((q - self.pts[idx]) * n).sum(axis=1))
        shape = np.broadcast(x, y).shape
        return (dist * np.where(sign == 0, 1, sign)).reshape(shape), u.reshape(shape)


def _tube_distance(shape_pts, curve, max_dist):
    """Distance (mm) from grid points to a densely sampled curve, and the curve index."""
    tree = cKDTree(curve)
    d, idx = tree.query(shape_pts, distance_upper_bound=max_dist)
    return d, idx


class _Grid:
    """Millimetre coordinates of the canonical voxel centres."""

    def __init__(self, shape, spacing, x_mid, y_chin):
        self.shape, self.spacing = shape, np.asarray(spacing, dtype=float)
        p = np.arange(shape[0]) * spacing[0]
        s = np.arange(shape[1]) * spacing[1]
        l_ = np.arange(shape[2]) * spacing[2]
        self.y = (p - y_chin).astype(np.float32)[:, None, None]
        self.z = s.astype(np.float32)[None, :, None]
        self.x = (l_ - x_mid).astype(np.float32)[None, None, :]

    def to_index(self, xyz):
        """(N, 3) x, y, z mm -> (N, 3) fractional canonical indices (ap, si, rl)."""
        xyz = np.atleast_2d(xyz)
        return np.stack([(xyz[:, 1] + self._y_chin) / self.spacing[0], xyz[:, 2] / self.spacing[1],
                         (xyz[:, 0] + self._x_mid) / self.spacing[2]], axis=1)


def _smooth_noise(rng, shape, sigma_vox, dtype=np.float32):
    field = rng.standard_normal(shape).astype(dtype)
    field = ndimage.gaussian_filter(field, sigma_vox, mode="reflect")
    field /= field.std() + 1e-8
    return field


def _curve_through(points, n=2400):
    """A smooth 3D curve (C2 spline by chord length) through control points, densely sampled."""
    pts = np.asarray(points, dtype=float)
    t = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    spline = make_interp_spline(t, pts, k=3, bc_type="natural")
    tt = np.linspace(0, t[-1], n)
    return spline(tt)


# ------------------------------------------------------------------------------------------
def make_phantom(seed: int = 0, params: PhantomParams | None = None, **overrides):
    """Make one synthetic patient: an MRN volume of the lower jaw and its IAN labels.

    Parameters
    ----------
    seed : int
        Patient seed; the same seed always gives the same volume.
    params : PhantomParams, optional
        Explicit parameters (otherwise drawn from ``seed``).
    **overrides
        Fields of :class:`PhantomParams` to override (e.g. ``metal=[]`` or ``snr=8``).

    Returns
    -------
    image : (AP, SI, RL) float32 ndarray
        Canonical orientation; values are multiples of :data:`INTENSITY_SLOPE`.
    labels : (AP, SI, RL) uint8 ndarray
        0 background, 1 right IAN, 2 left IAN.
    spacing : tuple of float
        Voxel size in mm (AP, SI, RL).
    info : dict
        The patient's parameters (:meth:`PhantomParams.summary`) and the nerve centrelines in
        voxel coordinates (``"centerline_right"`` / ``"centerline_left"``).
    """
    p = params if params is not None else draw_params(seed, **overrides)
    rng = np.random.default_rng(p.seed + 7919)
    sp = np.asarray(p.spacing, dtype=float)
    shape = tuple(int(round(f / s)) for f, s in zip(p.fov, sp))
    y_chin = 6.0 * p.jaw_scale            # chin tip this far behind the anterior edge
    x_mid = p.fov[2] / 2.0 + p.asymmetry  # the midline, slightly off-centre
    g = _Grid(shape, sp, x_mid, y_chin)
    g._y_chin, g._x_mid = y_chin, x_mid
    X, Y, Z = g.x, g.y, g.z
    f32 = np.float32

    # landmark heights (z mm below the cranial base at the top of the volume)
    z_inf = p.fov[1] - 8.0 * p.jaw_scale            # inferior border of the mandible
    z_crest = z_inf - p.body_height                   # lower alveolar crest
    z_occ = z_crest - 7.5                             # occlusal plane
    z_palate = z_occ - 21.0 * p.jaw_scale
    W, L = p.arch_half_width, p.arch_length
    arch = _Arch(W, L, 0.0)
    upper = _Arch(W + 2.5, L + 1.0, -2.5)

    img = np.full(shape, SIGNAL["air"], dtype=f32)

    # ---- head and soft tissue envelope ------------------------------------------------------
    half_w = (W + 16.0) + 8.0 * np.clip((z_occ - Z) / 40.0, -1, 1)        # wider near the cheeks
    ex = X / half_w
    ey = (Y + 4.0 - 60.0) / 64.0
    head_r = np.sqrt(ex ** 2 + np.clip(ey, None, 0) ** 2 * 1.0 + np.clip(ey, 0, None) ** 2 * 0.2)
    chin_floor = z_inf + 6.0 + 10.0 * np.clip((Y - 20.0) / 40.0, 0, 1)  # neck below the chin, further back
    below = np.clip(Z - chin_floor, 0, None)
    head_sd = (head_r - 1.0) * 30.0 + below * 1.5
    head = _soft(head_sd, 0.8)
    _blend(img, head, SIGNAL["soft"])
    subcut = _soft(np.abs(head_sd + 4.5) - 3.0, 0.8) * head              # suppressed subcutaneous fat
    _blend(img, subcut, SIGNAL["fat"])
    skin = _soft(np.abs(head_sd + 0.8) - 0.7, 0.4) * head
    _blend(img, skin, SIGNAL["skin"])

    fibres = _smooth_noise(rng, shape, (2.5, 0.6, 0.5))                   # muscle fibre texture
    lobules = _smooth_noise(rng, shape, (1.6, 0.9, 3.0))                  # gland / tongue texture

    # ---- muscles ------------------------------------------------------------------------------
    ramus_y_post = lambda z: L + 4.0 + (z_inf - z) * 0.28                 # noqa: E731  ramus leans back
    y_ramus_mid = lambda z: ramus_y_post(z) - 15.0                        # noqa: E731
    for s in (-1, 1):
        # masseter: lateral to the ramus, zygomatic arch down to the angle
        m_sd = _superellipsoid(X - s * (W + 8.5), Y - (y_ramus_mid(Z) - 3.0), Z - (z_inf + 12.0) / 2.0,
                               6.5, 17.0, (z_inf - 12.0) / 2.0)
        _blend(img, _soft(m_sd, 1.0) * head, SIGNAL["muscle"])
        # medial pterygoid: medial to the ramus, running up and inward from the angle
        x_mp = s * (W - 9.0 - 0.22 * np.clip(z_inf - Z, 0, None))
        mp_sd = _superellipsoid(X - x_mp, Y - (y_ramus_mid(Z) + 2.0), Z - (z_inf + 14.0) / 2.0 - 2.0,
                                5.0, 9.0, (z_inf - 18.0) / 2.0)
        _blend(img, _soft(mp_sd, 1.0) * head, SIGNAL["muscle"])
        # lateral pterygoid: high, from the condyle neck forward and medially
        lp_sd = _superellipsoid(X - s * (W - 14.0), Y - (ramus_y_post(12.0) - 22.0), Z - 17.0, 8.0, 12.0, 7.0)
        _blend(img, _soft(lp_sd, 1.0) * head, SIGNAL["muscle"])
        # parotid gland behind the ramus, submandibular gland below the body
        par_sd = np.sqrt(((X - s * (W + 4.0)) / 11.0) ** 2 + ((Y - ramus_y_post(Z) - 11.0) / 11.0) ** 2
                         + ((Z - (z_occ + 2.0)) / 26.0) ** 2) * 10.0 - 10.0
        _blend(img, _soft(par_sd, 1.0) * head, SIGNAL["parotid"])
        sm_sd = np.sqrt(((X - s * (W - 12.0)) / 8.0) ** 2 + ((Y - (L - 12.0)) / 11.0) ** 2
                        + ((Z - (z_inf + 2.0)) / 7.0) ** 2) * 7.0 - 7.0
        _blend(img, _soft(sm_sd, 1.0) * head, SIGNAL["submandibular"])
    img += head * (img > 0.2) * (0.045 * fibres + 0.02 * lobules) * (img < 0.5)

    # tongue and floor of mouth, with intrinsic fibre texture; oral air above its dorsum
    t_sd = np.sqrt((X / (W - 15.0)) ** 2 + ((Y - 0.46 * L - 6.0) / (0.55 * L)) ** 2
                   + ((Z - (z_occ + 12.0)) / 15.0) ** 2) * 14.0 - 14.0
    tongue = _soft(t_sd, 1.2) * head
    _blend(img, tongue, SIGNAL["tongue"])
    img += tongue * (0.05 * fibres + 0.03 * np.sin(Z * 1.7 + X * 0.3).astype(f32))
    _blend(img, _soft(np.abs(X) - 0.5, 0.4) * tongue * 0.7, SIGNAL["fat"])   # lingual septum
    du, uu = upper.frame(X, Y)
    # oral air: a thin curved gap over the tongue's dorsum, under the palate and inside the teeth
    oral = (_soft(np.abs(t_sd - 1.2) - 1.0, 0.5) * _soft(Z - (z_occ + 3.0), 1.0)
            * _soft(du + 4.0, 0.8) * _soft(Y - 0.85 * L, 1.0))
    _blend(img, oral, SIGNAL["air"])
    # airway (oro/nasopharynx) behind the tongue
    air_sd = np.sqrt((X / 9.0) ** 2 + ((Y - (L + 12.0)) / 7.0) ** 2) * 7.0 - 7.0
    _blend(img, _soft(np.maximum(air_sd, Z - (z_inf + 4.0)), 0.6), SIGNAL["air"])
    mucosa = _soft(np.abs(air_sd - 1.2) - 1.0, 0.5) * (Z < z_inf)
    _blend(img, mucosa * 0.5, SIGNAL["mucosa"])

    # lymph nodes: bright ovals in the neck (a confounder a model must not call nerve)
    for _ in range(int(rng.integers(2, 6))):
        s = rng.choice([-1, 1])
        c = (s * rng.uniform(W - 12, W + 2), rng.uniform(L - 20, L + 12), rng.uniform(z_inf - 2, z_inf + 5))
        r = rng.uniform(2.0, 4.0)
        n_sd = np.sqrt(((X - c[0]) / r) ** 2 + ((Y - c[1]) / (r * 1.4)) ** 2 + ((Z - c[2]) / (r * 1.2)) ** 2) * r - r
        _blend(img, _soft(n_sd, 0.6) * head, SIGNAL["node"])

    # ---- maxilla, palate, nasal cavity, sinuses ----------------------------------------------
    # upper alveolar process: narrow at its crest, widening up into the maxilla
    widen = np.clip((z_occ - 6.5 - Z) / 12.0, 0, 1)
    maxilla_sd = _maxr([np.abs(du + 1.0) - (3.2 + 4.5 * widen), z_palate - 3.0 - Z, Z - (z_occ - 6.5),
                        np.abs(uu) - 0.93])
    # the hard palate is a vault: highest in the midline
    z_vault = z_palate - 5.0 * (1.0 - np.clip((X / (W - 8.0)) ** 2, 0, 1))
    palate_sd = _maxr([du + 2.0, np.abs(Z - z_vault) - 2.0, np.abs(uu) - 0.9, Y - 0.62 * L])
    maxilla = _soft(np.minimum(maxilla_sd, palate_sd), 0.5) * head
    _blend(img, maxilla, SIGNAL["marrow"])
    _blend(img, _soft(np.abs(np.minimum(maxilla_sd, palate_sd) + 0.9) - 0.9, 0.4) * maxilla, SIGNAL["cortex"])
    nasal_sd = np.maximum(_superellipsoid(X, Y - 0.38 * L, Z - z_palate + 3.0, 14.0, 0.36 * L, 40.0),
                          Z - (z_palate - 3.0))
    _blend(img, _soft(nasal_sd, 0.6), SIGNAL["air"])
    septum = _soft(np.maximum(np.abs(X) - 1.2, nasal_sd + 1.0), 0.4)
    _blend(img, septum, SIGNAL["mucosa"] * 0.7)
    for s in (-1, 1):
        for zt in (z_palate - 9.0, z_palate - 20.0):  # turbinates
            tb_sd = np.sqrt(((X - s * 11.0) / 3.0) ** 2 + ((Z - zt) / 4.0) ** 2) * 3.0 - 3.0
            _blend(img, _soft(np.maximum(tb_sd, nasal_sd), 0.5), SIGNAL["mucosa"])
        sin_sd = np.sqrt(((X - s * 27.0) / 11.0) ** 2 + ((Y - 0.45 * L) / 16.0) ** 2
                         + ((Z - (z_palate - 16.0)) / 14.0) ** 2) * 11.0 - 11.0
        _blend(img, _soft(sin_sd, 0.6), SIGNAL["air"])
        _blend(img, _soft(np.abs(sin_sd) - 0.8, 0.4) * head, SIGNAL["cortex"])

    # ---- mandible: body along the arch, rami at the back --------------------------------------
    d_buccal, u_arch = arch.frame(X, Y)
    au = np.abs(u_arch)
    top = z_crest - 3.0 * (1 - au)                                        # taller at the chin
    # coronal profile: narrow alveolar process at the crest, widest low, rounded inferior border
    h = np.clip((Z - top) / (z_inf - top), 0, 1)
    round_bottom = np.sqrt(np.clip(1.0 - np.clip((Z - (z_inf - 5.0)) / 5.0, 0, 1) ** 2, 0, 1))
    half_thick = (5.0 + 1.8 * au) * (0.55 + 0.45 * np.sqrt(np.clip(h * 1.7, 0, 1))) * (0.3 + 0.7 * round_bottom)
    body_sd = _maxr([
        (np.abs(d_buccal + 0.5) - half_thick),
        top - Z, Z - z_inf,
        (au - 1.0) * 60.0,
    ])
    x_r = lambda s: s * (W + 1.0)                                         # noqa: E731
    ramus_sd = None
    for s in (-1, 1):
        thick = 3.2 + 1.6 * np.clip((Z - (z_inf - p.ramus_height)) / p.ramus_height, 0, 1)
        y_post = ramus_y_post(Z)
        y_ant = y_post - 31.0 + 6.0 * np.clip((z_crest - Z) / 30.0, 0, 1)
        z_top = z_inf - p.ramus_height
        # coronoid notch: a dip in the upper border between coronoid (front) and condyle (back)
        notch = 9.0 * np.exp(-(((Y - (y_post - 13.0)) / 7.0) ** 2))
        sd = _maxr([np.abs(X - x_r(s)) - thick, y_ant - Y, Y - y_post,
                                (z_top + notch) - Z, Z - z_inf + 2.0 * np.clip((Y - y_post + 8) / 8, 0, 1)])
        ramus_sd = sd if ramus_sd is None else np.minimum(ramus_sd, sd)
    bone_sd = np.minimum(body_sd, ramus_sd)
    bone = _soft(bone_sd, 0.45)
    _blend(img, bone, SIGNAL["marrow"])
    marrow_tex = _smooth_noise(rng, shape, (1.2, 0.6, 2.0))
    img += bone * 0.03 * marrow_tex
    # cortex: a 1.5–3 mm shell, thickest at the inferior border
    cortex_t = 1.6 + 1.4 * np.clip((Z - (z_inf - 6.0)) / 6.0, 0, 1)
    _blend(img, _soft(np.abs(bone_sd + cortex_t / 2) - cortex_t / 2, 0.35) * bone, SIGNAL["cortex"])

    # ---- teeth --------------------------------------------------------------------------------
    tooth_arcs = np.array([3.5, 10.0, 17.0, 24.0, 31.0, 40.0, 50.5, 61.0]) * p.jaw_scale
    tooth_md = np.array([5.5, 6.0, 7.0, 7.0, 7.0, 10.5, 10.0, 9.5]) * 0.5      # mesio-distal half size
    tooth_bl = np.array([3.0, 3.2, 3.8, 4.0, 4.3, 5.0, 5.0, 4.8])
    root_len = np.array([12.0, 13.0, 16.0, 13.5, 13.5, 12.5, 12.5, 11.0])
    teeth_centres = {}
    for jaw, ar, z_base, sgn in (("lower", arch, z_crest, 1.0), ("upper", upper, z_occ - 7.5, -1.0)):
        for s in (-1, 1):
            for k in range(8):
                u0 = ar.u_at_arc(s * tooth_arcs[k] * (1.04 if jaw == "upper" else 1.0))
                cxy = ar.point(u0)
                t, n = ar.tangent(u0), ar.normal(u0)
                # local box
                ext = max(tooth_md[k], tooth_bl[k]) + 2.0
                z_lo, z_hi = (z_base - 8.0, z_base + root_len[k] + 1) if sgn > 0 else (z_base - root_len[k] - 1, z_base + 8.0)
                sl = _box_slices(g, (cxy[0] - ext, cxy[0] + ext), (cxy[1] - ext, cxy[1] + ext), (z_lo, z_hi))
                if sl is None:
                    continue
                lx = (X[:, :, sl[2]] - cxy[0]) * 1.0
                ly = (Y[sl[0], :, :] - cxy[1])
                lz = Z[:, sl[1], :]
                a = lx * t[0] + ly * t[1]          # along the arch
                b = lx * n[0] + ly * n[1]          # bucco-lingual
                h = (lz - z_base) * sgn            # into the bone (+) or toward occlusion (-)
                crown = np.sqrt((a / tooth_md[k]) ** 2 + (b / tooth_bl[k]) ** 2 + (np.clip(-h - 3.5, 0, None) / 4.5) ** 2)
                crown_sd = np.maximum((crown - 1.0) * tooth_md[k], np.maximum(-h - 8.0, h - 0.5))
                taper = np.clip(1.0 - h / root_len[k], 0.15, 1.0)
                root_sd = np.maximum(np.sqrt((a / (tooth_md[k] * 0.7)) ** 2 + (b / (tooth_bl[k] * 0.75)) ** 2) / taper * 2.5 - 2.5,
                                     np.maximum(-h - 0.5, h - root_len[k]))
                t_sd = np.minimum(crown_sd, root_sd)
                m = _soft(t_sd, 0.35)
                sub = img[sl]
                _blend(sub, m, SIGNAL["tooth"])
                pulp_sd = np.maximum(np.sqrt(a ** 2 + b ** 2) - 0.7 * taper, np.maximum(-h - 4.0, h - root_len[k] + 2.0))
                _blend(sub, _soft(pulp_sd, 0.3) * m, SIGNAL["pulp"])
                img[sl] = sub
                teeth_centres[(jaw, s, k)] = np.array([cxy[0], cxy[1], z_base - sgn * 2.0,
                                                       z_base + sgn * root_len[k]])

    # ---- the inferior alveolar nerves ------------------------------------------------------------
    labels = np.zeros(shape, dtype=np.uint8)
    nerve_img = np.zeros(shape, dtype=f32)
    canal_m = np.zeros(shape, dtype=f32)
    vessel_m = np.zeros(shape, dtype=f32)
    centerlines = {}
    for side_i, s in enumerate((-1, 1)):
        r = p.nerve_radius[side_i]
        depth = p.canal_depth[side_i]
        u_m = arch.u_at_arc(s * p.mental_arc[side_i])
        u_angle = s * 0.97

        def on_arch(u, d_h, z):
            xy = arch.point(u) + d_h * arch.normal(u)
            return [xy[0], xy[1], z]

        z_top = 1.0
        y_fo = ramus_y_post(12.0) - 12.0
        z_mf = z_occ - 3.0
        y_mf = y_ramus_mid(z_mf) + 1.0
        x_inner = abs(x_r(s)) - 3.6       # just inside the lingual cortex of the ramus
        ctrl = [
            [s * (W * 0.52), y_fo, z_top],                                     # cranial base (foramen ovale)
            [s * (W * 0.66), y_fo - 1.0, z_top + 14.0],                        # infratemporal fossa
            [s * (W - 8.5), y_mf + 2.0, z_mf - 11.0],                          # between the pterygoids
            [s * (x_inner - 1.4), y_mf, z_mf],                                 # mandibular foramen
            [s * (x_inner + 1.6), y_mf - 5.0, z_mf + 10.0],                    # in the ramus canal
            on_arch(u_angle * 0.99, -1.2, z_inf - depth - 1.5),               # near the angle
            on_arch(arch.u_at_arc(s * 54.0), -1.0, z_inf - depth),            # below the molars
            on_arch(arch.u_at_arc(s * 40.0), -0.2, z_inf - depth - 0.5),
        ]
        loop = p.anterior_loop[side_i]
        if loop > 0:
            ctrl += [on_arch(arch.u_at_arc(s * (p.mental_arc[side_i] - loop)), 0.6, z_inf - depth - 1.5),
                     on_arch(arch.u_at_arc(s * (p.mental_arc[side_i] - loop * 0.4)), 2.2, z_inf - depth - 4.0),
                     on_arch(u_m, 3.5 + 1.8 * (1 - abs(u_m)), z_inf - depth - 5.0)]
        else:
            ctrl += [on_arch(arch.u_at_arc(s * (p.mental_arc[side_i] + 3.0)), 0.8, z_inf - depth - 1.5),
                     on_arch(u_m, 3.5 + 1.8 * (1 - abs(u_m)), z_inf - depth - 4.0)]
        curve = _curve_through(ctrl)
        # the mental nerve continues a little outside the bone; it is visible but not labelled
        ext = curve[-1] + (curve[-1] - curve[-40]) / np.linalg.norm(curve[-1] - curve[-40]) * np.linspace(0, 5, 30)[:, None]
        centerlines[s] = curve
        # vessels beside the nerve: artery above-buccal, vein above-lingual
        tang = np.gradient(curve, axis=0)
        tang /= np.linalg.norm(tang, axis=1, keepdims=True)
        up = np.array([0.0, 0.0, -1.0])
        side_dir = np.cross(tang, up)
        side_dir /= np.linalg.norm(side_dir, axis=1, keepdims=True) + 1e-9
        updir = np.cross(side_dir, tang)
        artery = curve + (r + 0.9) * (0.7 * updir + 0.7 * side_dir)
        vein = curve + (r + 1.0) * (0.8 * updir - 0.6 * side_dir)

        # evaluate distances only in the bounding box of this nerve
        idx_lo = np.minimum(g.to_index(curve.min(axis=0) - 6.0), g.to_index(curve.max(axis=0) + 6.0))[0]
        idx_hi = np.maximum(g.to_index(curve.min(axis=0) - 6.0), g.to_index(curve.max(axis=0) + 6.0))[0]
        lo = np.clip(np.floor(idx_lo).astype(int), 0, None)
        hi = np.minimum(np.ceil(idx_hi).astype(int) + 1, shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        bx = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), axis=-1)
        bxyz = np.stack([bx[..., 2] * sp[2] - x_mid, bx[..., 0] * sp[0] - y_chin, bx[..., 1] * sp[1]], axis=-1)
        flat = bxyz.reshape(-1, 3)
        d_n, _ = cKDTree(np.concatenate([curve, ext])).query(flat, distance_upper_bound=8.0)
        d_lab, _ = cKDTree(curve).query(flat, distance_upper_bound=8.0)
        d_a, _ = cKDTree(artery).query(flat, distance_upper_bound=8.0)
        d_v, _ = cKDTree(vein).query(flat, distance_upper_bound=8.0)
        bshape = bx.shape[:3]
        d_n, d_lab, d_a, d_v = (np.minimum(v, 8.0).reshape(bshape).astype(f32) for v in (d_n, d_lab, d_a, d_v))
        in_bone = bone[box] > 0.5
        canal_m[box] = np.maximum(canal_m[box], _soft(d_n - (r + 1.5), 0.4) * in_bone)
        vessel_m[box] = np.maximum(vessel_m[box], np.maximum(_soft(d_a - 0.55, 0.25), _soft(d_v - 0.7, 0.25)))
        # nerve signal: fascicular texture, brightest in the centre
        core = _soft(d_n - r, 0.3) * (0.88 + 0.12 * np.exp(-(d_n / r) ** 2))
        nerve_img[box] = np.maximum(nerve_img[box], core)
        lab = labels[box]
        lab[(d_lab <= r - 0.3)] = 1 if s < 0 else 2
        labels[box] = lab
        # the voxels the centreline passes through are always labelled, so a thin nerve on the
        # 1.6 mm SI grid stays one connected (26-neighbour) tube
        ci = np.clip(np.rint(g.to_index(curve)).astype(int), 0, np.asarray(shape) - 1)
        labels[ci[:, 0], ci[:, 1], ci[:, 2]] = 1 if s < 0 else 2

    _blend(img, canal_m, SIGNAL["canal"])
    _blend(img, canal_m * 0.6 * (img < 0.2), SIGNAL["cortex"] * 1.5)  # thin dark canal wall feel
    fasc = 1.0 + 0.06 * _smooth_noise(rng, shape, (0.8, 0.4, 1.2))
    nerve_val = SIGNAL["nerve"] * p.nerve_contrast
    _blend(img, nerve_img, nerve_val * fasc)
    _blend(img, vessel_m * (1 - nerve_img * 0.7), SIGNAL["vessel"])

    # ---- acquisition effects ------------------------------------------------------------------
    img = np.clip(img, 0, None)
    # point-spread: slight blur, strongest along the thick-slice (SI) axis
    img = ndimage.gaussian_filter(img, sigma=(0.35, 0.45, 0.5))
    img, labels = _metal_artifacts(img, labels, p, g, teeth_centres, centerlines, rng)
    img = _motion_ghosts(img, p.ghost_strength, rng)
    img *= _bias_field(shape, sp, p.bias_strength, rng)
    sigma = nerve_val / p.snr
    n1 = rng.standard_normal(shape).astype(f32) * f32(sigma)
    n2 = rng.standard_normal(shape).astype(f32) * f32(sigma)
    img = np.sqrt((img + n1) ** 2 + n2 ** 2)                          # Rician magnitude noise
    q = np.clip(np.round(img / INTENSITY_SLOPE), 0, 65535).astype(np.uint16)
    image = q.astype(f32) * f32(INTENSITY_SLOPE)

    info = p.summary()
    for s, name in ((-1, "right"), (1, "left")):
        info[f"centerline_{name}"] = g.to_index(centerlines[s])
    return image, labels, tuple(float(v) for v in sp), info


def _box_slices(g, xr, yr, zr):
    """Canonical index slices covering an x/y/z mm box (None when outside)."""
    sp = g.spacing
    a0 = int(np.floor((yr[0] + g._y_chin) / sp[0])), int(np.ceil((yr[1] + g._y_chin) / sp[0])) + 1
    a1 = int(np.floor(zr[0] / sp[1])), int(np.ceil(zr[1] / sp[1])) + 1
    a2 = int(np.floor((xr[0] + g._x_mid) / sp[2])), int(np.ceil((xr[1] + g._x_mid) / sp[2])) + 1
    out = []
    for (a, b), n in zip((a0, a1, a2), g.shape):
        a, b = max(a, 0), min(b, n)
        if b <= a:
            return None
        out.append(slice(a, b))
    return tuple(out)


def _bias_field(shape, spacing, strength, rng):
    """Smooth multiplicative receive-coil field: brighter toward the lateral surface coils."""
    coords = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    a, s, l_ = np.meshgrid(*coords, indexing="ij", sparse=True)
    c = rng.normal(0, 1, 6).astype(np.float32)
    poly = c[0] * a + c[1] * s + c[2] * l_ + c[3] * a * s + c[4] * s * l_ + c[5] * a * l_
    field = np.exp(np.float32(strength) * (0.6 * poly / 2.5 + 0.5 * (l_ ** 2 - 0.33)))
    return (field / field.mean()).astype(np.float32)


def _motion_ghosts(img, strength, rng):
    """Periodic motion during phase encoding (AP axis): ghost replicas along AP."""
    if strength <= 0:
        return img
    n = img.shape[0]
    k = np.fft.fftfreq(n) * n
    period = rng.uniform(3.0, 8.0)
    phase_err = strength * np.sin(2 * np.pi * k / period + rng.uniform(0, 2 * np.pi))
    shift = strength * 2.0 * np.sin(2 * np.pi * k / (period * 1.7))  # small rigid translation (voxels)
    mod = np.exp(1j * (phase_err - 2 * np.pi * k * shift / n)).astype(np.complex64)
    F = np.fft.fft(img, axis=0)
    F *= mod[:, None, None]
    return np.abs(np.fft.ifft(F, axis=0)).astype(np.float32)


def _metal_artifacts(img, labels, p, g, teeth_centres, centerlines, rng):
    """Susceptibility artifacts of dental metal: void, bright pile-up rim, read-out distortion.

    The read-out (frequency-encoding) direction is right-left (canonical axis 2): the dipole
    field of the metal shifts signal along it, compressing it into bright rims on one side and
    stretching it into dark on the other; intra-voxel dephasing voids the core.
    """
    if not p.metal:
        return img, labels
    shape, sp = img.shape, g.spacing
    out = img.copy()
    lab_out = labels.copy()
    for m in p.metal:
        key = (m["jaw"], m["side"], m["tooth"])
        if key not in teeth_centres:
            continue
        cx, cy, z_crown, z_apex = teeth_centres[key]
        if m["near_canal"]:  # an implant fixture reaching down toward the canal
            side_i = 0 if m["side"] < 0 else 1
            cl = centerlines[m["side"]]
            j = np.argmin(np.hypot(cl[:, 0] - cx, cl[:, 1] - cy) + 10 * (cl[:, 2] < z_crown))
            cz = 0.5 * (z_crown + cl[j, 2]) + 1.0
            cx, cy = 0.6 * cx + 0.4 * cl[j, 0], 0.6 * cy + 0.4 * cl[j, 1]
        else:
            cz = z_crown
        R = m["radius"]
        reach = R * 4.0
        sl = _box_slices(g, (cx - reach, cx + reach), (cy - reach, cy + reach), (cz - reach, cz + reach))
        if sl is None:
            continue
        Xb = g.x[:, :, sl[2]] - cx
        Yb = g.y[sl[0], :, :] - cy
        Zb = g.z[:, sl[1], :] - cz
        if m["kind"] == "implant":  # elongated along SI
            Zb = Zb / 1.8
        r2 = Xb ** 2 + Yb ** 2 + Zb ** 2 + 1e-3
        rr = np.sqrt(r2)
        cos2 = Zb ** 2 / r2
        field = (R ** 3) * (3 * cos2 - 1) / (rr ** 3)                  # dipole, B0 along SI
        shift_mm = np.clip(1.6 * field, -6.0, 6.0)                      # read-out displacement
        shift_vox = shift_mm / sp[2]
        sub = img[sl]
        i2 = np.arange(sub.shape[2], dtype=np.float32)[None, None, :] - shift_vox
        grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in sub.shape], indexing="ij")
        warped = ndimage.map_coordinates(sub, [grid[0], grid[1], np.broadcast_to(i2, sub.shape)],
                                         order=1, mode="nearest")
        lab_w = ndimage.map_coordinates(labels[sl], [grid[0], grid[1], np.broadcast_to(i2, sub.shape)],
                                        order=0, mode="nearest")
        jac = 1.0 - np.gradient(shift_vox, axis=2)
        pileup = np.clip(1.0 / np.clip(jac, 0.25, None), 0.0, 3.0)
        dephase = np.exp(-np.clip(np.abs(field) - 0.35, 0, None) * 3.0) * (rr > R)
        res = warped * pileup * dephase
        res = np.where(rr < R * 1.05, 0.0, res)
        out[sl] = res.astype(np.float32)
        lab_out[sl] = lab_w.astype(np.uint8)
    return out, lab_out
