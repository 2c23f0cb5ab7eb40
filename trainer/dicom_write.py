"""Write a canonical volume as a classic single-frame DICOM MR series with correct geometry.

Used for the phantom (so the DICOM reader is exercised on files we wrote) and by anyone who
needs a DICOM copy of a NIfTI volume. Identifiers are whatever the caller passes: the phantom
passes synthetic ones, never a real patient's.
"""
from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pydicom
from nibabel import orientations as ornt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from .atomic import atomic_path
from .io_dicom import LPS_TO_RAS
from .volume import CANONICAL_AXCODES

# classic axial acquisition: rows run toward the patient's left, columns toward posterior,
# slices toward superior; in nibabel's RAS+ codes that array is ("S", "P", "L").
AXIAL_AXCODES = ("S", "P", "L")


def _ds_str(v: float) -> str:
    """A DICOM decimal string (16 characters at most) for v."""
    for prec in range(12, 0, -1):
        s = f"{v:.{prec}g}"
        if len(s) <= 16:
            return s
    return f"{v:.1e}"


def write_dicom_series(folder, canonical: np.ndarray, canonical_affine: np.ndarray, *,
                       slope: float, patient_id: str, series_description: str,
                       study_uid: str | None = None, series_uid: str | None = None,
                       frame_of_reference_uid: str | None = None, series_number: int = 1) -> list[Path]:
    """Write ``canonical`` as axial single-frame MR DICOM files (one per slice).

    Parameters
    ----------
    folder : path-like
        Created if missing; files are named ``IM0001.dcm`` ... and written atomically.
    canonical : (AP, SI, RL) ndarray
        Real-valued voxels; stored as uint16 ``round(value / slope)`` with RescaleSlope = slope.
    canonical_affine : (4, 4) ndarray
        RAS+ voxel-to-world affine of the canonical array.
    slope : float
        Stored value step (a power of two keeps values exact).
    patient_id, series_description : str
        Written as PatientID/PatientName and SeriesDescription.

    Returns
    -------
    list of Path
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    xform = ornt.ornt_transform(ornt.axcodes2ornt(CANONICAL_AXCODES), ornt.axcodes2ornt(AXIAL_AXCODES))
    native = ornt.apply_orientation(np.asarray(canonical), xform)
    aff = np.asarray(canonical_affine, dtype=float) @ ornt.inv_ornt_aff(xform, canonical.shape)
    aff_lps = LPS_TO_RAS @ aff  # the same flip converts both ways
    col_step, row_step = aff_lps[:3, 1], aff_lps[:3, 2]
    ps_row, ps_col = float(np.linalg.norm(col_step)), float(np.linalg.norm(row_step))
    iop = list(row_step / ps_col) + list(col_step / ps_row)
    q = np.clip(np.round(native / slope), 0, 65535).astype(np.uint16)
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    for_uid = frame_of_reference_uid or generate_uid()
    now = datetime.datetime(2026, 1, 1, 12, 0, 0)  # fixed: phantom files are reproducible
    slice_step = float(np.linalg.norm(aff_lps[:3, 0]))
    paths = []
    for k in range(q.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        sop_uid = generate_uid(entropy_srcs=[series_uid, str(k)])
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, sop_uid
        ds.Modality = "MR"
        ds.PatientID = patient_id
        ds.PatientName = patient_id
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = for_uid
        ds.SeriesNumber, ds.InstanceNumber = series_number, k + 1
        ds.SeriesDescription = series_description
        ds.StudyDate = ds.SeriesDate = now.strftime("%Y%m%d")
        ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
        ds.ImageOrientationPatient = [_ds_str(v) for v in iop]
        ds.ImagePositionPatient = [_ds_str(v) for v in (aff_lps @ [k, 0, 0, 1])[:3]]
        ds.PixelSpacing = [_ds_str(ps_row), _ds_str(ps_col)]
        ds.SliceThickness = _ds_str(slice_step)
        ds.SpacingBetweenSlices = _ds_str(slice_step)
        ds.Rows, ds.Columns = int(q.shape[1]), int(q.shape[2])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = _ds_str(slope), "0", "US"
        ds.PixelData = np.ascontiguousarray(q[k]).tobytes()
        path = folder / f"IM{k + 1:04d}.dcm"
        with atomic_path(path, suffix=".dcm") as tmp:
            pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
        paths.append(path)
    return paths
