"""The sample phantom: a synthetic nerve-selective MRN volume of the lower jaw with both IANs labelled.

No patient data can ship, so this phantom stands in for it. One patient = an anatomy
(:mod:`.anatomy`: a map of 30 tissue classes, from cortical bone, marrow, teeth with roots near
the canal and the canal with its artery and vein to muscles, tongue, glands, lymph nodes, airway,
sinuses, vertebrae, spinal cord, skull base and brain) seen through one acquisition
(:mod:`.render` with :func:`~.render.mrn_style`: fat-suppressed, the nerve bright in dark bone;
partial volume on the acquisition voxel, coil bias, motion ghosts along the phase-encoding axis,
dental-metal voids with bright pile-up rims and read-out displacement, Rician noise).

The label is the nerve itself (not the canal) from where it leaves the skull base to the mental
foramen, drawn a little inside its edge, 1 = right, 2 = left. Everything is in the canonical
orientation of :mod:`napari_ian.trainer.volume`: axis 0 anterior -> posterior, axis 1 superior
-> inferior, axis 2 patient's right -> left.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .anatomy import AnatomyParams, Grid, draw_anatomy, ian_labels, landmarks, tissue_map
from .render import T, acquire_image, metal_artifacts, mrn_style, psf_blur, render

# Data are stored as integers times this slope (a power of two, so the value is exact both as
# DICOM RescaleSlope and NIfTI scl_slope, and a DICOM round trip gives identical voxels).
INTENSITY_SLOPE = 2.0 ** -12
SI_OVERSAMPLE = 2   # tissue drawn on a grid this much finer along SI (partial volume of thick slices)


@dataclasses.dataclass
class PhantomParams:
    """One phantom patient: its anatomy and its acquisition, drawn by :func:`draw_params`."""

    seed: int
    anatomy: AnatomyParams
    spacing: tuple            # (AP, SI, RL) mm
    fov_lo: tuple             # field of view (x, y, z) mm in anatomy coordinates
    fov_hi: tuple
    nerve_contrast: float
    snr: float
    bias_strength: float
    ghost_strength: float

    def summary(self) -> dict:
        a = self.anatomy.summary()
        return {
            "seed": self.seed,
            "spacing_ap_mm": round(self.spacing[0], 3), "spacing_si_mm": round(self.spacing[1], 3),
            "spacing_rl_mm": round(self.spacing[2], 3),
            **{k: v for k, v in a.items() if k != "seed"},
            "metal_artifacts": a["metal_objects"],
            "snr": round(self.snr, 1), "nerve_contrast": round(self.nerve_contrast, 2),
            "ghost_strength": round(self.ghost_strength, 3),
        }


def draw_params(seed: int, **overrides) -> PhantomParams:
    """Draw one patient from ``seed`` (deterministic). Keywords override any field of
    :class:`PhantomParams` or of its :class:`~.anatomy.AnatomyParams` (e.g. ``metal=[]``)."""
    anat_fields = {f.name for f in dataclasses.fields(AnatomyParams)} - {"seed"}
    anat = draw_anatomy(seed, **{k: v for k, v in overrides.items() if k in anat_fields})
    rng = np.random.default_rng([seed, 31])
    lm = landmarks(anat)
    spacing = (float(rng.uniform(0.75, 0.85)), float(rng.uniform(1.5, 1.7)), float(rng.uniform(0.41, 0.45)))
    shift = float(rng.uniform(-3.0, 3.0))        # the head a little off-centre
    fov_lo = (-(lm.W + 20.0) + shift, -8.0, -12.0)
    fov_hi = (lm.W + 20.0 + shift, lm.L + 40.0, lm.z_inf + 10.0)
    p = PhantomParams(seed=seed, anatomy=anat, spacing=spacing, fov_lo=fov_lo, fov_hi=fov_hi,
                      nerve_contrast=float(rng.uniform(0.8, 1.15)), snr=float(rng.uniform(18, 32)),
                      bias_strength=float(rng.uniform(0.15, 0.4)), ghost_strength=float(rng.uniform(0.02, 0.25)))
    rest = {k: v for k, v in overrides.items() if k not in anat_fields}
    return dataclasses.replace(p, **rest) if rest else p


def phantom_grid(p: PhantomParams) -> Grid:
    """The acquisition grid of a phantom patient (canonical AP, SI, RL)."""
    sp = p.spacing
    lo, hi = np.asarray(p.fov_lo), np.asarray(p.fov_hi)
    shape = (int(round((hi[1] - lo[1]) / sp[0])), int(round((hi[2] - lo[2]) / sp[1])),
             int(round((hi[0] - lo[0]) / sp[2])))
    return Grid(shape, tuple(sp), (lo[1], lo[2], lo[0]))


def make_phantom(seed: int = 0, params: PhantomParams | None = None, **overrides):
    """Make one synthetic patient: an MRN volume of the lower jaw and its IAN labels.

    Parameters
    ----------
    seed : int
        Patient seed; the same seed always gives the same volume.
    params : PhantomParams, optional
        Explicit parameters (otherwise drawn from ``seed``).
    **overrides
        Fields of :class:`PhantomParams` or :class:`~.anatomy.AnatomyParams` to override.

    Returns
    -------
    image : (AP, SI, RL) float32 ndarray
        Values are multiples of :data:`INTENSITY_SLOPE`.
    labels : (AP, SI, RL) uint8 ndarray
        0 background, 1 right IAN, 2 left IAN.
    spacing : tuple of float
        Voxel size in mm (AP, SI, RL).
    info : dict
        :meth:`PhantomParams.summary`, the labelled nerve centrelines in voxel coordinates
        (``"centerline_right"`` / ``"centerline_left"``) and ``"skull_base_index"`` (the SI index
        of the skull base's lower surface, where the labels begin).
    """
    p = params if params is not None else draw_params(seed, **overrides)
    rng = np.random.default_rng([p.seed, 7919])
    grid = phantom_grid(p)
    k = SI_OVERSAMPLE
    fine = Grid((grid.shape[0], grid.shape[1] * k, grid.shape[2]),
                (grid.spacing[0], grid.spacing[1] / k, grid.spacing[2]),
                (grid.origin[0], grid.origin[1] - grid.spacing[1] * (k - 1) / (2 * k), grid.origin[2]))
    tissue, _, info = tissue_map(p.anatomy, fine, with_labels=False)
    labels = ian_labels(info["paths"], grid)
    style = mrn_style(voxel_mm=tuple(p.spacing), snr=p.snr, bias_strength=p.bias_strength,
                      ghost_strength=p.ghost_strength, readout_axis=2, phase_axis=0)
    style.means[T["nerve"]] *= p.nerve_contrast
    metal_fine = [(fine.to_index(m["centre"][None])[0], m["radius"], m["kind"]) for m in info["metal"]]
    img, _ = render(tissue, np.zeros(tissue.shape, np.uint8), fine.spacing, style, rng, metal_fine, acquire=False)
    img = psf_blur(img, fine.spacing, style.voxel_mm)
    img = img.reshape(grid.shape[0], grid.shape[1], k, grid.shape[2]).mean(axis=2)
    # the labels move with the signal the metal displaces (an annotator labels what is seen)
    metal = [(grid.to_index(m["centre"][None])[0], m["radius"], m["kind"]) for m in info["metal"]]
    _, labels = metal_artifacts(np.zeros(grid.shape, np.float32), labels, metal, grid.spacing)
    img = acquire_image(img, grid.spacing, style, rng, resample=False)
    q = np.clip(np.round(img / INTENSITY_SLOPE), 0, 65535).astype(np.uint16)
    image = q.astype(np.float32) * np.float32(INTENSITY_SLOPE)
    out = p.summary()
    for s, name in ((-1, "right"), (1, "left")):
        path = info["paths"][s]
        out[f"centerline_{name}"] = grid.to_index(path["ian"][path["labelled"]])
    out["skull_base_index"] = float(grid.to_index([[0.0, 0.0, 0.0]])[0, 1])
    return image, labels, tuple(float(v) for v in p.spacing), out
