"""npe2 reader: NIfTI files, DICOM series folders and multi-frame DICOM files."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from napari.utils.notifications import show_error, show_warning

from ._layers import volume_layer_data
from .trainer.errors import VolumeReadError, VolumeWarning
from .trainer.io import read_volume
from .trainer.io_dicom import has_dicom_magic
from .trainer.io_nifti import is_nifti_path
from .trainer.phi import safe_name

# folders holding these are left to napari's own readers (image stacks)
_OTHER_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".npy", ".zarr"}


def _claims_folder(folder: Path) -> bool:
    """A folder with DICOM files, or one napari's own readers would not read either."""
    other = False
    for i, (root, _dirs, names) in enumerate(os.walk(folder)):
        for name in names[:200]:
            p = Path(root) / name
            if p.suffix.lower() in _OTHER_IMAGE_SUFFIXES:
                other = True
            elif has_dicom_magic(p) or p.suffix.lower() == ".dcm":
                return True
        if i > 20:
            break
    return not other


def get_reader(path):
    """Return a reader function for paths napari-ian can open, else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if is_nifti_path(p):
        return read_layers
    if p.is_dir():
        return read_layers if _claims_folder(p) else None
    if p.is_file() and (p.suffix.lower() == ".dcm" or has_dicom_magic(p)):
        return read_layers
    return None


def _layer_name(p: Path, vol) -> str:
    """The file or folder name, unless it (or the series description) names the patient.

    DICOM exports are often filed under the patient's name or ID; the layer name travels into
    autosaves and default export names, so then a neutral name with a hash of the series is used.
    """
    name = p.name
    for suffix in (".nii.gz", ".nii", ".dcm"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    neutral = f"MR series {vol.geometry.case_key[:8]}" if vol.geometry.case_key else "MR volume"
    description = safe_name(vol.geometry.series_description, vol.identifiers, "")
    return safe_name(name, vol.identifiers, "") or description or neutral


def read_layers(path):
    """Read one volume as a layer in canonical orientation with scale = spacing (mm).

    Problems are shown as one notification line naming the path; nothing is loaded then.
    """
    if isinstance(path, (list, tuple)):
        path = path[0]
    p = Path(path)
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always", VolumeWarning)
            vol = read_volume(p)
    except VolumeReadError as exc:
        show_error(str(exc))
        return []
    for w in said:   # non-finite voxels, not MR, a sheared grid: one notification each
        if issubclass(w.category, VolumeWarning):
            show_warning(f"napari-ian: {w.message}")
    return [volume_layer_data(vol, _layer_name(p, vol))]
