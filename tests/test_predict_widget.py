"""The Predict panel in a real, shown viewer: worker thread, progress, result layer, Cancel."""
from __future__ import annotations

import time

import numpy as np
import pytest

from napari_ian.trainer.metrics import slice_metrics

pytestmark = pytest.mark.gui


@pytest.fixture
def viewer_with_sample(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-ian", "phantom")
    return viewer


def test_predict_adds_an_editable_labels_layer_and_the_gui_stays_responsive(viewer_with_sample, qtbot, tile_spy):
    from qtpy.QtCore import Qt, QTimer

    from gui_actions import dock
    from napari_ian.trainer.pipeline import FAST_TILE

    viewer = viewer_with_sample
    image, truth = viewer.layers[0], viewer.layers[1]
    w = dock(viewer, "Predict")
    assert w.image_combo.currentText() == image.name
    assert w.model_combo.currentText() == "ian-default"
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    qtbot.mouseClick(w.run_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(viewer.layers) == 3, timeout=120_000)
    timer.stop()
    pred = viewer.layers[2]
    assert pred.name == "ian-default prediction" and pred._type_string == "labels"
    np.testing.assert_allclose(pred.scale, image.scale)
    assert pred.metadata["ian_geometry"] == image.metadata["ian_geometry"]   # saves on the source grid
    # by default in a few large tiles, as ian predict, and the status says so
    assert tile_spy == [FAST_TILE] and pred.metadata["ian_model"]["fast_tiles"] is True
    assert "fast tiles" in w.status.text()
    for side in (1, 2):
        sm = slice_metrics(np.asarray(truth.data), np.asarray(pred.data), side)
        # accuracy is measured in bench/eval_styles.py; here: the nerves, on the image's grid, not
        # an empty, shifted or flipped layer (any of those scores near 0)
        assert sm.dsc[sm.reference_positive].mean() > 0.4
    gaps = np.diff(ticks)
    # the event loop kept running: a prediction on the GUI thread would stop it for the whole
    # prediction (8-25 s); the bound leaves room for adding the layers on a busy machine
    assert len(ticks) > 10 and gaps.max() < 2.0, gaps.max()


def test_cancel_leaves_no_half_layer(viewer_with_sample, qtbot):
    from gui_actions import dock

    viewer = viewer_with_sample
    w = dock(viewer, "Predict")
    worker = w.run()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        w.cancel()
    qtbot.wait(200)
    assert len(viewer.layers) == 2
    assert w.run_btn.isEnabled()


def test_predict_refuses_2d_images_with_a_notification(make_napari_viewer, monkeypatch):
    import napari_ian._predict_widget as pw
    from gui_actions import dock

    from napari_ian._identity import layer_uid

    viewer = make_napari_viewer(show=True)
    flat = viewer.add_image(np.zeros((32, 32), np.float32), name="flat")
    errors = []
    monkeypatch.setattr(pw, "show_error", errors.append)
    w = dock(viewer, "Predict")
    assert w.image_combo.findText("flat") < 0                # 2D layers are not offered ...
    w.image_combo.addItem("flat", layer_uid(flat))            # ... so force one to check the guard itself
    w.image_combo.setCurrentText("flat")
    assert w.run() is None
    assert errors and "needs a 3D volume" in errors[0]


def test_roi_from_vertices_spans_drawn_axes_only():
    from napari_ian.trainer.predict import roi_from_vertices

    shape = (100, 60, 300)
    rect = [[40, 10, 50], [40, 10, 120], [40, 30, 120], [40, 30, 50]]     # one rectangle on coronal slice 40
    assert roi_from_vertices(rect, shape) == (slice(0, 100), slice(10, 31), slice(50, 121))
    two = rect + [[70, 12, 60], [70, 25, 90]]                               # a second slice bounds AP too
    assert roi_from_vertices(two, shape)[0] == slice(40, 71)
    assert roi_from_vertices([[40, -5, -20], [40, 80, 500]], shape)[1:] == (slice(0, 60), slice(0, 300))
    with pytest.raises(ValueError, match="no corners"):
        roi_from_vertices(np.empty((0, 3)), shape)


def test_predict_inside_a_drawn_box_only_and_again_into_a_new_layer(viewer_with_sample, qtbot):
    from qtpy.QtCore import Qt

    from gui_actions import dock

    viewer = viewer_with_sample
    truth = viewer.layers[1]
    w = dock(viewer, "Predict")
    box = w.draw_box()
    assert box.mode == "add_rectangle" and w.roi_check.isChecked()
    # a rectangle around the right nerve (label 1) on one coronal slice, as drawn with the mouse
    idx = np.argwhere(np.asarray(truth.data) == 1)
    (s0, r0), (s1, r1) = np.maximum(idx[:, 1:].min(axis=0) - 3, 0), idx[:, 1:].max(axis=0) + 3
    box.add_rectangles(np.array([[30, s0, r0], [30, s0, r1], [30, s1, r1], [30, s1, r0]], float))
    worker = w.run()
    assert "inside the box" in w.status.text()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: any(ly.name == "ian-default prediction" for ly in viewer.layers), timeout=5_000)
    pred = np.asarray(viewer.layers["ian-default prediction"].data)
    inside = np.zeros(pred.shape, bool)
    inside[:, s0:s1 + 1, r0:r1 + 1] = True
    assert not pred[~inside].any()                  # nothing outside the box (the left nerve is outside)
    assert (pred[inside] == 1).sum() > 0.5 * (np.asarray(truth.data) == 1).sum()
    # predicting again adds a new layer instead of overwriting the first one (which may be edited)
    first = viewer.layers["ian-default prediction"]
    first.data[0, 0, 0] = 2
    n = len(viewer.layers)
    qtbot.waitUntil(lambda: w.run_btn.isEnabled(), timeout=10_000)
    qtbot.mouseClick(w.run_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(viewer.layers) == n + 1, timeout=120_000)
    assert first.data[0, 0, 0] == 2 and viewer.layers[-1].name not in (first.name, "prediction box")
    assert viewer.layers[-1].name.startswith("ian-default prediction")


