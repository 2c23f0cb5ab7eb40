"""The paper's slice preprocessing, made automatic, with an exact inverse.

Per side: the coronal slices of one half of the head (the paper's manual per-side crop, here
found automatically by the head's left-right symmetry), the left half mirrored to the right
orientation; per slice min–max scaling to [0, 1], aspect-preserving resize (Lanczos for images,
nearest for masks; no JPEG, no lossy masks) and zero padding, centred, to the network's input
size (the paper: 256 x 256). :func:`unfit` maps network outputs back onto the half-slice grid by
the exact inverse of that geometric transform, and :func:`merge_sides` puts both halves back on
the volume's grid.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image


@dataclasses.dataclass(frozen=True)
class FitTransform:
    """How a (h, w) slice was placed into an (H, W) network input."""

    src_shape: tuple
    out_shape: tuple
    scale: float
    resized: tuple   # (nh, nw)
    offset: tuple    # (top, left) zero padding before the resized slice


def fit_transform(src_shape, out_shape) -> FitTransform:
    """The aspect-preserving fit of ``src_shape`` into ``out_shape`` (centred, zero padded)."""
    h, w = src_shape
    H, W = out_shape
    scale = min(H / h, W / w)
    nh, nw = max(1, min(H, int(round(h * scale)))), max(1, min(W, int(round(w * scale))))
    return FitTransform((h, w), (H, W), scale, (nh, nw), ((H - nh) // 2, (W - nw) // 2))


def _resize(img2d: np.ndarray, size_hw, resample) -> np.ndarray:
    nh, nw = size_hw
    if img2d.shape == (nh, nw):
        return img2d.astype(np.float32, copy=True)
    return np.asarray(Image.fromarray(np.ascontiguousarray(img2d, dtype=np.float32), mode="F")
                      .resize((nw, nh), resample=resample), dtype=np.float32)


def minmax(img: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] (a constant image becomes all zeros)."""
    lo, hi = float(np.min(img)), float(np.max(img))
    return ((img - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros_like(img, dtype=np.float32)


def fit(img2d: np.ndarray, tf: FitTransform, kind: str = "image") -> np.ndarray:
    """Place a slice into the network input: Lanczos (``image``) or nearest (``mask``)."""
    out = np.zeros(tf.out_shape, dtype=np.float32)
    t, l_ = tf.offset
    nh, nw = tf.resized
    resample = Image.LANCZOS if kind == "image" else Image.NEAREST
    out[t:t + nh, l_:l_ + nw] = _resize(img2d, (nh, nw), resample)
    return out


def unfit(out2d: np.ndarray, tf: FitTransform) -> np.ndarray:
    """Exact geometric inverse of :func:`fit` for network outputs (bilinear on probabilities)."""
    t, l_ = tf.offset
    nh, nw = tf.resized
    return _resize(np.asarray(out2d, dtype=np.float32)[t:t + nh, l_:l_ + nw], tf.src_shape, Image.BILINEAR)


def find_midline(volume: np.ndarray) -> int:
    """Column (canonical RL axis) of the head's left-right symmetry plane.

    The mean coronal image is cross-correlated with its mirror image; the best shift gives the
    mirror axis. Searched within the middle 40 % of the field of view.
    """
    img = np.asarray(volume, dtype=np.float32)
    if not np.isfinite(img).all():   # a NaN or Inf voxel must not move the midline
        img = np.nan_to_num(img, nan=0.0, posinf=0.0, neginf=0.0)
    img = img.mean(axis=0)                                            # (SI, RL)
    img = img - img.mean(axis=1, keepdims=True)
    n = img.shape[1]
    f = np.fft.rfft(img, n=2 * n, axis=1)
    g = np.fft.rfft(img[:, ::-1], n=2 * n, axis=1)
    corr = np.fft.irfft(f * np.conj(g), n=2 * n, axis=1).sum(axis=0)  # corr[s] ~ sum I(x) I'(x - s)
    # I mirrored about centre c: I'(x) = I(n - 1 - x); match at shift s = 2c - (n - 1)
    centres = np.arange(int(0.3 * n), int(0.7 * n) + 1)
    shifts = (2 * centres - (n - 1)) % (2 * n)
    return int(centres[np.argmax(corr[shifts])]) + 1  # first column of the left half


def split_sides(volume: np.ndarray, midline: int) -> dict:
    """{1: right half, 2: left half mirrored} along the canonical RL axis (both lateral-first)."""
    return {1: volume[:, :, :midline], 2: volume[:, :, midline:][:, :, ::-1]}


def merge_sides(halves: dict, midline: int, shape, dtype=np.float32) -> np.ndarray:
    """Inverse of :func:`split_sides`: the halves back on the full grid."""
    out = np.zeros(shape, dtype=dtype)
    if 1 in halves:
        out[:, :, :midline] = halves[1]
    if 2 in halves:
        out[:, :, midline:] = halves[2][:, :, ::-1]
    return out


def prepare_slices(half: np.ndarray, out_shape, k: int = 1, mask: np.ndarray | None = None):
    """Network inputs (N, k, H, W) for all slices of a half-volume, (N, H, W) masks, and the transform.

    Each slice is min–max scaled on its own (the paper scaled each image) and fitted once; the
    2.5D channels are its neighbours (edges repeated).
    """
    n, h, w = half.shape
    tf = fit_transform((h, w), out_shape)
    fitted = np.stack([fit(minmax(s), tf, "image") for s in half])
    r = k // 2
    idx = np.clip(np.arange(n)[:, None] + np.arange(-r, r + 1)[None, :], 0, n - 1)
    x = fitted[idx]                                               # (N, k, H, W)
    y = None
    if mask is not None:
        y = np.stack([fit(m.astype(np.float32), tf, "mask") for m in mask]).astype(np.uint8)
    return x.astype(np.float32), y, tf
