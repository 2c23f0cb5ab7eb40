"""MR appearance of a tissue map: intensities, texture, partial volume, metal, ghosts, bias, noise.

:func:`render` draws one image from a map of :data:`~.anatomy.TISSUES` with a :class:`Style`.
:func:`mrn_style` is the sample phantom's fixed look (a fat-suppressed nerve-selective 3D
sequence: the nerve bright, fat and marrow dark, bone and teeth black, the artery and vein
beside the nerve dark); :func:`random_style` draws the randomised looks the bundled model is
trained on. Every range a random style draws from is in :data:`STYLE_RANGES`.

Effects, in the order they happen on a scanner:

1. per-tissue mean signal and a smooth within-tissue texture (multiplicative);
2. dental metal: a signal void, read-out displacement from the metal's dipole field (signal piles
   up into bright rims on one side and is stretched dark on the other) and intra-voxel dephasing;
3. the point-spread function and partial volume of the acquisition voxel (Gaussian blur of the
   acquisition's full width at half maximum, sampling on the acquisition grid);
4. motion ghosts along the phase-encoding axis;
5. the receive coils' smooth bias field;
6. magnitude noise: non-central chi with 1 (Rician) to 8 coil channels at a drawn SNR.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from .anatomy import TISSUES, T

# A nerve-selective fat-suppressed 3D sequence; 1.0 = nerve. The anchor is the source study's
# description: the nerve bright (long T2) in dark bone, fat and vessel signal suppressed.
MRN_MEANS = {
    "background": 0.0, "air": 0.0, "skin": 0.30, "fat": 0.07, "soft": 0.21, "masseter": 0.28,
    "pterygoid": 0.29, "floor_muscle": 0.27, "neck_muscle": 0.26, "tongue": 0.33, "parotid": 0.42,
    "submandibular": 0.46, "node": 0.66, "cortex": 0.02, "marrow": 0.07, "tooth": 0.015, "pulp": 0.22,
    "canal": 0.12, "nerve": 1.0, "ian_artery": 0.03, "ian_vein": 0.04, "artery": 0.03, "vein": 0.05,
    "other_nerve": 0.85, "mucosa": 0.45, "vertebra": 0.09, "disc": 0.45, "cord": 0.40, "csf": 0.85,
    "brain": 0.36, "metal": 0.0,
}
MRN_TEXTURE = {"masseter": 0.10, "pterygoid": 0.10, "floor_muscle": 0.08, "neck_muscle": 0.08,
               "tongue": 0.12, "parotid": 0.12, "submandibular": 0.10, "marrow": 0.25, "soft": 0.06,
               "nerve": 0.05, "other_nerve": 0.05, "brain": 0.05, "vertebra": 0.2, "node": 0.05}

# Ranges random styles draw from (documented in the README's training section).
STYLE_RANGES = {
    "family": ("mrn", "random"),        # MRN-like means jittered, or any intensity per tissue
    "mrn_jitter_log_sd": 0.35,          # per-tissue multiplicative jitter of the MRN means
    "nerve_contrast": (0.25, 1.3),      # nerve mean (MRN family; the other tissues near their means)
    "bright_vessel_p": 0.3,             # the IAN's vein (and others) bright, as slow flow can be
    "texture_amplitude": (0.0, 0.25),
    "texture_scale_mm": (1.0, 5.0),
    "voxel_inplane_mm": (0.35, 1.0),    # acquisition voxel across the slice
    "voxel_thickness_mm": (0.6, 2.6),   # along the slice axis (any of the three)
    "bias_strength": (0.0, 0.6),
    "ghost_strength": (0.0, 0.35),
    "snr": (4.0, 40.0),                 # nerve (or tissue 90th percentile) signal / noise sigma
    "coils": (1, 8),
    "gamma": (0.6, 1.6),
    "metal_susceptibility": (0.5, 1.6),
    "nerve_gap_min": 0.08,              # the nerve differs from canal, fat and pterygoid by at least this
    "cnr_min": 1.2,                     # noise never hides that difference (gap / noise sigma)
}
NERVE_NEIGHBOURS = ("canal", "fat", "pterygoid")   # what the nerve runs through or beside


@dataclasses.dataclass
class Style:
    """How a tissue map looks: everything :func:`render` needs besides the map."""

    means: np.ndarray                   # (n_tissues,) mean signal
    texture: np.ndarray                 # (n_tissues,) texture amplitude
    texture_scale_mm: float = 2.0
    voxel_mm: tuple = (0.8, 1.6, 0.43)  # acquisition voxel (AP, SI, RL)
    readout_axis: int = 2               # frequency encoding (metal displacement)
    phase_axis: int = 0                 # phase encoding (ghosts)
    ghost_strength: float = 0.1
    bias_strength: float = 0.3
    snr: float = 25.0
    coils: int = 1
    metal_susceptibility: float = 1.0
    gamma: float = 1.0
    family: str = "mrn"
    cnr_min: float = 0.0                # > 0: noise capped so the nerve stays this visible

    @property
    def nerve_gap(self) -> float:
        """Smallest difference between the nerve's mean and its neighbours' (NERVE_NEIGHBOURS)."""
        return float(min(abs(self.means[T["nerve"]] - self.means[T[n]]) for n in NERVE_NEIGHBOURS))


def _table(values: dict, default=0.0) -> np.ndarray:
    return np.array([values.get(name, default) for name in TISSUES], dtype=np.float32)


def mrn_style(**overrides) -> Style:
    """The sample phantom's nerve-selective look (fields can be overridden)."""
    s = Style(means=_table(MRN_MEANS), texture=_table(MRN_TEXTURE))
    return dataclasses.replace(s, **overrides) if overrides else s


