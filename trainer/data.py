"""Datasets: cases (image + labels + patient id) and the per-side coronal slices built from them.

A dataset is a folder with ``cases.csv`` (columns ``case_id, patient_id, image, labels``, paths
relative to the folder; ``ian phantom`` writes one) or the nnU-Net raw layout
``imagesTr/<case>_0000.nii.gz`` + ``labelsTr/<case>.nii.gz`` (then each case is its own patient,
unless a ``cases.csv`` says otherwise).
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

from .errors import VolumeReadError
from .io import read_volume
from .normalise import normalise
from .preprocess import find_midline, prepare_slices, split_sides
from .progress import PREPARE, report


@dataclasses.dataclass(frozen=True)
class Case:
    case_id: str
    patient_id: str
    image: Path
    labels: Path


def read_cases(root) -> list[Case]:
    """The cases of a dataset folder (``cases.csv`` or nnU-Net ``imagesTr``/``labelsTr``)."""
    root = Path(root)
    table = root / "cases.csv"
    if table.exists():
        with open(table, newline="") as fh:
            rows = list(csv.DictReader(fh))
        missing = {"case_id", "image", "labels"} - set(rows[0] if rows else {})
        if missing:
            raise VolumeReadError(table, f"cases table lacks column(s) {', '.join(sorted(missing))}")
        return [Case(r["case_id"], r.get("patient_id") or r["case_id"], root / r["image"], root / r["labels"])
                for r in rows]
    images = sorted((root / "imagesTr").glob("*_0000.nii*"))
    if not images:
        raise VolumeReadError(root, "no cases.csv and no imagesTr/*_0000.nii.gz: not a dataset folder")
    cases = []
    for img in images:
        cid = img.name.split("_0000.nii")[0]
        lab = next(iter(sorted((root / "labelsTr").glob(f"{cid}.nii*"))), None)
        if lab is None:
            raise VolumeReadError(img, f"no labels for case {cid} in labelsTr/")
        cases.append(Case(cid, cid, img, lab))
    return cases


def load_case(case: Case):
    """Image volume and its label array (canonical); the labels must lie on the image's grid."""
    image = read_volume(case.image)
    labels = read_volume(case.labels)
    if labels.data.shape != image.data.shape:
        raise VolumeReadError(case.labels, f"labels shape {labels.data.shape} differs from the image's "
                                           f"{image.data.shape}")
    if not np.allclose(labels.geometry.canonical_affine, image.geometry.canonical_affine, atol=1e-3):
        raise VolumeReadError(case.labels, "labels geometry (affine) differs from the image's")
    values = np.unique(labels.data)
    if not set(values.tolist()) <= {0, 1, 2}:
        raise VolumeReadError(case.labels, f"label values {values.tolist()} (expected 0, 1 = right, 2 = left)")
    return image, labels.data.astype(np.uint8)


@dataclasses.dataclass
class SideSlices:
    """Preprocessed coronal slices of one side of one case."""

    case_id: str
    patient_id: str
    side: int
    x: np.ndarray     # (N, k, H, W) float16
    y: np.ndarray     # (N, H, W) uint8, 0/1
    positive: np.ndarray  # (N,) bool: slice holds nerve in the reference


def side_slices(image: np.ndarray, labels: np.ndarray, out_shape, k: int, case_id="", patient_id=""):
    """Both sides of a case as preprocessed slices (left mirrored to the right orientation), after
    the same robust normalisation as prediction (:mod:`.normalise`)."""
    image = normalise(image)
    mid = find_midline(image)
    halves = split_sides(image, mid)
    lab_halves = split_sides(labels, mid)
    out = []
    for side in (1, 2):
        x, y, _ = prepare_slices(halves[side], out_shape, k, mask=(lab_halves[side] == side))
        out.append(SideSlices(case_id, patient_id, side, x.astype(np.float16), y,
                              (lab_halves[side] == side).any(axis=(1, 2))))
    return out


def build_slices(cases, out_shape, k: int, progress=None) -> list[SideSlices]:
    """Load and preprocess many cases (a ``prepare`` event after each, :mod:`.progress`)."""
    out = []
    for i, case in enumerate(cases):
        image, labels = load_case(case)
        out += side_slices(image.data, labels, out_shape, k, case.case_id, case.patient_id)
        report(progress, PREPARE, i + 1, len(cases), message=case.case_id)
    return out


def patient_split(patient_ids, fractions=(0.7, 0.15, 0.15), seed: int = 0):
    """Split unique patient ids into train/val/test lists (each at least one patient)."""
    ids = sorted(set(patient_ids))
    if len(ids) < 3:
        raise ValueError(f"{len(ids)} patient(s): a patient-level train/validation/test split needs at least 3")
    rng = np.random.default_rng(seed)
    perm = [ids[i] for i in rng.permutation(len(ids))]
    n_val = max(1, int(round(fractions[1] * len(ids))))
    n_test = max(1, int(round(fractions[2] * len(ids))))
    n_train = len(ids) - n_val - n_test
    if n_train < 1:
        raise ValueError(f"{len(ids)} patients are too few for fractions {fractions}")
    return perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]
