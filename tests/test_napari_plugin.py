"""The plugin in a real, shown napari viewer (Xvfb through pytest-xvfb)."""
from __future__ import annotations

import os
import subprocess
import sys

import nibabel as nib
import nibabel.testing
import numpy as np
import pytest

from napari_ian.sample_data.dataset import phantom_geometry
from napari_ian.trainer.dicom_write import write_dicom_series
from napari_ian.trainer.io import read_volume

pytestmark = pytest.mark.gui
ANATOMICAL = os.path.join(nibabel.testing.data_path, "anatomical.nii")


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer(show=True)


def _error_messages():
    from napari.utils.notifications import notification_manager

    return [n.message for n in notification_manager.records if n.severity == "error"]


def test_manifest_validates_and_plugin_is_in_plugins_menu(viewer):
    from npe2 import PluginManager

    pm = PluginManager.instance()
    manifest = pm.get_manifest("napari-ian")
    manifest.validate_imports()
    assert {c.key for c in manifest.contributions.sample_data} == {"phantom"}
    titles = []

    def walk(menu):
        for action in menu.actions():
            titles.append(action.text())
            if action.menu() is not None:
                walk(action.menu())

    walk(viewer.window.plugins_menu)
    assert any("napari-ian" in t or t in ("Case", "Phantom") for t in titles), titles


def test_open_sample_gives_image_and_ground_truth_in_mm(viewer, monkeypatch):
    from napari_ian import _sample_data

    def generate(seed):
        raise AssertionError("File > Open Sample generated the phantom (seconds of frozen GUI)")

    # the sample is read from the shipped file; its time is in BENCHMARKS (docs/plain_napari.py)
    monkeypatch.setattr(_sample_data, "_phantom", generate)
    layers = viewer.open_sample("napari-ian", "phantom")
    image, labels = layers
    assert viewer.dims.axis_labels == ("AP", "SI", "RL")        # anatomical axes, not -3 -2 -1
    assert all(str(u) == "millimeter" for layer in layers for u in layer.units)
    assert image._type_string == "image" and labels._type_string == "labels"
    geom = phantom_geometry(image.data.shape, image.scale)
    np.testing.assert_allclose(image.scale, geom.spacing)
    np.testing.assert_allclose(labels.scale, image.scale)
    assert 0.7 < image.scale[0] < 0.9 and 1.4 < image.scale[1] < 1.8 and 0.38 < image.scale[2] < 0.48
    assert set(np.unique(labels.data)) == {0, 1, 2}
    # the nerve is visible on a coronal slice: go to one through the right nerve and look
    ap = int(np.median(np.argwhere(labels.data == 1)[:, 0]))
    viewer.dims.current_step = (ap, 0, 0)
    labels.visible = False
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot[..., :3].max() > 200          # the bright nerve saturates the gray map
    assert (shot[..., :3].mean(axis=-1) > 20).mean() > 0.2   # an MR picture, not a blank canvas


@pytest.mark.slow
def test_the_shipped_sample_is_the_generators_patient(phantom_cache):
    """The pre-generated sample equals make_phantom(0) exactly (after a generator change: make sample-data)."""
    from napari_ian._sample_data import SAMPLE_FILE, SAMPLE_SEED, read_sample_file

    image, labels, geom, seed = read_sample_file(SAMPLE_FILE)
    g_image, g_labels, g_spacing, _ = phantom_cache(SAMPLE_SEED)
    stale = "the shipped sample no longer matches the phantom generator: run `make sample-data`"
    assert seed == SAMPLE_SEED
    assert image.dtype == g_image.dtype and np.array_equal(image, g_image), stale
    assert np.array_equal(labels, g_labels), stale
    want = phantom_geometry(g_image.shape, g_spacing, case_key=f"phantom-seed-{SAMPLE_SEED}")
    assert geom.to_dict() == want.to_dict(), stale


def _write_small_series(folder, spacing=(0.8, 1.6, 0.43)):
    rng = np.random.default_rng(1)
    vol = rng.integers(0, 4000, size=(12, 9, 14)).astype(np.float32) * np.float32(2.0 ** -12)
    geom = phantom_geometry(vol.shape, spacing)
    write_dicom_series(folder, vol, geom.canonical_affine, slope=2.0 ** -12, patient_id="TEST",
                       series_description="small test series")
    return vol, geom


def test_open_dicom_folder_through_the_reader_contribution(viewer, tmp_path):
    vol, geom = _write_small_series(tmp_path / "series")
    layers = viewer.open(str(tmp_path / "series"), plugin="napari-ian")
    assert len(layers) == 1
    layer = layers[0]
    np.testing.assert_array_equal(layer.data, vol)
    np.testing.assert_allclose(layer.scale, geom.spacing, rtol=1e-5)
    assert viewer.dims.axis_labels == ("AP", "SI", "RL") and [str(u) for u in layer.units] == ["millimeter"] * 3


def test_bad_folder_gives_one_line_notification_and_no_layer(viewer, tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError):  # napari's own "returned no data" after our notification
        viewer.open(str(tmp_path), plugin="napari-ian")
    assert len(viewer.layers) == 0
    msgs = [m for m in _error_messages() if str(tmp_path) in m]
    assert msgs and "no DICOM" in msgs[-1] and "\n" not in msgs[-1]