def random_style(rng: np.random.Generator, family: str | None = None, grid_spacing=(0.8, 0.5, 0.5)) -> Style:
    """A randomised look for training (see :data:`STYLE_RANGES`).

    ``family`` "mrn": the MRN means, each jittered, with a random nerve contrast (from faint to
    bright) and sometimes bright vessels; "random": every tissue an independent uniform intensity
    (the nerve still differs from its canal by at least a little, else there is nothing to see).
    """
    R = STYLE_RANGES
    family = family or str(rng.choice(R["family"]))
    n = len(TISSUES)
    if family == "mrn":
        means = _table(MRN_MEANS) * np.exp(rng.normal(0, R["mrn_jitter_log_sd"], n)).astype(np.float32)
        means[T["nerve"]] = rng.uniform(*R["nerve_contrast"])
        means[T["other_nerve"]] = means[T["nerve"]] * rng.uniform(0.6, 1.2)
        if rng.random() < R["bright_vessel_p"]:
            for v in ("ian_vein", "vein") + (("ian_artery", "artery") if rng.random() < 0.3 else ()):
                means[T[v]] = means[T["nerve"]] * rng.uniform(0.6, 1.3)
    else:
        means = rng.uniform(0, 1, n).astype(np.float32)
    _keep_nerve_visible(means, family, rng, R["nerve_gap_min"])
    means[T["background"]] = 0.0
    if rng.random() < 0.8:
        means[T["air"]] = 0.0
    means[T["metal"]] = 0.0
    texture = (rng.uniform(*R["texture_amplitude"], n) * (rng.random(n) < 0.7)).astype(np.float32)
    slice_axis = int(rng.integers(0, 3))
    voxel = [rng.uniform(*R["voxel_inplane_mm"])] * 3
    voxel[(slice_axis + 1) % 3] = rng.uniform(*R["voxel_inplane_mm"])
    voxel[slice_axis] = rng.uniform(*R["voxel_thickness_mm"])
    voxel = tuple(max(v, g) for v, g in zip(voxel, grid_spacing))
    axes = [a for a in range(3) if a != slice_axis]
    readout = int(rng.choice(axes))
    return Style(
        means=means, texture=texture, texture_scale_mm=float(rng.uniform(*R["texture_scale_mm"])),
        voxel_mm=voxel, readout_axis=readout, phase_axis=[a for a in axes if a != readout][0],
        ghost_strength=float(rng.uniform(*R["ghost_strength"]) * (rng.random() < 0.6)),
        bias_strength=float(rng.uniform(*R["bias_strength"])),
        snr=float(np.exp(rng.uniform(np.log(R["snr"][0]), np.log(R["snr"][1])))),
        coils=int(rng.integers(R["coils"][0], R["coils"][1] + 1)),
        metal_susceptibility=float(rng.uniform(*R["metal_susceptibility"])),
        gamma=float(np.exp(rng.uniform(np.log(R["gamma"][0]), np.log(R["gamma"][1])))), family=family,
        cnr_min=R["cnr_min"])


