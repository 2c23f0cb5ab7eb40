"""The plugin's share of "nothing lost, nothing silent": non-finite images, saves over the source image.

A real, shown viewer; files opened through napari's own File > Open path (``viewer.open`` with
the plugin) and panels docked as users get them.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from napari_ian.sample_data.dataset import phantom_geometry
from napari_ian.trainer.io_nifti import write_nifti

pytestmark = pytest.mark.gui


def _notes(severity):
    from napari.utils.notifications import notification_manager

    return [n.message for n in notification_manager.records if n.severity == severity]


@pytest.fixture
def nan_image(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 100, (40, 24, 30)).astype(np.float32)
    image[0, 0, 0] = np.nan
    path = tmp_path / "nan-mr.nii.gz"
    write_nifti(path, image, phantom_geometry(image.shape, (0.8, 0.8, 0.8)), dtype=np.float32)
    return path


def test_a_non_finite_image_gives_one_notification_when_opened_and_when_predicted(make_napari_viewer, nan_image,
                                                                                  qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path / "home"))
    viewer = make_napari_viewer(show=True)
    warned = len(_notes("warning"))
    layer = viewer.open(str(nan_image), plugin="napari-ian")[0]
    said = [m for m in _notes("warning")[warned:] if "non-finite" in m]
    assert said == [f"napari-ian: {nan_image}: 1 non-finite voxels (NaN/Inf) ignored"]
    assert np.isfinite(layer.contrast_limits).all()
    _, panel = viewer.window.add_plugin_dock_widget("napari-ian", "Predict")
    panel.image_combo.setCurrentText(layer.name)
    panel.device_combo.setCurrentText("cpu")
    warned = len(_notes("warning"))
    panel.run_btn.click()
    qtbot.waitUntil(lambda: any(ly.name.endswith("prediction") for ly in viewer.layers), timeout=120_000)
    said = [m for m in _notes("warning")[warned:] if "non-finite" in m]
    assert said == [f"napari-ian: {layer.name}: 1 non-finite voxels (NaN/Inf) ignored"]


def test_labels_are_never_saved_over_their_own_image(make_napari_viewer, tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path / "home"))
    image = np.random.default_rng(1).uniform(0, 100, (30, 20, 24)).astype(np.float32)
    path = tmp_path / "mr.nii.gz"
    write_nifti(path, image, phantom_geometry(image.shape, (0.8, 0.8, 0.8)), dtype=np.float32)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    viewer = make_napari_viewer(show=True)
    viewer.open(str(path), plugin="napari-ian")
    _, case = viewer.window.add_plugin_dock_widget("napari-ian", "Case")
    case.new_labels_btn.click()
    labels = case.target_labels()
    labels.data[5, 5, 5] = 1
    errors = len(_notes("error"))
    assert case.save_labels_to(path, labels) is None            # the save dialog pointed at the MR file
    said = _notes("error")[errors:]
    assert len(said) == 1 and "is the image these labels belong to" in said[0] and str(path) in said[0]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert case.save_labels_to(tmp_path / "labels.nii.gz", labels) == str(tmp_path / "labels.nii.gz")
