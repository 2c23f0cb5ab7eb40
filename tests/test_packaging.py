"""A regular (non-editable) install ships one top-level package and the npe2 manifest."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_maps_trainer_and_sample_data_under_napari_ian(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    [wheel] = tmp_path.glob("napari_ian-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"napari_ian"}, top          # no generic 'trainer' or 'sample_data'
    assert "napari_ian/napari.yaml" in names
    assert "napari_ian/trainer/io_dicom.py" in names
    assert "napari_ian/sample_data/phantom.py" in names
    assert "napari_ian/trainer/models/ian-default.pt" in names      # the bundled model ships
    for part in ("xml", "bin", "json"):                              # with its int8 version for OpenVINO
        assert f"napari_ian/trainer/models/ian-default.int8.{part}" in names
    assert "napari_ian/data/phantom_seed0.npz" in names              # and the pre-generated sample
    assert "napari_ian/data/rehearsal_anatomy_100000.npz" in names   # and fine-tuning's rehearsal anatomy
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "napari-ian = napari_ian:napari.yaml" in entry_points
    assert "ian = napari_ian.trainer.cli:main" in entry_points
