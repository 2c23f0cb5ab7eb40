"""Autosave in a real viewer: edits are saved to the workspace and survive a crash."""
from __future__ import annotations


import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _case_panel(viewer, delay_ms=200):
    from gui_actions import dock

    w = dock(viewer, "Case")
    w.autosaver.delay_ms = delay_ms
    return w


def test_paint_autosaves_then_crash_and_restore_the_chosen_one(make_napari_viewer, qtbot, home):
    viewer = make_napari_viewer(show=True)
    image, truth = viewer.open_sample("napari-ian", "phantom")
    w = _case_panel(viewer)
    assert not w.restore_btn.isEnabled()
    labels = w.new_labels()
    labels.paint((40, 30, 60), 1)              # a brush stroke through the layer's own API
    qtbot.waitUntil(lambda: len(w.autosaver.saved) > 0, timeout=10_000)
    saved = w.autosaver.saved[-1]
    assert saved.exists() and str(home) in str(saved)
    assert "phantom" not in saved.name and "IAN" not in saved.name   # hashes only in file names
    painted = np.asarray(labels.data).copy()
    assert painted.any()
    # later, a prediction on the same image is edited too: it is the newest autosave
    pred = viewer.add_labels(np.zeros_like(painted), name="ian-default prediction", scale=labels.scale,
                             metadata={"ian_geometry": labels.metadata["ian_geometry"]})
    pred.paint((60, 30, 200), 2)
    qtbot.waitUntil(lambda: len(w.autosaver.saved) > 1, timeout=10_000)
    qtbot.waitUntil(lambda: w.restore_combo.count() == 2, timeout=5_000)

    # "crash": a new viewer opens the same image; nothing was saved by the user
    viewer2 = make_napari_viewer(show=True)
    viewer2.open_sample("napari-ian", "phantom")
    w2 = _case_panel(viewer2)
    assert w2.restore_btn.isEnabled() and "2 autosaves" in w2.autosave_info.text()
    offered = [w2.restore_combo.itemText(i) for i in range(w2.restore_combo.count())]
    assert offered[0].startswith("ian-default prediction (") and offered[1].startswith(f"{labels.name} (")
    w2.restore_combo.setCurrentIndex(1)                # the hand labels, not the newest autosave
    n = len(viewer2.layers)
    w2.restore_btn.click()
    assert len(viewer2.layers) == n + 1
    restored = viewer2.layers[-1]
    assert restored.name == f"{labels.name} (restored)"
    np.testing.assert_array_equal(restored.data, painted)
    np.testing.assert_allclose(restored.scale, image.scale)


def test_failed_autosave_keeps_the_previous_one(make_napari_viewer, qtbot, home, monkeypatch):
    import napari_ian._autosave as autosave_mod
    from napari_ian.trainer import atomic

    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-ian", "phantom")
    w = _case_panel(viewer)
    labels = w.new_labels()
    labels.paint((40, 30, 60), 1)
    qtbot.waitUntil(lambda: len(w.autosaver.saved) > 0, timeout=10_000)
    first = w.autosaver.saved[-1].read_bytes()
    errors = []
    monkeypatch.setattr(autosave_mod, "show_error", errors.append)

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    labels.paint((50, 30, 60), 2)
    qtbot.waitUntil(lambda: bool(errors), timeout=10_000)
    assert "No space left" in errors[0] and "previous autosave is kept" in errors[0]
    assert w.autosaver.saved[-1].read_bytes() == first
    assert not [f for f in w.autosaver.saved[-1].parent.iterdir() if f.name.startswith(".")]