def _keep_nerve_visible(means, family, rng, gap):
    """Move the nerve's mean (in place) until it differs from each neighbour's by ``gap``: brighter
    than all of them in the MRN family (a nerve-selective sequence), either way otherwise."""
    near = np.array([means[T[k]] for k in NERVE_NEIGHBOURS])
    nerve = float(means[T["nerve"]])
    if np.min(np.abs(nerve - near)) >= gap and (family != "mrn" or nerve > near.max()):
        return
    top, bottom = float(near.max()), float(near.min())
    if family == "mrn" or bottom < gap or rng.random() < 0.5:
        means[T["nerve"]] = top + rng.uniform(gap, max(gap, 0.5 * max(top, 0.25)))
    else:
        means[T["nerve"]] = bottom - rng.uniform(gap, bottom)
    if family == "mrn":
        means[T["other_nerve"]] = means[T["nerve"]] * rng.uniform(0.6, 1.2)


def smooth_noise(rng, shape, sigma_vox) -> np.ndarray:
    """Zero-mean, unit-SD Gaussian-smoothed noise."""
    field = rng.standard_normal(shape, dtype=np.float32)
    field = ndimage.gaussian_filter(field, sigma_vox, mode="reflect")
    field /= field.std() + 1e-8
    return field


def bias_field(shape, strength, rng) -> np.ndarray:
    """A smooth multiplicative receive field (mean 1): low-order polynomial, brighter laterally."""
    coords = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    a, s, l_ = np.meshgrid(*coords, indexing="ij", sparse=True)
    c = rng.normal(0, 1, 6).astype(np.float32)
    poly = c[0] * a + c[1] * s + c[2] * l_ + c[3] * a * s + c[4] * s * l_ + c[5] * a * l_
    field = np.exp(np.float32(strength) * (0.6 * poly / 2.5 + 0.5 * (l_ ** 2 - 0.33)))
    return (field / field.mean()).astype(np.float32)


def motion_ghosts(img, strength, rng, axis=0) -> np.ndarray:
    """Periodic motion during phase encoding along ``axis``: ghost replicas along it."""
    if strength <= 0:
        return img
    n = img.shape[axis]
    k = np.fft.fftfreq(n) * n
    period = rng.uniform(3.0, 8.0)
    phase_err = strength * np.sin(2 * np.pi * k / period + rng.uniform(0, 2 * np.pi))
    shift = strength * 2.0 * np.sin(2 * np.pi * k / (period * 1.7))
    mod = np.exp(1j * (phase_err - 2 * np.pi * k * shift / n)).astype(np.complex64)
    shape = [1, 1, 1]
    shape[axis] = n
    F = np.fft.fft(img, axis=axis)
    F *= mod.reshape(shape)
    return np.abs(np.fft.ifft(F, axis=axis)).astype(np.float32)


def metal_artifacts(img, labels, centres_vox, spacing, susceptibility=1.0, readout_axis=2):
    """Susceptibility artefacts of dental metal around each ``(centre (ap, si, rl) voxels, radius mm,
    kind)``: void, read-out displacement with bright pile-up, dephasing. B0 is along SI.

    The labels are displaced with the signal (an annotator labels the nerve where it appears).
    """
    if not centres_vox:
        return img, labels
    out, lab_out = img.copy(), labels.copy()
    sp = np.asarray(spacing, dtype=np.float32)
    for centre, R, kind in centres_vox:
        R = R * susceptibility ** (1 / 3)
        reach = np.ceil(R * 4.0 / sp).astype(int)
        c = np.rint(centre).astype(int)
        box = tuple(slice(max(c[i] - reach[i], 0), min(c[i] + reach[i] + 1, img.shape[i])) for i in range(3))
        if any(b.stop - b.start < 3 for b in box):
            continue   # the metal lies (almost) outside this field of view
        d = [(np.arange(b.start, b.stop, dtype=np.float32) - centre[i]) * sp[i] for i, b in enumerate(box)]
        Ya, Zs, Xr = np.meshgrid(*d, indexing="ij", sparse=True)
        if kind == "implant":
            Zs = Zs / 1.8
        r2 = Ya ** 2 + Zs ** 2 + Xr ** 2 + 1e-3
        rr = np.sqrt(r2)
        field = (R ** 3) * (3 * Zs ** 2 / r2 - 1) / rr ** 3
        shift_vox = np.clip(1.6 * field, -6.0, 6.0) / sp[readout_axis]
        sub = img[box]
        grid = list(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in sub.shape], indexing="ij"))
        grid[readout_axis] = grid[readout_axis] - shift_vox
        warped = ndimage.map_coordinates(sub, grid, order=1, mode="nearest")
        lab_w = ndimage.map_coordinates(labels[box], grid, order=0, mode="nearest")
        jac = 1.0 - np.gradient(np.broadcast_to(shift_vox, sub.shape), axis=readout_axis)
        pileup = np.clip(1.0 / np.clip(jac, 0.25, None), 0.0, 3.0)
        dephase = np.exp(-np.clip(np.abs(field) - 0.35, 0, None) * 3.0)
        res = np.where(rr < R * 0.8, 0.0, warped * pileup * dephase)
        out[box] = res.astype(np.float32)
        lab_out[box] = lab_w.astype(np.uint8)
    return out, lab_out


