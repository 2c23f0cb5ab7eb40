"""The ``ian`` command line, called in-process (``main(argv)``) and once as the console script."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import nibabel.testing
import pytest
from pydicom.data import get_testdata_file

from napari_ian.sample_data import dataset as dataset_mod
from napari_ian.trainer.cli import main
from napari_ian.trainer.io import read_volume

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ANAT = os.path.join(nibabel.testing.data_path, "anatomical.nii")
MR700 = os.path.dirname(get_testdata_file("dicomdirtests/98892003/MR700/4467"))


def _fields(text: str) -> dict:
    """'key   value' lines of ``ian info`` into a dict."""
    out = {}
    for line in text.splitlines():
        parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return out


def _expected_anat():
    src = nib.load(ANAT)
    ras = nib.as_closest_canonical(src)
    n_r, n_a, n_s = ras.shape
    z_r, z_a, z_s = ras.header.get_zooms()[:3]
    return src, (n_a, n_s, n_r), (z_a, z_s, z_r)


def test_info_emri_small_describes_what_it_records(capsys):
    rc = main(["info", get_testdata_file("emri_small.dcm")])
    out, err = capsys.readouterr()
    assert rc == 0 and err == ""
    f = _fields(out)
    assert f["frames"] == "10"
    assert f["frame size (rows x columns)"] == "64 x 64"
    assert float(f["spacing between slices (mm)"]) == pytest.approx(1.2)
    assert "not openable as a volume" in out


def test_info_anatomical_nii(capsys):
    src, shape, spacing = _expected_anat()
    rc = main(["info", ANAT])
    out, err = capsys.readouterr()
    assert rc == 0 and err == ""
    f = _fields(out)
    assert f["shape (AP, SI, RL)"] == " x ".join(str(s) for s in shape)
    assert [float(v) for v in f["spacing_mm (AP, SI, RL)"].split(" x ")] == pytest.approx(spacing)
    assert f["source_orientation"] == "".join(nib.aff2axcodes(src.affine))
    assert f["source_shape"] == " x ".join(str(s) for s in src.shape)
    assert f["canonical_orientation"] == "PIL"
    assert f["coronal_slices"] == str(shape[0])


def test_info_mr700_one_line_error(capsys):
    rc = main(["info", MR700])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "MR700" in lines[0] and "not parallel" in lines[0]
    assert lines[0].startswith("ian: ")


def test_info_missing_path(capsys, tmp_path):
    rc = main(["info", str(tmp_path / "nothing_here")])
    out, err = capsys.readouterr()
    assert rc == 2 and len(err.splitlines()) == 1 and "nothing_here" in err


def test_phantom_writes_dataset_then_refuses_again(capsys, tmp_path, monkeypatch, phantom_cache):
    monkeypatch.setattr(dataset_mod, "make_phantom", phantom_cache)  # reuse the session's phantom
    out_dir = tmp_path / "ph"
    rc = main(["phantom", "--out", str(out_dir), "--patients", "1", "--seed", "5", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "wrote 1 phantom patient" in out
    assert (out_dir / "cases.csv").is_file()
    image, labels, _spacing, _info = phantom_cache(5000)
    img = read_volume(out_dir / "imagesTr" / "ianph_0005000_0000.nii.gz")
    assert (img.data == image).all()
    lab = read_volume(out_dir / "labelsTr" / "ianph_0005000.nii.gz")
    assert (lab.data == labels).all()
    assert len(list((out_dir / "dicom" / "ianph_0005000").glob("*.dcm"))) == image.shape[1]
    before = (out_dir / "cases.csv").read_bytes()

    rc = main(["phantom", "--out", str(out_dir), "--patients", "1", "--seed", "5", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1 and str(out_dir) in lines[0] and "overwrite" in lines[0]
    assert (out_dir / "cases.csv").read_bytes() == before


def test_console_script_runs_info():
    ian = Path(sys.executable).parent / ("ian.exe" if os.name == "nt" else "ian")
    assert ian.is_file(), f"console script not installed next to {sys.executable}"
    res = subprocess.run([str(ian), "info", ANAT], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    src, shape, _spacing = _expected_anat()
    f = _fields(res.stdout)
    assert f["shape (AP, SI, RL)"] == " x ".join(str(s) for s in shape)
    assert f["source_orientation"] == "".join(nib.aff2axcodes(src.affine))
