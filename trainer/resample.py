"""Put a label array from one voxel grid onto another by nearest neighbour, in patient space.

Both grids are given by their voxel-to-world affines (RAS+ mm), so any axis order, direction,
obliquity, spacing or extent of the source is handled: every voxel of the target takes the
label of the source voxel whose centre is nearest to its own centre in the patient. Labels are
never blended.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .volume import Geometry


def nearest_onto(source: np.ndarray, source_affine: np.ndarray, target_affine: np.ndarray,
                 target_shape) -> np.ndarray:
    """Sample ``source`` (on ``source_affine``) at every voxel centre of the target grid.

    Parameters
    ----------
    source : (I, J, K) integer ndarray
        Labels on their own grid.
    source_affine, target_affine : (4, 4) ndarray
        Voxel-to-world affines (same world, RAS+ mm).
    target_shape : tuple of 3 int

    Returns
    -------
    ndarray of ``source.dtype`` and ``target_shape``; 0 where the target lies outside the source.
    """
    # target voxel -> world -> source voxel
    m = np.linalg.inv(np.asarray(source_affine, float)) @ np.asarray(target_affine, float)
    # snap a matrix that is a pure axis permutation/flip with integer shift (the same grid read
    # another way, or a cropped extent): rounding error must not move a label by a voxel
    snapped = np.round(m)
    if np.allclose(m, snapped, atol=1e-4):
        m = snapped
    return ndimage.affine_transform(np.asarray(source), m[:3, :3], offset=m[:3, 3], output_shape=tuple(target_shape),
                                    order=0, mode="grid-constant", cval=0, prefilter=False)


def onto_geometry(source: np.ndarray, source_affine: np.ndarray, geometry: Geometry) -> np.ndarray:
    """``source`` resampled onto the canonical (AP, SI, RL) array of ``geometry`` (nearest neighbour)."""
    return nearest_onto(source, source_affine, geometry.canonical_affine, geometry.canonical_shape)