def psf_blur(img, grid_spacing, voxel_mm) -> np.ndarray:
    """Blur to the acquisition voxel's resolution (Gaussian of FWHM = voxel, minus the grid's own)."""
    g = np.asarray(grid_spacing, dtype=float)
    v = np.asarray(voxel_mm, dtype=float)
    sigma = np.sqrt(np.clip(v ** 2 - g ** 2, 0, None)) / 2.355 / g
    return ndimage.gaussian_filter(img, sigma, mode="nearest") if np.any(sigma > 0.1) else img


def resample_through(img, grid_spacing, voxel_mm, order=1) -> np.ndarray:
    """Sample on the acquisition grid and interpolate back (what a reader does with such data)."""
    g = np.asarray(grid_spacing, dtype=float)
    f = g / np.asarray(voxel_mm, dtype=float)
    if np.all(f > 0.9):
        return img
    small = ndimage.zoom(img, f, order=1, mode="nearest", grid_mode=True)
    back = ndimage.zoom(small, np.asarray(img.shape) / np.asarray(small.shape), order=order, mode="nearest",
                        grid_mode=True)
    return back[tuple(slice(0, n) for n in img.shape)].astype(np.float32)


def add_noise(img, sigma, coils, rng) -> np.ndarray:
    """Magnitude noise: the root sum of squares of ``coils`` complex channels (Rician for 1)."""
    acc = np.zeros(img.shape, np.float32)
    per = np.float32(1.0 / np.sqrt(coils))
    for c in range(coils):
        re = img * per if c == 0 else np.float32(0)
        acc += (re + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma)) ** 2
        acc += (rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma)) ** 2
    if coils > 1:   # the signal sits in one channel's share; restore its level
        acc += img ** 2 * np.float32(1 - 1 / coils)
    return np.sqrt(acc)


def render(tissue, labels, spacing, style: Style, rng, metal=(), acquire: bool = True):
    """One MR image of a tissue map (on the map's own grid).

    Parameters
    ----------
    tissue : uint8 ndarray
        Codes of :data:`~.anatomy.TISSUES`.
    labels : uint8 ndarray
        IAN labels; returned displaced where metal displaces the signal.
    spacing : (3,) mm of the map's grid.
    style : Style
    rng : numpy Generator
    metal : iterable of ``(centre (ap, si, rl) voxels, radius mm, kind)``
    acquire : bool
        Apply the acquisition voxel (blur and sampling), ghosts, bias and noise; False returns the
        noiseless tissue image (used by callers that sample onto another grid first).

    Returns
    -------
    image : float32 ndarray, labels : uint8 ndarray
    """
    img = style.means[tissue]
    if np.any(style.texture > 0):
        tex = smooth_noise(rng, tissue.shape, style.texture_scale_mm / np.asarray(spacing))
        img = img * (1.0 + style.texture[tissue] * tex)
        np.clip(img, 0, None, out=img)
    img, labels = metal_artifacts(img, labels, list(metal), spacing, style.metal_susceptibility, style.readout_axis)
    if not acquire:
        return img.astype(np.float32), labels
    return acquire_image(img, spacing, style, rng), labels


def acquire_image(img, spacing, style: Style, rng, resample: bool = True) -> np.ndarray:
    """Acquisition effects on a noiseless image: voxel blur (+ sampling), ghosts, bias, noise, gamma."""
    img = psf_blur(img, spacing, style.voxel_mm)
    if resample:
        img = resample_through(img, spacing, style.voxel_mm)
    img = motion_ghosts(img, style.ghost_strength, rng, style.phase_axis)
    img = img * bias_field(img.shape, style.bias_strength, rng)
    level = float(style.means[T["nerve"]]) if style.family == "mrn" else float(np.percentile(img, 90))
    sigma = max(level, 0.05) / style.snr
    if style.cnr_min > 0:   # training: the nerve may be faint, never drowned
        sigma = min(sigma, style.nerve_gap / style.cnr_min)
    img = add_noise(img, max(sigma, 1e-4), style.coils, rng)
    if style.gamma != 1.0:
        top = float(np.percentile(img, 99.5)) or 1.0
        img = (np.clip(img / top, 0, None) ** np.float32(style.gamma)) * np.float32(top)
    return img.astype(np.float32)
