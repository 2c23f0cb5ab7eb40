"""The synthetic MRN jaw phantom: determinism, labels, anatomy of the nerves, and the dataset writer."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy import ndimage

from napari_ian.sample_data import dataset as dataset_mod
from napari_ian.sample_data.dataset import CASES_COLUMNS, phantom_geometry, write_dataset
from napari_ian.sample_data.phantom import INTENSITY_SLOPE, make_phantom
from napari_ian.trainer.io import read_volume

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SIDES = ((1, "right"), (2, "left"))


def test_same_seed_same_phantom_other_seed_differs(phantom, phantom_cache):
    image, labels, spacing, info = phantom
    image2, labels2, spacing2, info2 = make_phantom(5000)  # a fresh run, not the cached one
    assert np.array_equal(image, image2)
    assert np.array_equal(labels, labels2)
    assert spacing == spacing2
    for name in ("right", "left"):
        assert np.array_equal(info[f"centerline_{name}"], info2[f"centerline_{name}"])
    other_image, other_labels, _, _ = phantom_cache(5001)
    assert other_image.shape != image.shape or not np.array_equal(other_image, image)
    assert other_labels.shape != labels.shape or not np.array_equal(other_labels, labels)


def test_types_values_and_spacing(phantom):
    image, labels, spacing, info = phantom
    assert image.dtype == np.float32 and labels.dtype == np.uint8
    assert image.shape == labels.shape and image.ndim == 3
    assert set(np.unique(labels).tolist()) == {0, 1, 2}
    assert image.min() >= 0
    q = image / INTENSITY_SLOPE
    assert np.array_equal(q, np.rint(q))  # exact multiples of the slope
    np.testing.assert_allclose(spacing, (0.8, 1.6, 0.43), atol=0.1)
    assert (info["spacing_ap_mm"], info["spacing_si_mm"], info["spacing_rl_mm"]) == \
        tuple(round(s, 3) for s in spacing)


def test_right_nerve_on_patient_right_left_on_left(phantom):
    image, labels, spacing, _info = phantom
    i1 = np.argwhere(labels == 1)[:, 2]
    i2 = np.argwhere(labels == 2)[:, 2]
    mid = labels.shape[2] / 2
    assert i1.max() < mid < i2.min()  # axis 2 runs patient right -> left
    # the same in world coordinates: RAS x grows toward the patient's right
    aff = phantom_geometry(image.shape, spacing).canonical_affine
    x1 = (aff @ np.c_[np.argwhere(labels == 1), np.ones(i1.size)].T)[0]
    x2 = (aff @ np.c_[np.argwhere(labels == 2), np.ones(i2.size)].T)[0]
    assert x1.min() > 0 > x2.max()


@pytest.mark.parametrize("value,name", SIDES)
def test_each_nerve_is_one_tube_from_cranial_base_to_mental_foramen(phantom, value, name):
    _image, labels, spacing, info = phantom
    mask = labels == value
    _, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    assert n == 1, f"{name} nerve label has {n} 26-connected components"
    idx = np.argwhere(mask)
    # cranial base: the label starts where the nerve leaves the skull base (within a slice), with
    # the skull base and the brain above it inside the field of view
    assert abs(idx[:, 1].min() - info["skull_base_index"]) <= 1.5
    assert info["skull_base_index"] * spacing[1] > 5.0
    top = idx[idx[:, 1] == idx[:, 1].min()]
    front = idx[idx[:, 0] == idx[:, 0].min()]
    # mental foramen: the most anterior point is far in front of where it leaves the skull ...
    assert (top[:, 0].mean() - front[:, 0].mean()) * spacing[0] > 40.0
    # ... and low in the volume, in the body of the mandible
    assert front[:, 1].mean() > 0.6 * labels.shape[1]
    # nothing at the very front edge (chin soft tissue)
    assert idx[:, 0].min() * spacing[0] > 8.0


@pytest.mark.parametrize("value,name", SIDES)
def test_nerve_diameter_two_to_three_mm(phantom, value, name):
    _image, labels, spacing, info = phantom
    d = info[f"nerve_diameter_{name}_mm"]
    assert 2.0 <= d <= 3.0
    mask = labels == value
    cl = info[f"centerline_{name}"]
    tang = np.gradient(cl * np.asarray(spacing), axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)
    along_ap = np.abs(tang[:, 0]) > 0.9  # where the nerve runs anterior-posterior
    slices = np.unique(np.rint(cl[along_ap, 0]).astype(int))
    assert slices.size >= 15
    eq_diam, extent_rl = [], []
    for k in slices:
        sl = mask[k]
        if not sl.any():
            continue
        eq_diam.append(np.sqrt(4 * sl.sum() * spacing[1] * spacing[2] / np.pi))
        cols = np.flatnonzero(sl.any(axis=0))
        extent_rl.append((cols.max() - cols.min() + 1) * spacing[2])
    assert len(eq_diam) >= 0.9 * slices.size  # the label is present on those coronal slices
    # conservative label: never wider than the nerve, but clearly a nerve-sized disc
    assert max(eq_diam) <= d + 0.2
    assert max(eq_diam) >= d - 1.2
    assert d - 1.0 <= max(extent_rl) <= d + spacing[2]
    assert np.median(eq_diam) >= 0.4 * d


@pytest.mark.parametrize("value,name", SIDES)
def test_nerve_is_bright(phantom, value, name):
    image, labels, spacing, _info = phantom
    mask = labels == value
    nerve = np.median(image[mask])
    assert nerve > 3 * np.median(image)
    # bone and soft tissue around it: a shell 3-5 mm from this nerve, >= 3 mm from any label
    to_this = ndimage.distance_transform_edt(~mask, sampling=spacing)
    to_any = ndimage.distance_transform_edt(labels == 0, sampling=spacing)
    shell = (to_this >= 3.0) & (to_this <= 5.0) & (to_any >= 3.0)
    assert shell.sum() > 1000
    assert nerve > np.percentile(image[shell], 95)


# -- the dataset writer -------------------------------------------------------------------------
def test_write_dataset_two_patients(tmp_path, phantom_cache, monkeypatch):
    monkeypatch.setattr(dataset_mod, "make_phantom", phantom_cache)  # reuse the session's phantoms
    out = tmp_path / "ds"
    table = write_dataset(out, 2, seed=5, dicom=True)
    assert table == out / "cases.csv"
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2
    assert list(rows[0].keys()) == CASES_COLUMNS
    assert [r["patient_id"] for r in rows] == ["ianph_0005000", "ianph_0005001"]
    assert len({r["patient_id"] for r in rows}) == 2
    for row, seed in zip(rows, (5000, 5001)):
        image, labels, spacing, info = phantom_cache(seed)
        assert int(row["seed"]) == seed
        assert float(row["nerve_diameter_right_mm"]) == info["nerve_diameter_right_mm"]
        img = read_volume(out / row["image"])
        lab = read_volume(out / row["labels"])
        assert np.array_equal(img.data, image)
        assert img.data.dtype == np.float32
        assert np.array_equal(lab.data, labels)
        np.testing.assert_allclose(img.spacing, spacing, rtol=1e-6)
        assert np.array_equal(img.geometry.native_affine, lab.geometry.native_affine)
        assert img.geometry.native_axcodes == ("R", "A", "S")
        dcm = read_volume(out / row["dicom"])
        assert np.array_equal(dcm.data, img.data)
        np.testing.assert_allclose(dcm.spacing, img.spacing, atol=1e-4)
        np.testing.assert_allclose(dcm.geometry.canonical_affine, img.geometry.canonical_affine, atol=1e-3)

    before = table.read_bytes()
    with pytest.raises(FileExistsError) as ei:
        write_dataset(out, 2, seed=5, dicom=True)
    assert str(out) in str(ei.value) and "\n" not in str(ei.value)
    assert table.read_bytes() == before

    table2 = write_dataset(out, 1, seed=5, dicom=False, overwrite=True)
    with open(table2, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["patient_id"] for r in rows] == ["ianph_0005000"] and rows[0]["dicom"] == ""


def test_write_dataset_refuses_zero_patients(tmp_path):
    with pytest.raises(ValueError):
        write_dataset(tmp_path / "none", 0)
    assert not (tmp_path / "none" / "cases.csv").exists()


def test_thinnest_nerve_stays_connected_on_the_coarse_si_grid():
    """2 mm nerves (the thinnest drawn) on a 1.6-1.7 mm SI grid: still one 26-connected tube each."""
    _image, labels, spacing, info = make_phantom(5000, nerve_radius=(1.0, 1.0), metal=[])
    assert spacing[1] > 1.5 and info["nerve_diameter_right_mm"] == 2.0
    for value, name in SIDES:
        _, n = ndimage.label(labels == value, structure=np.ones((3, 3, 3)))
        assert n == 1, f"{name} nerve label has {n} 26-connected components"
