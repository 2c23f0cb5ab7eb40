"""Non-finite voxels: counted by the readers, said once by every command, ignored by the measurements."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from napari_ian.sample_data.dataset import phantom_geometry
from napari_ian.trainer.cli import main
from napari_ian.trainer.io_nifti import write_nifti
from napari_ian.trainer.review import measurements_by_region, nerve_measurements


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory, phantom):
    """The phantom as NIfTI, clean and with one NaN voxel in a corner."""
    image, labels, spacing, _ = phantom
    g = phantom_geometry(image.shape, spacing)
    root = tmp_path_factory.mktemp("nonfinite")
    clean, dirty = root / "clean.nii.gz", root / "nan.nii.gz"
    write_nifti(clean, image, g, dtype=np.float32)
    bad = np.array(image, dtype=np.float32, copy=True)
    bad[0, 0, 0] = np.nan
    write_nifti(dirty, bad, g, dtype=np.float32)
    return root, clean, dirty


@pytest.mark.slow
def test_predict_on_an_image_with_one_nan_voxel_says_so_once(phantom_files, capsys):
    root, clean, dirty = phantom_files
    # in a box that holds the NaN voxel's corner and the right nerve's back half (a third of the
    # network patches of the whole volume; the normalisation still reads the whole volume). In
    # patches: a large tile's instance norm also sees the corner, where the NaN voxel is read as 0,
    # and that moves a few threshold voxels far from it (NaN itself would spread over the tile)
    box = ["--roi", "0:70,:,0:160", "--patches"]
    assert main(["predict", str(clean), "--out", str(root / "clean-pred.nii.gz"), "--quiet", "--device", "cpu"]
                + box) == 0
    assert capsys.readouterr().err == ""
    assert main(["predict", str(dirty), "--out", str(root / "nan-pred.nii.gz"), "--quiet", "--device", "cpu"]
                + box) == 0
    err = capsys.readouterr().err
    assert err == f"ian: warning: {dirty}: 1 non-finite voxels (NaN/Inf) ignored\n"
    # ignored means: the labels are those of the clean image
    a = np.asarray(nib.load(root / "clean-pred.nii.gz").dataobj)
    b = np.asarray(nib.load(root / "nan-pred.nii.gz").dataobj)
    assert (a == 1).sum() > 100, "the right nerve's back half is in the box"
    assert np.array_equal(a, b), f"{int((a != b).sum())} voxels differ"


def test_review_measurements_ignore_non_finite_voxels():
    labels = np.zeros((6, 10, 12), np.uint8)
    labels[1:5, 4:6, 2:4] = 1
    image = np.full(labels.shape, 50.0, np.float32)
    image[2, 4, 2] = np.nan
    image[3, 5, 3] = np.inf
    image[4, 4:6, 2:4] = np.nan                       # a slice with no finite signal left
    rows = nerve_measurements(labels, image, (1.0, 0.5, 0.5))
    by_slice = {r["slice"]: r for r in rows}
    assert by_slice[2]["mean_signal"] == 50.0 and by_slice[3]["max_signal"] == 50.0
    assert np.isnan(by_slice[4]["mean_signal"]) and by_slice[4]["area_mm2"] == 1.0
    assert measurements_by_region(rows, None)["right"]["whole nerve"]["mean_signal"] == 50.0
