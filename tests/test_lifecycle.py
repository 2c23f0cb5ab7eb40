"""Panels leave nothing behind: closing one gives back its keys and callbacks, reopening works again.

Each viewer has one session (napari_ian._session) owning the autosaver, the brush and the panels'
key bindings and callbacks; closing the last panel (or the viewer's window) ends it.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def _counts(viewer, labels):
    """How many callbacks hang on the viewer, its layer list, its dims and a labels layer."""
    return {"drag": len(viewer.mouse_drag_callbacks), "move": len(viewer.mouse_move_callbacks),
            "inserted": len(viewer.layers.events.inserted.callbacks),
            "removed": len(viewer.layers.events.removed.callbacks),
            "step": len(viewer.dims.events.current_step.callbacks),
            "labels_drag": len(labels.mouse_drag_callbacks)}


def test_closing_panels_gives_back_keys_and_callbacks_and_reopening_works(make_napari_viewer, qtbot, tmp_path,
                                                                         monkeypatch):
    from qtpy.QtCore import Qt

    from gui_actions import close_panel, dock
    from napari_ian._session import active_session

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    viewer = make_napari_viewer(show=True)
    image, truth = viewer.open_sample("napari-ian", "phantom")
    pressed = []
    viewer.bind_key("Shift+N", lambda v: pressed.append("mine"))     # someone else's key, before ours
    baseline = _counts(viewer, truth)
    canvas = viewer.window._qt_viewer.canvas.native

    case, review = dock(viewer, "Case"), dock(viewer, "Review")
    session = active_session(viewer)
    assert session is not None and case.session is session is review.session   # one per viewer
    assert _counts(viewer, truth) != baseline
    qtbot.keyClick(canvas, Qt.Key_N, Qt.ShiftModifier)
    assert pressed == []                                               # the Review panel's key now
    qtbot.keyClick(canvas, Qt.Key_B, Qt.ShiftModifier)
    assert case.brush_box.brush_check.isChecked()

    close_panel(viewer, review)
    qtbot.keyClick(canvas, Qt.Key_N, Qt.ShiftModifier)
    assert pressed == ["mine"]                                         # the key is given back
    close_panel(viewer, case)
    qtbot.keyClick(canvas, Qt.Key_B, Qt.ShiftModifier)
    assert case.brush_box.brush_check.isChecked()                      # the closed panel's key is gone
    assert _counts(viewer, truth) == baseline                          # every callback removed
    assert not case.brush_box.reach.visible
    assert active_session(viewer) is None                              # the last panel out ends the session

    # reopened, they work again (a new session, new panels)
    case2, review2 = dock(viewer, "Case"), dock(viewer, "Review")
    assert case2 is not case and review2 is not review and active_session(viewer) is not None
    review2.ref_combo.setCurrentText(truth.name)
    pred = np.asarray(truth.data).copy()
    pred[40] = 0
    layer = viewer.add_labels(pred, name="damaged prediction", scale=truth.scale, metadata=dict(truth.metadata))
    review2.pred_combo.setCurrentText(layer.name)
    assert review2.run()
    qtbot.waitUntil(lambda: viewer.dims.current_step[0] == 40, timeout=2_000)   # the first flagged slice
    viewer.dims.set_current_step(0, 0)
    qtbot.keyClick(canvas, Qt.Key_N, Qt.ShiftModifier)
    assert viewer.dims.current_step[0] == 40 and pressed == ["mine"]
    qtbot.keyClick(canvas, Qt.Key_B, Qt.ShiftModifier)
    assert case2.brush_box.brush_check.isChecked()


def test_each_viewer_has_its_own_session_ended_with_its_window(make_napari_viewer, tmp_path, monkeypatch):
    from gui_actions import dock
    from napari_ian._session import active_session

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    a, b = make_napari_viewer(show=True), make_napari_viewer(show=True)
    case_a, case_b = dock(a, "Case"), dock(b, "Case")
    assert case_a.session is not case_b.session
    assert case_a.autosaver is not case_b.autosaver                    # one autosaver per viewer
    a.close()
    assert active_session(a) is None and active_session(b) is case_b.session


def test_a_script_that_closes_its_viewer_while_torch_still_loads_exits_cleanly(tmp_path):
    """The Predict panel loads torch in a worker; a script that docks it, closes the viewer at once
    and ends used to abort at exit (the worker emitting into deleted signals)."""
    code = """
import napari
from qtpy.QtWidgets import QApplication
viewer = napari.Viewer(show=True)
viewer.window.add_plugin_dock_widget("napari-ian", "Predict")
for _ in range(5):
    QApplication.processEvents()
viewer.close()
print("closed")
"""
    env = dict(os.environ, NAPARI_IAN_HOME=str(tmp_path), NAPARI_CONFIG=str(tmp_path / "napari.yaml"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0 and "closed" in r.stdout, r.stderr[-2000:]
    assert "has been deleted" not in r.stderr


def test_at_exit_every_run_still_going_is_asked_to_stop(qtbot):
    """What the exit handler does before it waits for the workers: cancel the runs whose worker has
    not finished (a script that ends with its viewer open never closes the panels)."""
    from napari_ian._progress_bridge import WorkerProgress, cancel_running

    going, done = WorkerProgress("a", "infer"), WorkerProgress("b", "infer")
    done.close()                         # its worker finished
    assert cancel_running() == 1
    assert going.cancelled() and not done.cancelled()


def test_docking_the_model_panels_does_not_import_torch_on_the_gui_thread(tmp_path):
    """Importing torch takes 1-2 s: the Predict and Fine-tune panels dock at once and learn the devices later."""
    code = """
import sys, time
import napari
from napari_ian.__main__ import pump
viewer = napari.Viewer(show=False)
t0 = time.perf_counter()
predict = viewer.window.add_plugin_dock_widget("napari-ian", "Predict")[1]
finetune = viewer.window.add_plugin_dock_widget("napari-ian", "Fine-tune")[1]
print("torch loaded when docked:", "torch" in sys.modules)
t0 = time.perf_counter()
while not finetune.device_note.text().startswith("Runs on: CPU") and time.perf_counter() - t0 < 120:
    pump(0.05)
print("note:", finetune.device_note.text())
print("models:", [predict.model_combo.itemText(i) for i in range(predict.model_combo.count())])
print("name:", finetune.name_edit.text())
"""
    env = dict(os.environ, NAPARI_IAN_HOME=str(tmp_path), NAPARI_CONFIG=str(tmp_path / "napari.yaml"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "torch loaded when docked: False" in r.stdout
    assert "note: Runs on: CPU" in r.stdout                            # the device probe came back
    assert "'ian-default'" in r.stdout and "name: ian-default-ft1" in r.stdout
