"""Write a phantom dataset: N patients as NIfTI and as DICOM series, plus a cases table.

Layout of ``OUT``::

    cases.csv                       one row per patient (patient_id for patient-level splits)
    imagesTr/<case>_0000.nii.gz      image (nnU-Net raw naming; RAS+ array order)
    labelsTr/<case>.nii.gz           labels 0/1/2 on the same grid
    dicom/<case>/IM0001.dcm ...      the same image as an axial DICOM MR series
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from nibabel import orientations as ornt

from ..trainer.atomic import atomic_write_text
from ..trainer.dicom_write import write_dicom_series
from ..trainer.io_nifti import write_nifti
from ..trainer.progress import PREPARE, report
from ..trainer.volume import CANONICAL_AXCODES, Geometry, canonical_affine_from_spacing
from .phantom import INTENSITY_SLOPE, make_phantom

CASES_COLUMNS = ["case_id", "patient_id", "image", "labels", "dicom", "seed", "spacing_ap_mm",
                 "spacing_si_mm", "spacing_rl_mm", "nerve_diameter_right_mm", "nerve_diameter_left_mm",
                 "anterior_loop_right_mm", "anterior_loop_left_mm", "metal_artifacts",
                 "metal_near_canal", "snr", "nerve_contrast", "ghost_strength"]


def phantom_geometry(shape, spacing, source: str = "", case_key: str = "") -> Geometry:
    """Geometry of a phantom stored as a RAS+-ordered NIfTI, centred on the world origin."""
    sp = np.asarray(spacing, dtype=float)
    centre = sp * (np.asarray(shape) - 1) / 2.0
    # canonical axes grow toward -y (posterior), -z (inferior), -x (patient's left) in RAS
    origin = np.array([centre[2], centre[0], centre[1]])
    a_c = canonical_affine_from_spacing(sp, origin)
    xform = ornt.ornt_transform(ornt.axcodes2ornt(CANONICAL_AXCODES), ornt.axcodes2ornt(("R", "A", "S")))
    native_affine = a_c @ ornt.inv_ornt_aff(xform, shape)
    native_shape = tuple(int(shape[int(i)]) for i in np.argsort(xform[:, 0]))
    return Geometry(native_affine=native_affine, native_shape=native_shape, source=source,
                    kind="phantom", series_description="napari-ian MRN phantom (synthetic)",
                    case_key=case_key, sform_code=2, qform_code=2)


def patient_seed(seed: int, index: int) -> int:
    """The phantom seed of patient ``index`` in a dataset made with ``seed``."""
    return int(seed) * 1000 + int(index)


def write_dataset(out, n_patients: int, seed: int = 0, dicom: bool = True, overwrite: bool = False,
                  progress=None) -> Path:
    """Generate ``n_patients`` phantom patients into ``out``.

    Parameters
    ----------
    out : path-like
        Output folder. If it already holds a ``cases.csv`` it is refused unless ``overwrite``.
    n_patients : int
        Number of patients (each has a right and a left nerve).
    seed : int
        Dataset seed; patient i uses phantom seed ``seed * 1000 + i``.
    dicom : bool
        Also write each image as a DICOM series.
    progress : callable, optional
        Given a ``prepare`` event after each patient (``message``: its case id;
        :mod:`napari_ian.trainer.progress`).

    Returns
    -------
    Path
        The cases table.
    """
    out = Path(out)
    table = out / "cases.csv"
    if n_patients < 1:
        raise ValueError("--patients must be at least 1")
    if table.exists() and not overwrite:
        raise FileExistsError(f"{out}: already holds a phantom dataset (cases.csv); "
                              "choose another folder or overwrite it explicitly (ian phantom --overwrite)")
    rows = []
    for i in range(n_patients):
        ps = patient_seed(seed, i)
        case = f"ianph_{ps:07d}"
        image, labels, spacing, info = make_phantom(ps)
        geom = phantom_geometry(image.shape, spacing)
        img_rel, lab_rel = f"imagesTr/{case}_0000.nii.gz", f"labelsTr/{case}.nii.gz"
        write_nifti(out / img_rel, image, geom, dtype=np.float32, description="napari-ian phantom")
        write_nifti(out / lab_rel, labels, geom, dtype=np.uint8, description="IAN labels 1=R 2=L")
        dcm_rel = ""
        if dicom:
            dcm_rel = f"dicom/{case}"
            write_dicom_series(out / dcm_rel, image, geom.canonical_affine, slope=INTENSITY_SLOPE,
                               patient_id=case, series_description="napari-ian MRN phantom (synthetic)")
        row = {"case_id": case, "patient_id": case, "image": img_rel, "labels": lab_rel,
               "dicom": dcm_rel}
        row.update({k: v for k, v in info.items() if not k.startswith("centerline")})
        rows.append(row)
        report(progress, PREPARE, i + 1, n_patients, message=case)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CASES_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(table, buf.getvalue())
    return table
