"""Resampling between a volume's own voxel grid and a network's working grid (fixed mm spacing).

A network trained at one physical resolution sees every input at that resolution, whatever the
scanner's voxel size or field of view. Both grids share the first voxel's centre and the axes;
the working grid covers the same extent (its last voxel may reach up to one working voxel past
the input's last centre, and is filled by edge values). :func:`to_grid` interpolates voxel values
onto a grid of another spacing; applied with the spacings swapped and the original shape, it is
the way back (probabilities are interpolated linearly and thresholded on the input's own grid).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


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