def test_mr700_is_refused_with_a_notification(viewer):
    import pydicom.data

    mr700 = os.path.dirname(pydicom.data.get_testdata_file("dicomdirtests/98892003/MR700/4467"))
    with pytest.raises(ValueError):
        viewer.open(mr700, plugin="napari-ian")
    assert len(viewer.layers) == 0
    assert any("not parallel" in m and mr700 in m for m in _error_messages())


def test_new_labels_paint_and_save_on_the_source_grid(viewer, tmp_path):
    from gui_actions import dock

    [image] = viewer.open(ANATOMICAL, plugin="napari-ian")
    widget = dock(viewer, "Case")
    assert widget.image_combo.currentText() == image.name
    labels = widget.new_labels()
    assert labels.data.shape == image.data.shape
    np.testing.assert_allclose(labels.scale, image.scale)
    labels.data[20, 12, 5] = 1      # patient's right
    labels.data[20, 12, 28] = 2     # patient's left
    out = tmp_path / "ian_labels.nii.gz"
    from napari_ian._writer import write_labels

    write_labels(str(out), labels.data, {"metadata": labels.metadata})
    src, saved = nib.load(ANATOMICAL), nib.load(str(out))
    assert np.array_equal(saved.affine, src.affine)
    assert saved.shape == src.shape
    # the painted voxels sit at the same world positions as the canonical indices say
    canon_aff = read_volume(ANATOMICAL).geometry.canonical_affine
    for idx, value in (((20, 12, 5), 1), ((20, 12, 28), 2)):
        world = canon_aff @ [*idx, 1]
        native = np.round(np.linalg.inv(saved.affine) @ world).astype(int)[:3]
        assert np.asarray(saved.dataobj)[tuple(native)] == value
    # patient's right is world x < the left one's (RAS+)
    assert (canon_aff @ [20, 12, 5, 1])[0] > (canon_aff @ [20, 12, 28, 1])[0]


def test_writer_refuses_labels_without_geometry(tmp_path):
    from napari_ian._writer import write_labels
    from napari_ian.trainer.errors import VolumeWriteError

    with pytest.raises(VolumeWriteError, match="no source-image geometry"):
        write_labels(str(tmp_path / "x.nii.gz"), np.zeros((4, 4, 4), np.uint8), {"metadata": {}})
    assert not list(tmp_path.iterdir())


def test_phantom_widget_makes_a_patient_off_the_gui_thread(viewer, qtbot):
    from qtpy.QtCore import Qt

    from gui_actions import dock

    widget = dock(viewer, "Phantom")
    widget.seed.setValue(3)
    qtbot.mouseClick(widget.go, Qt.LeftButton)
    assert not widget.go.isEnabled()            # the button waits while the worker runs
    qtbot.waitUntil(lambda: len(viewer.layers) == 2, timeout=90_000)
    assert viewer.layers[0].name == "phantom 3"
    assert set(np.unique(viewer.layers[1].data)) == {0, 1, 2}
    qtbot.waitUntil(lambda: widget.go.isEnabled(), timeout=10_000)


@pytest.mark.slow
def test_launcher_fills_the_screen_with_three_views_fitted_to_the_volume_on_the_nerve(tmp_path):
    """`python -m napari_ian` (make run): panels docked, the phantom open, three views on the nerve."""
    import json
    import shutil

    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is needed to make a screen of a given size")
    out, report = tmp_path / "shot.png", tmp_path / "views.json"
    env = dict(os.environ, NAPARI_CONFIG=str(tmp_path / "napari_settings.yaml"), NAPARI_IAN_HOME=str(tmp_path))
    r = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, "-m", "napari_ian",
                        "--screenshot", str(out), "--report", str(report)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    from skimage.io import imread

    assert imread(out).shape[:2] == (1000, 1600)                      # the window fills the screen
    views = json.loads(report.read_text())
    assert views["window"] == views["screen"] == [1600, 1000]
    assert set(views["views"]) == {"main", "right", "bottom"}         # coronal, and two side views
    assert len({tuple(v["axes"]) for v in views["views"].values()}) == 3
    for name, v in views["views"].items():
        canvas, volume = np.asarray(v["canvas"]), np.asarray(v["volume_px"])
        assert min(canvas) > 150, (name, v)                           # none collapsed
        assert np.all(volume <= canvas + 2), (name, v)                # the whole volume is in view ...
        assert np.max(volume / canvas) > 0.8, (name, v)               # ... and fills the view
    assert views["point_label"] == 1 and views["point_voxel"] == views["nerve_voxel"]   # crosshair on the nerve


def test_trainer_never_imports_napari_or_qt():
    code = ("import sys, napari_ian.trainer, napari_ian.trainer.cli, napari_ian.sample_data.dataset;"
            "bad=[m for m in sys.modules if m.split('.')[0] in ('napari','qtpy','PyQt5','PyQt6','PySide2','PySide6','magicgui')];"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
