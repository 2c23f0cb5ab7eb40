"""One entry point for reading any supported MR volume: :func:`read_volume`."""
from __future__ import annotations

import warnings
from pathlib import Path

from .errors import VolumeReadError, VolumeWarning
from .io_dicom import read_dicom_folder
from .io_nifti import is_nifti_path, read_nifti, write_nifti
from .phi import redact
from .volume import Volume

__all__ = ["read_volume", "write_nifti", "VolumeReadError", "VolumeWarning"]


def read_volume(path, series_uid: str | None = None) -> Volume:
    """Read a NIfTI file, a DICOM series folder or an Enhanced multi-frame DICOM file.

    What the user should know but that does not stop the reading (non-finite voxels, a
    modality other than MR, a slightly sheared grid, damaged files skipped) is issued as one
    :class:`~napari_ian.trainer.errors.VolumeWarning` per fact, ``"<path>: <fact>"``; the
    same facts are in :attr:`Volume.warnings`.

    Parameters
    ----------
    path : path-like
        ``.nii``/``.nii.gz`` file, folder of one DICOM series, or one multi-frame DICOM file.
    series_uid : str, optional
        The series to read from a DICOM folder that holds several.

    Returns
    -------
    Volume
        Canonical (AP, SI, RL) array with spacing in mm and the source geometry.

    Raises
    ------
    VolumeReadError
        With a one-line message naming the path and the problem.
    """
    path = Path(path)
    if is_nifti_path(path):
        vol = read_nifti(path)
    elif not path.exists():
        raise VolumeReadError(path, "no such file or folder")
    else:
        vol = read_dicom_folder(path, series_uid=series_uid)
    for fact in vol.warnings:
        warnings.warn(VolumeWarning(redact(f"{path}: {fact}", vol.identifiers)), stacklevel=2)
    return vol
