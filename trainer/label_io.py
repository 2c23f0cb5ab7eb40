"""IAN labels in and out of every format napari-ian exchanges, chosen by file name.

| name ends in | read | write |
| --- | --- | --- |
| ``.nii`` / ``.nii.gz`` | labels 0/1/2 | on the image's grid and affine |
| ``.seg.nrrd`` / ``.nrrd`` | 3D Slicer segmentation or label volume, segments mapped by name | Slicer segmentation, LPS |
| ``.dcm`` | DICOM SEG of a referenced DICOM series | DICOM SEG (carries patient identifiers) |

Reading onto a reference image resamples by nearest neighbour in patient space, so a label
file on another grid (a Slicer segmentation cropped to its extent, another axis order or
spacing) lands on the image's voxels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .dicom_seg import is_dicom_seg_path, read_dicom_seg, write_dicom_seg
from .errors import VolumeReadError, VolumeWriteError
from .io_nifti import is_nifti_path, write_nifti
from .io_nrrd import is_nrrd_path, read_nrrd_segmentation, segmentation_geometry, segmentation_labels, write_seg_nrrd
from .resample import onto_geometry
from .volume import Volume

LABEL_SUFFIXES = (".nii.gz", ".nii", ".seg.nrrd", ".nrrd", ".dcm")
# for file dialogs: (filter text, suffixes)
LABEL_FORMATS = (("NIfTI", (".nii.gz", ".nii")), ("3D Slicer segmentation", (".seg.nrrd", ".nrrd")),
                 ("DICOM SEG (contains patient identifiers)", (".dcm",)))


def label_format(path) -> str:
    """``"nifti"``, ``"nrrd"`` or ``"dicom-seg"`` from the name; ValueError for anything else."""
    if is_nifti_path(path):
        return "nifti"
    if is_nrrd_path(path):
        return "nrrd"
    if is_dicom_seg_path(path):
        return "dicom-seg"
    raise ValueError(f"{path}: unknown label format; use .nii.gz, .nii, .seg.nrrd, .nrrd or .dcm (DICOM SEG)")


def read_labels(path, reference: Volume | None = None, side_map: dict | None = None) -> tuple[Volume, list[str]]:
    """Read IAN labels (0/1/2) from any supported file, onto ``reference``'s grid when given.

    Parameters
    ----------
    path : path-like
        NIfTI labels, a ``.seg.nrrd`` / label ``.nrrd``, or a DICOM SEG (``.dcm``).
    reference : Volume, optional
        The image whose grid the labels take (nearest neighbour in patient space). Required for a
        DICOM SEG (the series it references). Without it a NIfTI or NRRD keeps its own grid.
    side_map : dict, optional
        Segment name/ID/label value -> side (:func:`~.segment_sides.parse_side_map`).

    Returns
    -------
    (Volume, report)
        Canonical labels with the geometry of ``reference`` (or the file's own), and lines saying
        which segment became which label.
    """
    from .io import read_volume

    path = Path(path)
    kind = label_format(path)
    if kind == "dicom-seg":
        if reference is None:
            raise VolumeReadError(path, "a DICOM SEG is read onto the DICOM series it references: give that "
                                        "series' folder as the reference")
        labels, report = read_dicom_seg(path, reference, side_map)
        return Volume(data=labels, geometry=reference.geometry), report
    if kind == "nrrd":
        seg = read_nrrd_segmentation(path)
        native, report = segmentation_labels(seg, side_map, path)
        own = segmentation_geometry(path, seg)
    else:
        vol = read_volume(path)
        bad = sorted(set(np.unique(vol.data).tolist()) - {0, 1, 2})
        if bad:
            raise VolumeReadError(path, f"label values {bad} (expected 0, 1 = right IAN, 2 = left IAN)")
        own, native = vol.geometry, vol.geometry.to_native(vol.data)
        report = ["NIfTI labels: 1 = right IAN, 2 = left IAN (napari-ian's convention)"]
    native = np.asarray(native).astype(np.uint8, copy=False)
    if reference is None:
        return Volume(data=np.ascontiguousarray(own.to_canonical(native)), geometry=own), report
    labels = onto_geometry(native, own.native_affine, reference.geometry)
    kept, total = int(np.count_nonzero(labels)), int(np.count_nonzero(native))
    report.append(f"resampled onto the reference grid {' x '.join(map(str, labels.shape))} (nearest neighbour): "
                  f"{kept} labelled voxels ({total} on the file's own grid)")
    if total and not kept:
        raise VolumeReadError(path, "none of its labels lies inside the reference image (another patient or scan?)")
    return Volume(data=labels, geometry=reference.geometry), report


def write_labels(path, canonical: np.ndarray, geometry, algorithm: dict | None = None) -> Path:
    """Write labels on ``geometry``'s grid in the format the name asks for (atomic).

    ``.dcm`` writes a DICOM SEG, which carries the source's patient identifiers: only when the
    user chose it, after telling them (see :data:`~.dicom_seg.IDENTIFIERS_NOTE`). ``algorithm``
    (model name and version) is recorded in a DICOM SEG; None means manual labels.
    """
    try:
        kind = label_format(path)
    except ValueError as exc:
        raise VolumeWriteError(path, str(exc).split(": ", 1)[-1]) from None
    if kind == "nifti":
        dtype = np.uint8 if np.asarray(canonical).max(initial=0) < 256 else np.uint16
        return write_nifti(path, canonical, geometry, dtype=dtype, description="napari-ian IAN labels 1=R 2=L")
    if kind == "nrrd":
        return write_seg_nrrd(path, canonical, geometry)
    return write_dicom_seg(path, canonical, geometry, algorithm=algorithm)
