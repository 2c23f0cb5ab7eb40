"""Intensity normalisation that one hot voxel, a NaN or an outlier cannot wreck.

MR magnitude has no absolute scale, so every volume is mapped to a common range before it meets
a network, the same way in training, prediction and fine-tuning: percentiles of the finite voxels
of the volume (not a per-slice minimum and maximum, which one metal rim or one NaN voxel can
move) set 0 and 1, the result is clipped to a fixed band, and non-finite voxels become 0 after
the statistics were taken without them.
"""
from __future__ import annotations

import numpy as np

DEFAULT_NORMALISATION = {"method": "percentile", "lower": 1.0, "upper": 99.5, "clip": [-0.5, 3.0]}
_MAX_SAMPLE = 2_000_000   # percentiles from a strided sample of at most this many voxels


def robust_range(volume: np.ndarray, lower: float = 1.0, upper: float = 99.5) -> tuple[float, float]:
    """Percentiles ``lower`` and ``upper`` of the finite voxels (a strided sample of big volumes).

    Returns ``(lo, hi)`` with ``hi > lo``; a volume with no finite voxel or no spread gives (0, 1).
    """
    flat = np.asarray(volume).reshape(-1)
    step = max(1, flat.size // _MAX_SAMPLE)
    sample = flat[::step]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(sample, [lower, upper]))
    if not hi > lo:
        lo, hi = float(sample.min()), float(sample.max())
    if not hi > lo:
        return lo, lo + 1.0
    return lo, hi


def normalise(volume: np.ndarray, params: dict | None = None) -> np.ndarray:
    """``volume`` (any shape, any dtype, NaN/Inf allowed) -> float32 on the common scale.

    Parameters
    ----------
    volume : ndarray
    params : dict, optional
        ``{"method": "percentile", "lower": 1.0, "upper": 99.5, "clip": [-0.5, 3.0]}`` (the
        default, :data:`DEFAULT_NORMALISATION`), as stored in a model file's preprocessing.

    Returns
    -------
    float32 ndarray
        ``(v - p_lower) / (p_upper - p_lower)`` clipped to ``clip``; non-finite voxels are 0.
    """
    p = {**DEFAULT_NORMALISATION, **(params or {})}
    if p["method"] != "percentile":
        raise ValueError(f"unknown normalisation method {p['method']!r}")
    lo, hi = robust_range(volume, p["lower"], p["upper"])
    out = np.asarray(volume, dtype=np.float32) - np.float32(lo)
    out *= np.float32(1.0 / (hi - lo))
    np.clip(out, p["clip"][0], p["clip"][1], out=out)
    bad = ~np.isfinite(out)   # NaN survives clip; Inf was clipped already
    if bad.any():
        out[bad] = 0.0
    return out


def count_nonfinite(volume: np.ndarray) -> int:
    """Number of NaN or infinite voxels."""
    a = np.asarray(volume)
    return 0 if not np.issubdtype(a.dtype, np.floating) else int(a.size - np.count_nonzero(np.isfinite(a)))