def test_box_ticked_but_not_drawn_is_refused(viewer_with_sample, monkeypatch):
    import napari_ian._predict_widget as pw
    from gui_actions import dock

    errors = []
    monkeypatch.setattr(pw, "show_error", errors.append)
    w = dock(viewer_with_sample, "Predict")
    w.roi_check.setChecked(True)
    assert w.run() is None and "no box is drawn" in errors[-1]
    assert len(viewer_with_sample.layers) == 2


def test_predict_without_any_model_says_so(viewer_with_sample, monkeypatch):
    import napari_ian._predict_widget as pw
    from gui_actions import dock

    errors = []
    monkeypatch.setattr(pw, "show_error", errors.append)
    w = dock(viewer_with_sample, "Predict")
    w.model_combo.clear()                            # e.g. the bundled model file was removed
    assert w.run() is None and "no model" in errors[-1]


def _failing_predict_volume(message, fail_unless_cpu=True):
    """predict_volume that dies after one batch with ``message`` (on every device but the CPU)."""
    from napari_ian.trainer import predict as real
    from napari_ian.trainer.progress import INFER, report

    original = real.predict_volume

    def predict_volume(image, model, meta, spacing, device="auto", roi=None, *args, progress=None, **kwargs):
        if fail_unless_cpu and device == "cpu":
            # the CPU's run is real, in a box around the right nerve only: the fallback is under
            # test here, not the whole volume's prediction (a third of the network patches)
            roi = roi or (slice(20, 130), slice(0, image.shape[1]), slice(40, 160))
            return original(image, model, meta, spacing, device=device, roi=roi, *args, progress=progress, **kwargs)
        report(progress, INFER, 1, 2)
        raise RuntimeError(message)

    return predict_volume


def test_out_of_memory_mid_run_falls_back_to_the_cpu_and_says_so(viewer_with_sample, qtbot, monkeypatch):
    import napari_ian._predict_widget as pw
    from gui_actions import dock
    from napari_ian.trainer import predict

    warnings = []
    monkeypatch.setattr(pw, "show_warning", warnings.append)
    import torch

    from napari_ian.trainer import device as device_mod

    monkeypatch.setattr(predict, "predict_volume", _failing_predict_volume("CUDA out of memory. Tried to allocate 2 GiB"))
    # as on a machine with a GPU: "auto" picks CUDA (the fake steps never touch it)
    monkeypatch.setattr(device_mod, "pick_device",
                        lambda device="auto": torch.device("cpu" if device == "cpu" else "cuda"))
    viewer = viewer_with_sample
    w = dock(viewer, "Predict")
    w.device_combo.setCurrentText("auto")
    worker = w.run()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: len(viewer.layers) == 3, timeout=5_000)
    assert any("CUDA ran out of memory; predicted on the CPU instead" in w for w in warnings)
    assert (np.asarray(viewer.layers[2].data) > 0).any()


def test_a_model_failing_mid_run_adds_nothing_and_says_why(viewer_with_sample, qtbot, monkeypatch):
    import napari_ian._predict_widget as pw
    from gui_actions import dock
    from napari_ian.trainer import predict

    errors = []
    monkeypatch.setattr(pw, "show_error", errors.append)
    monkeypatch.setattr(predict, "predict_volume", _failing_predict_volume("weights do not match", False))
    viewer = viewer_with_sample
    w = dock(viewer, "Predict")
    assert w.run() is not None
    qtbot.waitUntil(lambda: w.run_btn.isEnabled() and bool(errors), timeout=60_000)
    qtbot.wait(100)
    assert len(viewer.layers) == 2
    assert errors and "prediction failed: weights do not match" in errors[-1]
    assert "No layer was added" in w.status.text()


