"""Randomised training volumes: phantom anatomies seen through random acquisitions.

:func:`anatomy_on_grid` rasterises an anatomy once (the slow part, ~10 s) on the networks'
working grid over the anatomy's whole extent; :func:`random_volume` then draws, in about a
second, one training volume from it: a random field of view that holds some nerve, a random head
pose and jaw size (rotation, anisotropic scaling, a smooth elastic warp, applied to tissues and
labels alike by nearest-neighbour sampling), and a random look (:func:`.render.random_style`:
per-tissue intensities and texture, acquisition voxel size and partial volume, ghosts, bias,
noise, gamma, metal artefacts). Every range is in :data:`GEOMETRY_RANGES` and
:data:`.render.STYLE_RANGES`.

Seeds: training anatomies, validation anatomies and the sample phantoms come from disjoint seed
ranges (:data:`SEED_BASE`), so a model is never scored on an anatomy it was trained on.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from scipy import ndimage

from .anatomy import Grid, draw_anatomy, landmarks, tissue_map
from .render import Style, random_style, render

WORK_SPACING = (0.8, 0.5, 0.5)
SEED_BASE = {"train": 100_000, "validation": 200_000, "test": 300_000}

GEOMETRY_RANGES = {
    "fov_mm": ((55.0, 150.0), (50.0, 130.0), (80.0, 175.0)),   # (AP, SI, RL) extent of the crop
    "pitch_deg": 14.0,      # head nodding (about RL)
    "roll_deg": 8.0,        # head tilt (about AP)
    "yaw_deg": 8.0,         # head turn (about SI)
    "scale": (0.88, 1.12),  # per axis
    "elastic_mm": 2.0,      # SD of a smooth displacement (control points ~25 mm apart)
}


@dataclasses.dataclass
class AnatomyVolume:
    """An anatomy rasterised on a grid: tissue codes, IAN labels and metal (voxel centres)."""

    tissue: np.ndarray
    labels: np.ndarray
    spacing: tuple
    metal: list      # (centre (ap, si, rl) voxels, radius mm, kind)
    seed: int


def anatomy_on_grid(seed: int, spacing=WORK_SPACING, **overrides) -> AnatomyVolume:
    """Rasterise anatomy ``seed`` over its whole extent on a grid of ``spacing`` mm."""
    p = draw_anatomy(seed, **overrides)
    lo, hi = landmarks(p).extent()
    shape = tuple(int(np.ceil((hi[i] - lo[i]) / spacing[j])) for j, i in enumerate((1, 2, 0)))
    grid = Grid(shape, tuple(spacing), (lo[1], lo[2], lo[0]))
    tissue, labels, info = tissue_map(p, grid)
    metal = [(grid.to_index(m["centre"][None])[0], m["radius"], m["kind"]) for m in info["metal"]]
    return AnatomyVolume(tissue, labels, tuple(spacing), metal, seed)


def save_anatomy(a: AnatomyVolume, path) -> Path:
    """Store an anatomy compactly (``.npz``); written to a temporary name, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    metal = np.array([[*c, r, {"implant": 0, "crown": 1, "filling": 2}[k]] for c, r, k in a.metal],
                     dtype=np.float64).reshape(-1, 5)
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, tissue=a.tissue, labels=a.labels, spacing=np.asarray(a.spacing),
                            metal=metal, seed=np.asarray(a.seed))
    tmp.replace(path)
    return path


def load_anatomy(path) -> AnatomyVolume:
    with np.load(path) as z:
        kinds = ("implant", "crown", "filling")
        metal = [(m[:3], float(m[3]), kinds[int(m[4])]) for m in z["metal"]]
        return AnatomyVolume(z["tissue"], z["labels"], tuple(float(v) for v in z["spacing"]), metal, int(z["seed"]))


def cached_anatomy(seed: int, folder, spacing=WORK_SPACING) -> AnatomyVolume:
    """:func:`anatomy_on_grid` through a cache folder of ``.npz`` files."""
    path = Path(folder) / f"anatomy_{seed}_{'x'.join(f'{s:g}' for s in spacing)}.npz"
    if path.exists():
        return load_anatomy(path)
    a = anatomy_on_grid(seed, spacing)
    save_anatomy(a, path)
    return a


