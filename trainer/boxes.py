"""Boxes in a volume: a region widened by a margin and clipped to the volume, defined once.

A box is a tuple of slices, one per axis. The prediction's region of interest, the fine-tune's
live validation, the click paths and the bright-path tracer all crop a box around something
with some context around it; they all build it here.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def margin_voxels(margin_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """``margin_mm`` in whole voxels along each axis (rounded up), for voxels ``spacing`` mm apart.

    Parameters
    ----------
    margin_mm : float
        The margin in mm (0 or more).
    spacing : sequence of float
        Voxel spacing in mm per axis.

    Returns
    -------
    numpy.ndarray of int
        One count per axis.
    """
    sp = np.asarray(spacing, dtype=float)
    if margin_mm < 0 or not np.all(sp > 0):
        raise ValueError(f"need a margin >= 0 and positive spacings, got {margin_mm} mm and {tuple(sp)}")
    return np.ceil(margin_mm / sp).astype(int)


def widened_box(lo, hi, pad, shape, least=None) -> tuple:
    """The box ``[lo, hi)`` per axis, ``pad`` voxels wider on each side, inside ``shape``.

    Parameters
    ----------
    lo, hi : sequence of int
        The box's first voxel and one past its last, per axis.
    pad : int or sequence of int
        Voxels added on each side, per axis.
    shape : sequence of int
        The volume's shape; the box is clipped to it.
    least : sequence of int, optional
        A smallest length per axis: a shorter box is grown about its centre to it, as far as the
        volume allows (a network's patch, say).

    Returns
    -------
    tuple of slice
    """
    n = len(shape)
    lo, hi = np.broadcast_to(np.asarray(lo, int), n), np.broadcast_to(np.asarray(hi, int), n)
    pad = np.broadcast_to(np.asarray(pad, int), n)
    least = np.zeros(n, int) if least is None else np.broadcast_to(np.asarray(least, int), n)
    box = []
    for a, b, p, m, size in zip(lo, hi, pad, least, shape):
        a, b = max(int(a) - int(p), 0), min(int(b) + int(p), int(size))
        if b - a < m:
            a = max(min((a + b) // 2 - int(m) // 2, int(size) - int(m)), 0)
            b = min(a + int(m), int(size))
        box.append(slice(a, b))
    return tuple(box)


def mask_box(mask: np.ndarray, pad=0, least=None) -> tuple | None:
    """The box around the true voxels of ``mask`` (see :func:`widened_box`); None when none is."""
    found = np.nonzero(mask)
    if not found[0].size:
        return None
    return widened_box([f.min() for f in found], [f.max() + 1 for f in found], pad, mask.shape, least)


__all__ = ["margin_voxels", "widened_box", "mask_box"]
