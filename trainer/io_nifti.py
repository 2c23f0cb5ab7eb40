"""NIfTI (.nii / .nii.gz) reading into the canonical orientation, and writing masks back."""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.openers import ImageOpener

from .atomic import atomic_path
from .errors import VolumeReadError, VolumeWriteError, describe
from .geometry_check import check_grid
from .volume import Geometry, Volume, count_nonfinite

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


# NIfTI xyzt_units spatial codes nibabel names, and millimetres per unit
_UNIT_MM = {"meter": 1000.0, "mm": 1.0, "micron": 0.001, "unknown": 1.0}


def _voxel_type_problem(dtype: np.dtype) -> str:
    """Why voxels of ``dtype`` are no MR magnitude image ("" when they are)."""
    if dtype.fields is not None or dtype.kind == "V":
        return "colour (RGB) voxels, not an MR magnitude image"
    if dtype.kind == "c":
        return "complex-valued voxels (real and imaginary parts): save the magnitude image and open that"
    if dtype.kind not in "biuf":
        return f"voxels of type {dtype}, not numbers"
    return ""


@contextlib.contextmanager
def _nibabel_quiet():
    """Keep nibabel's log of the header fixes it makes off stderr (what matters is checked here)."""
    log = nib.imageglobals.logger
    level = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        log.setLevel(level)


def _stored_pixdim(path, header_class) -> np.ndarray:
    """The voxel size the header stores (nibabel's loaded header has already turned 0 into 1)."""
    with ImageOpener(str(path)) as fh:
        raw = header_class.from_fileobj(fh, check=False)
    return np.asarray(raw["pixdim"][1:4], dtype=float)


def read_nifti(path) -> Volume:
    """Read a 3D NIfTI file into the canonical orientation.

    Parameters
    ----------
    path : path-like
        A ``.nii`` or ``.nii.gz`` file.

    Returns
    -------
    Volume
        Canonical (AP, SI, RL) array, spacing in mm, and the source geometry. Spatial units
        of metres or micrometres (``xyzt_units``) are converted to mm; non-finite voxels are
        counted (:attr:`Volume.nonfinite`).

    Raises
    ------
    VolumeReadError
        Missing, unreadable or not a regular file, a 2D image, a 4D series of several volumes,
        colour or complex voxels, a voxel size of 0 in the header, or a grid that is not a
        plausible MR volume (see :func:`~napari_ian.trainer.geometry_check.check_grid`).
    """
    path = Path(path)
    if not path.exists():
        raise VolumeReadError(path, "no such file")
    if not path.is_file():   # a FIFO or device would block or never end
        raise VolumeReadError(path, "not a regular file")
    try:
        with _nibabel_quiet():
            img = nib.load(str(path))
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise VolumeReadError(path, f"not a NIfTI image ({type(img).__name__})")
        shape, hdr = img.shape, img.header
        dtype = img.get_data_dtype()
        slope, inter = hdr.get_slope_inter()
        unit = hdr.get_xyzt_units()[0]
        pixdim = _stored_pixdim(path, type(hdr))
        sform_code = int(hdr["sform_code"]) if "sform_code" in hdr else 1
        qform_code = int(hdr["qform_code"]) if "qform_code" in hdr else 1
        affine = np.asarray(img.affine, dtype=float)
    except VolumeReadError:
        raise
    except Exception as exc:  # nibabel raises several types for corrupt files
        raise VolumeReadError(path, f"not a readable NIfTI file ({describe(exc)})") from None
    problem = _voxel_type_problem(dtype)
    if problem:
        raise VolumeReadError(path, problem)
    if len(shape) == 4 and shape[3] == 1:
        img = img.slicer[..., 0]
        shape = img.shape
    if len(shape) == 4:
        raise VolumeReadError(path, f"4D file with {shape[3]} volumes (shape {shape}); "
                                    "napari-ian reads one 3D volume: split it first")
    if len(shape) != 3 or min(shape) < 2:
        raise VolumeReadError(path, f"a {len(shape)}D image of shape {shape}, not a 3D volume")
    if sform_code == 0 and not (np.isfinite(pixdim).all() and (pixdim != 0).all()):
        # the affine then comes from pixdim, where nibabel turns a 0 into 1 mm
        raise VolumeReadError(path, f"its header gives voxel size {' x '.join(f'{v:g}' for v in pixdim)} "
                                    "(pixdim): not a 3D grid")
    unit_mm = _UNIT_MM.get(unit, 1.0)
    affine[:3] *= unit_mm   # rows of the spatial part and the offset: mm from here on
    notes = check_grid(affine, path)
    if unit_mm != 1.0:
        notes.append(f"its geometry is stored in {unit}s (xyzt_units); converted to mm")
    try:
        if (slope in (None, 1.0) or np.isnan(slope)) and (inter in (None, 0.0) or np.isnan(inter)):
            native = np.asanyarray(img.dataobj)
        else:
            native = img.get_fdata(dtype=np.float32)
    except MemoryError:
        need = np.prod(shape) * max(np.dtype(dtype).itemsize, 4) / 2**30
        raise VolumeReadError(path, f"not enough memory to read its voxels ({' x '.join(map(str, shape))}, "
                                    f"about {need:.1f} GiB)") from None
    except Exception as exc:
        raise VolumeReadError(path, f"voxel data could not be read ({describe(exc)})") from None
    if not native.dtype.isnative:  # big-endian files: compute in the machine's byte order
        native = native.astype(native.dtype.newbyteorder("="))
    descrip = hdr["descrip"].item().decode("ascii", "replace").strip("\x00 ") if "descrip" in hdr else ""
    geom = Geometry(native_affine=affine, native_shape=tuple(int(s) for s in native.shape),
                    source=os.fspath(path), kind="nifti", series_description=descrip,
                    case_key=file_sha256(path), sform_code=sform_code or 1,
                    qform_code=qform_code or 1, unit_mm=unit_mm)
    return Volume(data=np.ascontiguousarray(geom.to_canonical(native)), geometry=geom,
                  nonfinite=count_nonfinite(native), notes=tuple(notes))


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
    affine = np.array(geometry.native_affine, dtype=float)
    unit_mm = float(geometry.unit_mm or 1.0)
    affine[:3] /= unit_mm      # back in the source's own unit: the source's affine, number for number
    img = nib.Nifti1Image(native, affine)
    img.set_sform(affine, code=int(geometry.sform_code or 1))
    img.set_qform(affine, code=int(geometry.qform_code or 1))
    if unit_mm != 1.0:
        img.header.set_xyzt_units(xyz=next(u for u, mm in _UNIT_MM.items() if mm == unit_mm))
    img.header["descrip"] = description.encode("ascii", "replace")[:79]
    if np.issubdtype(native.dtype, np.integer):
        img.header.set_slope_inter(1.0, 0.0)
    with atomic_path(path, suffix=".nii.gz" if str(path).lower().endswith(".gz") else ".nii") as tmp:
        nib.save(img, str(tmp))   # an OSError comes out as a VolumeWriteError naming ``path``
    return path