def _rotation(rng, R) -> np.ndarray:
    """Rotation matrix in (ap, si, rl) axes from random pitch, roll and yaw."""
    p, r, y = (np.radians(rng.uniform(-R[k], R[k])) for k in ("pitch_deg", "roll_deg", "yaw_deg"))
    rx = np.array([[np.cos(p), -np.sin(p), 0], [np.sin(p), np.cos(p), 0], [0, 0, 1]])   # about rl
    ra = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])   # about ap
    rs = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])   # about si
    return rx @ ra @ rs


def random_view(a: AnatomyVolume, rng, ranges=None):
    """A random field of view, pose and warp of an anatomy: ``(tissue, labels, metal)`` on a new
    grid of the same spacing (nearest-neighbour sampling, so labels stay labels)."""
    R = {**GEOMETRY_RANGES, **(ranges or {})}
    sp = np.asarray(a.spacing)
    fov = np.array([rng.uniform(*r) for r in R["fov_mm"]])
    out_shape = tuple(int(v) for v in np.minimum(np.round(fov / sp), a.tissue.shape))
    lab = np.argwhere(a.labels > 0)
    centre_src = lab[rng.integers(len(lab))].astype(float) if len(lab) else np.asarray(a.tissue.shape) / 2
    # the crop's centre: near a nerve voxel, anywhere within a third of the crop from it
    centre_out = np.asarray(out_shape) / 2 + rng.uniform(-1, 1, 3) * np.asarray(out_shape) / 3
    M = _rotation(rng, R) @ np.diag(rng.uniform(*R["scale"], 3))
    # source (mm) = M @ (out (mm) - centre_out (mm)) + centre_src (mm)
    A = np.diag(1 / sp) @ M @ np.diag(sp)
    offset = centre_src - A @ centre_out
    coords = np.indices(out_shape, dtype=np.float32).reshape(3, -1)
    src = (A.astype(np.float32) @ coords) + offset.astype(np.float32)[:, None]
    if R["elastic_mm"] > 0:
        ctrl = [max(2, int(round(n * s / 25.0)) + 1) for n, s in zip(out_shape, sp)]
        for ax in range(3):
            field = rng.normal(0, R["elastic_mm"] / sp[ax], ctrl).astype(np.float32)
            src[ax] += ndimage.zoom(field, [n / c for n, c in zip(out_shape, ctrl)], order=1,
                                    mode="nearest", grid_mode=True)[tuple(slice(0, n) for n in out_shape)].ravel()
    tissue = ndimage.map_coordinates(a.tissue, src, order=0, mode="constant", cval=0).reshape(out_shape)
    labels = ndimage.map_coordinates(a.labels, src, order=0, mode="constant", cval=0).reshape(out_shape)
    Ainv = np.linalg.inv(A)
    metal = [(Ainv @ (np.asarray(c) - offset), r, k) for c, r, k in a.metal]
    return tissue, labels, metal


def random_volume(a: AnatomyVolume, rng, style: Style | None = None, family: str | None = None, ranges=None):
    """One randomised training volume of anatomy ``a`` on its grid's spacing.

    Returns
    -------
    image : float32 ndarray, labels : uint8 ndarray (0/1/2), style : Style
    """
    tissue, labels, metal = random_view(a, rng, ranges)
    style = style or random_style(rng, family, a.spacing)
    image, labels = render(tissue, labels, a.spacing, style, rng, metal)
    return image, labels, style


def ranges_markdown() -> str:
    """Every randomisation range of the training generator as a markdown table (``docs/training.md``
    carries it; a test keeps the two equal)."""
    from .render import STYLE_RANGES

    rows = [("look", k, v) for k, v in STYLE_RANGES.items()] + [("geometry", k, v) for k, v in GEOMETRY_RANGES.items()]

    def fmt(v):
        if isinstance(v, tuple) and v and isinstance(v[0], tuple):
            return ", ".join(f"{a:g}–{b:g}" for a, b in v)
        if isinstance(v, tuple) and all(isinstance(x, str) for x in v):
            return ", ".join(v)
        if isinstance(v, tuple):
            return f"{v[0]:g}–{v[1]:g}"
        return f"{v:g}"

    lines = ["| kind | setting | range |", "| --- | --- | --- |"]
    lines += [f"| {kind} | `{k}` | {fmt(v)} |" for kind, k, v in rows]
    return "\n".join(lines)
