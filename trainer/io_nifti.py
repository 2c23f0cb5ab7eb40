"""NIfTI (.nii / .nii.gz) reading into the canonical orientation, and writing masks back."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from .atomic import atomic_path
from .errors import VolumeReadError, VolumeWriteError
from .volume import Geometry, Volume

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti_path(path) -> bool:
    """True when the name ends in ``.nii`` or ``.nii.gz``."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def file_sha256(path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes: a case key that holds no patient identifier."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def read_nifti(path) -> Volume:
    """Read a 3D NIfTI file into the canonical orientation.

    Parameters
    ----------
    path : path-like
        A ``.nii`` or ``.nii.gz`` file.

    Returns
    -------
    Volume
        Canonical (AP, SI, RL) array, spacing in mm, and the source geometry.

    Raises
    ------
    VolumeReadError
        Missing or unreadable file, a 2D image, a 4D series of several volumes, or an affine
        that does not describe a 3D grid.
    """
    path = Path(path)
    if not path.exists():
        raise VolumeReadError(path, "no such file")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for corrupt files
        raise VolumeReadError(path, f"not a readable NIfTI file ({exc})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise VolumeReadError(path, f"not a NIfTI image ({type(img).__name__})")
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        img = img.slicer[..., 0]
        shape = img.shape
    if len(shape) == 4:
        raise VolumeReadError(path, f"4D file with {shape[3]} volumes (shape {shape}); "
                                    "napari-ian reads one 3D volume: split it first")
    if len(shape) != 3 or min(shape) < 2:
        raise VolumeReadError(path, f"a {len(shape)}D image of shape {shape}, not a 3D volume")
    affine = np.asarray(img.affine, dtype=float)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise VolumeReadError(path, "its affine does not describe a 3D grid (zero or non-finite)")
    hdr = img.header
    slope, inter = hdr.get_slope_inter()
    try:
        if (slope in (None, 1.0) or np.isnan(slope)) and (inter in (None, 0.0) or np.isnan(inter)):
            native = np.asanyarray(img.dataobj)
        else:
            native = img.get_fdata(dtype=np.float32)
    except Exception as exc:
        raise VolumeReadError(path, f"voxel data could not be read ({exc})") from None
    if not native.dtype.isnative:  # big-endian files: compute in the machine's byte order
        native = native.astype(native.dtype.newbyteorder("="))
    sform_code = int(hdr["sform_code"]) if "sform_code" in hdr else 1
    qform_code = int(hdr["qform_code"]) if "qform_code" in hdr else 1
    descrip = hdr["descrip"].item().decode("ascii", "replace").strip("\x00 ") if "descrip" in hdr else ""
    geom = Geometry(native_affine=affine, native_shape=tuple(int(s) for s in native.shape),
                    source=os.fspath(path), kind="nifti", series_description=descrip,
                    case_key=file_sha256(path), sform_code=sform_code or 1,
                    qform_code=qform_code or 1)
    return Volume(data=np.ascontiguousarray(geom.to_canonical(native)), geometry=geom)


def write_nifti(path, canonical: np.ndarray, geometry: Geometry, dtype=None,
                description: str = "") -> Path:
    """Write a canonical array on the source grid of ``geometry``, atomically.

    The array is reoriented back to the source file's own axes and saved with the source
    affine, so a viewer overlays it on the input exactly (same shape, same affine).

    Parameters
    ----------
    path : path-like
        ``.nii`` or ``.nii.gz`` target. An existing file is replaced only when the new one is
        completely written.
    canonical : (AP, SI, RL) ndarray
        E.g. a label mask (0 background, 1 right IAN, 2 left IAN).
    geometry : Geometry
        The geometry of the image the mask belongs to.
    dtype : numpy dtype, optional
        Stored type; defaults to uint8 for integer/bool data with values below 256.
    description : str
        Stored in the header's ``descrip`` (80 bytes at most; never patient identifiers).
    """
    path = Path(path)
    if not is_nifti_path(path):
        raise VolumeWriteError(path, "output must end in .nii or .nii.gz")
    arr = np.asarray(canonical)
    if dtype is None:
        if arr.dtype == bool or (np.issubdtype(arr.dtype, np.integer) and arr.size
                                 and arr.min() >= 0 and arr.max() < 256):
            dtype = np.uint8
        else:
            dtype = arr.dtype
    try:
        native = geometry.to_native(arr).astype(dtype, copy=False)
    except ValueError as exc:
        raise VolumeWriteError(path, str(exc)) from None
    img = nib.Nifti1Image(native, geometry.native_affine)
    img.set_sform(geometry.native_affine, code=int(geometry.sform_code or 1))
    img.set_qform(geometry.native_affine, code=int(geometry.qform_code or 1))
    img.header["descrip"] = description.encode("ascii", "replace")[:79]
    if np.issubdtype(native.dtype, np.integer):
        img.header.set_slope_inter(1.0, 0.0)
    try:
        with atomic_path(path) as tmp:
            nib.save(img, str(tmp))
    except OSError as exc:
        raise VolumeWriteError(path, exc.strerror or str(exc)) from None
    return path
