"""The Interactive panel in plain napari: real clicks on the canvas give the nerve in the chosen labels
layer, one undo step per click, hand edits and the other nerve untouched."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def _click(viewer, layer, vox):
    """A real left click on the canvas at voxel (ap, si, rl) of ``layer`` (the coronal slice moved there)."""
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    from gui_actions import canvas_point

    step = list(viewer.dims.current_step)
    step[0] = int(round(vox[0]))
    viewer.dims.current_step = tuple(step)
    QTest.qWait(50)
    canvas = viewer.window._qt_viewer.canvas.native
    QTest.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, canvas_point(viewer, layer, vox[1], vox[2]))
    QTest.qWait(50)


def test_clicks_give_the_nerve_one_undo_step_each_and_leave_hand_edits(make_napari_viewer, qtbot, tmp_path,
                                                                        monkeypatch):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from gui_actions import dock
    from test_interactive import SP, _curved_nerve

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    img, truth, pts = _curved_nerve()
    viewer = make_napari_viewer(show=True)
    image = viewer.add_image(img, name="mr", scale=SP)
    labels = viewer.add_labels(np.zeros(img.shape, np.uint8), name="IAN labels", scale=SP)
    labels.data[5, 35:37, 50:52] = 2               # a hand edit far from the nerve (the other side)
    hand = np.asarray(labels.data).copy()
    viewer.reset_view()
    w = dock(viewer, "Interactive")
    w.image_combo.setCurrentText("mr")
    w.labels_combo.setCurrentText("IAN labels")
    w.start()
    qtbot.waitUntil(lambda: w.points is not None, timeout=120_000)
    assert w.points.mode == "add"
    history = []
    for p in (pts[0], pts[40], pts[-1]):
        _click(viewer, image, p)
        qtbot.waitUntil(lambda: len(w.clicks()) == len(history) + 1, timeout=5_000)
        qtbot.waitUntil(lambda: w.worker is None and not w._timer.isActive(), timeout=30_000)
        history.append(np.asarray(labels.data).copy())
    assert [k for _, k in w.clicks()] == [1, 1, 1] and w.clicks_list.count() == 3
    got = np.asarray(labels.data) == 1
    ref = truth == 1
    # the whole course between the end clicks is labelled, and nothing away from the nerve (the
    # outline's width is the model's; BENCHMARKS measures it on phantoms)
    from scipy import ndimage
    from scipy.spatial import cKDTree
    d, _ = cKDTree(np.argwhere(got) * np.asarray(SP)).query(pts * np.asarray(SP))
    assert (d <= 1.5).mean() > 0.95
    assert (got & ndimage.binary_dilation(ref, iterations=2)).sum() > 0.95 * got.sum()
    # the hand edit (the other side) is untouched
    assert np.array_equal(np.asarray(labels.data) == 2, hand == 2)
    # each click that changed the labels was one undo step (a click that adds nothing, e.g. on a
    # nerve the model's piece already gives whole, adds none)
    before_last_change = next(history[i - 1] for i in range(len(history) - 1, 0, -1)
                              if not np.array_equal(history[i], history[i - 1]))
    labels.undo()
    np.testing.assert_array_equal(np.asarray(labels.data), before_last_change)
    labels.redo()
    np.testing.assert_array_equal(np.asarray(labels.data), history[-1])
    # a "not nerve" click (Shift+3 in the panel) on the nerve's middle removes the nerve there
    w.mark_negative()
    _click(viewer, image, pts[80])
    qtbot.waitUntil(lambda: len(w.clicks()) == 4, timeout=5_000)
    qtbot.waitUntil(lambda: w.worker is None and not w._timer.isActive(), timeout=30_000)
    near = np.argwhere(np.asarray(labels.data) == 1)
    assert np.linalg.norm((near - pts[80]) * np.asarray(SP), axis=1).min() > 2.0
    # deleting that click from the panel's list brings the nerve back there
    w.clicks_list.setCurrentRow(3)
    w.delete_btn.click()
    qtbot.waitUntil(lambda: w.worker is None and not w._timer.isActive() and len(w.clicks()) == 3, timeout=30_000)
    qtbot.wait(300)
    qtbot.waitUntil(lambda: w.worker is None, timeout=30_000)
    near = np.argwhere(np.asarray(labels.data) == 1)
    assert np.linalg.norm((near - pts[80]) * np.asarray(SP), axis=1).min() < 1.0
    assert "found no nerve" not in w.status.text()
    # one left click where there is no nerve: only its spot, and the status says what to do
    w.mark_left()
    _click(viewer, image, (40, 10, 50))
    qtbot.waitUntil(lambda: len(w.clicks()) == 4, timeout=5_000)
    qtbot.waitUntil(lambda: w.worker is None and not w._timer.isActive(), timeout=30_000)
    assert "The left nerve's one click found no nerve near it" in w.status.text()
    assert "add a left click further along the nerve" in w.status.text() and "right nerve's" not in w.status.text()


def test_the_fast_box_ticked_by_default_and_unticked_by_a_click_gives_training_size_patches(
        make_napari_viewer, qtbot, tmp_path, monkeypatch, tile_spy):
    """Ticked to begin with (as ``ian interactive``'s default), the box makes Start compute the
    probability in large tiles; unticked with a real click, in training-size patches."""
    import sys
    from pathlib import Path

    from qtpy.QtCore import QPoint, Qt

    sys.path.insert(0, str(Path(__file__).parent))
    from gui_actions import dock
    from test_interactive import SP, _curved_nerve

    from napari_ian.trainer.pipeline import FAST_TILE

    tiles = tile_spy
    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    img, _, _ = _curved_nerve()
    viewer = make_napari_viewer(show=True)
    viewer.add_image(img, name="mr", scale=SP)
    viewer.add_labels(np.zeros(img.shape, np.uint8), name="IAN labels", scale=SP)
    w = dock(viewer, "Interactive")
    w.image_combo.setCurrentText("mr")
    w.labels_combo.setCurrentText("IAN labels")
    assert w.fast_check.isChecked()
    w.start()
    qtbot.waitUntil(lambda: w.points is not None and w.worker is None, timeout=120_000)
    assert tiles == [FAST_TILE]
    qtbot.mouseClick(w.fast_check, Qt.LeftButton, pos=QPoint(8, w.fast_check.height() // 2))
    assert not w.fast_check.isChecked()
    first = w.session_
    w.start()
    qtbot.waitUntil(lambda: w.session_ is not first and w.worker is None, timeout=120_000)
    assert tiles == [FAST_TILE, None]
    assert w.session_.prob is not None and w.session_.prob.shape == img.shape
