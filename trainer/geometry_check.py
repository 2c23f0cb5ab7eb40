"""Is this voxel grid a plausible MR volume? One check for every reader (NIfTI, DICOM).

napari-ian measures in millimetres along three perpendicular axes. A header can describe
something else without any library objecting: a sheared grid (a tilted gantry; spacing would
then be reported as the length of a skewed axis), axes so close to parallel that the grid is
nearly flat, a voxel size of 0 (which nibabel silently turns into 1 mm) or of 0.002 mm or
500 mm (usually metres or micrometres stored as millimetres). Such grids are refused with one
line naming the file; a slight shear is accepted with a warning.
"""
from __future__ import annotations

import numpy as np

from .errors import VolumeReadError

SPACING_RANGE_MM = (0.05, 20.0)   # from high-resolution nerve imaging to thick-slice localisers
SHEAR_WARN_DEG = 0.5              # below: numerical noise of stored affines
SHEAR_REFUSE_DEG = 5.0            # above: not a grid the pipeline's mm figures would be right on


def axes_shear_deg(affine) -> float:
    """The largest deviation (degrees) of any two voxel axes of ``affine`` from perpendicular."""
    m = np.asarray(affine, dtype=float)[:3, :3]
    d = m / np.linalg.norm(m, axis=0)
    worst = 0.0
    for i, j in ((0, 1), (0, 2), (1, 2)):
        cos = min(abs(float(d[:, i] @ d[:, j])), 1.0)
        worst = max(worst, 90.0 - float(np.degrees(np.arccos(cos))))
    return worst


def check_grid(affine, where) -> list[str]:
    """Check a voxel-to-world affine (mm) of a 3D image.

    Parameters
    ----------
    affine : (4, 4) array-like
        Voxel-to-world affine in millimetres (after any unit conversion).
    where : path-like
        The file or folder, named in the message.

    Returns
    -------
    list of str
        Warnings (one line each) for a grid that is usable but not quite what it should be.

    Raises
    ------
    VolumeReadError
        Non-finite values, an axis of length 0 or outside the plausible voxel sizes, axes far
        from perpendicular or nearly parallel.
    """
    a = np.asarray(affine, dtype=float)
    if a.shape != (4, 4) or not np.isfinite(a).all():
        raise VolumeReadError(where, "its affine (voxel-to-world geometry) holds non-finite values")
    spacing = np.linalg.norm(a[:3, :3], axis=0)
    if (spacing == 0).any():
        raise VolumeReadError(where, "a voxel size of 0 in its geometry: not a 3D grid")
    lo, hi = SPACING_RANGE_MM
    for axis, s in enumerate(spacing):
        if not lo <= s <= hi:
            raise VolumeReadError(where, f"voxel size {s:.4g} mm along array axis {axis} is outside {lo}..{hi} mm, "
                                         "implausible for an MR image (a header in other units?)")
    shear = axes_shear_deg(a)
    if shear > SHEAR_REFUSE_DEG:
        raise VolumeReadError(where, f"its voxel axes are {shear:.1f}° from perpendicular (a sheared or nearly "
                                     "flat grid): resample it onto a perpendicular grid first")
    if shear > SHEAR_WARN_DEG:
        return [f"voxel axes {shear:.1f}° from perpendicular (a sheared grid): distances in mm are approximate"]
    return []