def test_fast_box_ticked_by_default_and_unticked_by_a_click_predicts_in_patches(viewer_with_sample, qtbot,
                                                                                tile_spy):
    """Ticked to begin with (large tiles, as ``ian predict``'s default: the first test's run);
    unticked with a real click, the prediction runs the training-size patches and says nothing of
    tiles."""
    from qtpy.QtCore import QPoint, Qt

    from gui_actions import dock
    from napari_ian.trainer.cli import FAST_TILES_HELP

    tiles = tile_spy
    viewer = viewer_with_sample
    truth = viewer.layers[1]
    w = dock(viewer, "Predict")
    assert w.fast_check.isChecked()
    assert w.fast_check.toolTip().startswith(FAST_TILES_HELP)     # the command line's --fast, in the same words
    # a click on the box itself (the left edge, where the indicator is drawn)
    qtbot.mouseClick(w.fast_check, Qt.LeftButton, pos=QPoint(8, w.fast_check.height() // 2))
    assert not w.fast_check.isChecked()
    qtbot.mouseClick(w.run_btn, Qt.LeftButton)
    assert "Predicting" in w.status.text() and "fast tiles" not in w.status.text()
    qtbot.waitUntil(lambda: len(viewer.layers) == 3, timeout=120_000)
    assert tiles == [None]
    pred = viewer.layers[2]
    assert pred.metadata["ian_model"]["fast_tiles"] is False and "fast tiles" not in w.status.text()
    for side in (1, 2):
        sm = slice_metrics(np.asarray(truth.data), np.asarray(pred.data), side)
        assert sm.dsc[sm.reference_positive].mean() > 0.4


def test_fast_box_follows_the_chosen_models_default_until_clicked(viewer_with_sample, qtbot, tmp_path, monkeypatch):
    """A fine-tuned model predicts in patches by default, others in large tiles: the box follows the
    chosen model (in Predict and Interactive); a person's click wins until another model is chosen,
    also over a later refresh of the list."""
    from qtpy.QtCore import QPoint, Qt

    from gui_actions import dock
    from napari_ian.trainer.modelfile import save_model
    from napari_ian.trainer.registry import user_models_dir
    from tiny_models import tiny3d

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    user_models_dir().mkdir(parents=True)
    model, meta = tiny3d()
    save_model(user_models_dir() / "tiny-ft1.pt", model, {**meta, "parent": "tiny", "finetune": {"parent": "tiny"}})
    save_model(user_models_dir() / "tiny.pt", model, meta)
    viewer = viewer_with_sample
    for panel in ("Predict", "Interactive"):
        w = dock(viewer, panel)
        qtbot.waitUntil(lambda: "tiny-ft1" in [w.model_combo.itemText(i) for i in range(w.model_combo.count())],
                        timeout=30_000)
        from napari_ian._lazy_torch import torch_ready

        qtbot.waitUntil(torch_ready, timeout=60_000)       # the models' metadata is known
        w.model_combo.setCurrentText("tiny-ft1")
        assert not w.fast_check.isChecked(), panel
        w.model_combo.setCurrentText("tiny")
        assert w.fast_check.isChecked(), panel
        qtbot.mouseClick(w.fast_check, Qt.LeftButton, pos=QPoint(8, w.fast_check.height() // 2))
        assert not w.fast_check.isChecked()
        (w.refresh_models if panel == "Predict" else w._refresh_models)()     # e.g. a model saved meanwhile
        assert not w.fast_check.isChecked(), panel                          # the click still holds
        w.model_combo.setCurrentText("ian-default")
        assert w.fast_check.isChecked(), panel


def test_a_models_first_openvino_conversion_is_said_in_the_status(viewer_with_sample, qtbot, monkeypatch, tmp_path):
    """The first prediction with a model converts it for OpenVINO (seconds, once): the panel says
    so while it happens, and its result line says what ran the network."""
    import sys
    from pathlib import Path

    import torch
    from qtpy.QtCore import Qt

    from gui_actions import dock
    from napari_ian.trainer.device import cpu_bf16_supported
    from napari_ian.trainer.modelfile import save_model
    from napari_ian.trainer.registry import user_models_dir

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tiny_models import tiny3d

    if cpu_bf16_supported():
        pytest.skip("on a CPU with native bf16 the panel keeps PyTorch's bf16 (no conversion)")
    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path / "home"))
    model, meta = tiny3d()
    with torch.no_grad():
        model.head.bias.fill_(-3.25)          # weights no other test converted
    user_models_dir().mkdir(parents=True)
    save_model(user_models_dir() / "tiny-ov.pt", model, meta)
    viewer = viewer_with_sample
    w = dock(viewer, "Predict")
    w.refresh_models()
    w.model_combo.setCurrentText("tiny-ov")
    assert w.model_combo.currentText() == "tiny-ov"
    said = []
    real = w.status.setText
    monkeypatch.setattr(w.status, "setText", lambda text: (said.append(text), real(text)))
    qtbot.mouseClick(w.run_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(viewer.layers) == 3, timeout=120_000)
    assert any(t.startswith("Converting the network for OpenVINO") for t in said), said
    assert "(cpu, OpenVINO, fast tiles)" in w.status.text()
    assert viewer.layers[2].metadata["ian_model"]["backend"] == "openvino"
