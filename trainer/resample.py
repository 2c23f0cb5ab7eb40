"""Resampling between voxel grids.

* Networks work on a grid of fixed millimetre spacing, whatever the scanner's voxel size or field
  of view: :func:`to_grid` interpolates a volume onto a grid of another spacing that shares the
  first voxel's centre and the axes (its last voxel may reach up to one working voxel past the
  input's last centre, and is filled by edge values); applied with the spacings swapped and the
  original shape, it is the way back (probabilities are interpolated linearly and thresholded on
  the input's own grid).
* Labels from another file (a Slicer segmentation, a DICOM SEG) are put onto an image's grid by
  :func:`nearest_onto`: both grids are given by their voxel-to-world affines (RAS+ mm), so any axis
  order, direction, obliquity, spacing or extent of the source is handled; every target voxel
  takes the label of the source voxel whose centre is nearest to its own. Labels are never blended.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .volume import Geometry


def working_shape(shape, spacing, target_spacing) -> tuple:
    """Shape of the grid of ``target_spacing`` covering ``shape`` voxels of ``spacing``."""
    return tuple(max(1, int(np.ceil((n - 1) * s / t - 1e-6)) + 1)
                 for n, s, t in zip(shape, spacing, target_spacing))


def to_grid(volume: np.ndarray, spacing, target_spacing, out_shape=None, order: int = 1) -> np.ndarray:
    """``volume`` on a grid of ``target_spacing`` mm (same first voxel centre, same axes).

    Parameters
    ----------
    volume : 3D ndarray
    spacing, target_spacing : 3 floats (mm)
    out_shape : tuple, optional
        Default :func:`working_shape`; give the original shape to come back.
    order : int
        1 linear (images, probabilities), 0 nearest (labels).

    Returns
    -------
    ndarray of ``out_shape`` (float32 for order > 0, the input's dtype for order 0).
    """
    spacing = np.asarray(spacing, float)
    target = np.asarray(target_spacing, float)
    shape = tuple(out_shape) if out_shape is not None else working_shape(volume.shape, spacing, target)
    step = target / spacing                      # input voxels per output voxel
    if np.allclose(step, 1.0) and shape == volume.shape:
        return volume.astype(np.float32, copy=False) if order > 0 else volume
    src = volume.astype(np.float32, copy=False) if order > 0 else volume
    out = ndimage.affine_transform(src, step, offset=0.0, output_shape=shape, order=order, mode="nearest",
                                   prefilter=False)
    return out


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
