"""Autosave in a real viewer: edits are saved to the workspace and survive a crash."""
from __future__ import annotations

import os

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


def test_paint_autosaves_then_crash_and_restore(make_napari_viewer, qtbot, home):
    viewer = make_napari_viewer(show=True)
    image, _ = viewer.open_sample("napari-ian", "phantom")
    w = _case_panel(viewer)
    assert not w.restore_btn.isEnabled()
    labels = w.new_labels()
    labels.paint((40, 30, 60), 1)              # a brush stroke through the layer's own API
    qtbot.waitUntil(lambda: len(w.autosaver.saved) > 0, timeout=10_000)
    saved = w.autosaver.saved[-1]
    assert saved.exists() and str(home) in str(saved)
    assert "phantom" not in saved.name and "IAN" not in saved.name   # hashes only in file names
    qtbot.waitUntil(lambda: "Autosaved for this image" in w.autosave_info.text(), timeout=5_000)
    painted = np.asarray(labels.data).copy()
    assert painted.any()

    # "crash": a new viewer opens the same image; nothing was saved by the user
    viewer2 = make_napari_viewer(show=True)
    viewer2.open_sample("napari-ian", "phantom")
    w2 = _case_panel(viewer2)
    assert w2.restore_btn.isEnabled() and "Autosaved" in w2.autosave_info.text()
    restored = w2.restore_autosave()
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
