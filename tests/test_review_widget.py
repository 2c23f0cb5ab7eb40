"""The Review panel in a real, shown viewer: navigator, live updates, status, CSV, bad input."""
from __future__ import annotations

import csv

import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def phantom_layer_data():
    """The sample's layer data (image + ground truth), made once for this module (~6 s each time)."""
    from napari_ian._sample_data import phantom_layers

    return phantom_layers()


@pytest.fixture
def reviewed(make_napari_viewer, tmp_path, monkeypatch, phantom_layer_data, qtbot):
    """A shown viewer with the phantom, a damaged copy of its truth as the prediction, and the panel."""
    from napari.layers import Layer

    from gui_actions import dock

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path / "home"))
    viewer = make_napari_viewer(show=True)
    image, truth = [viewer.add_layer(Layer.create(np.copy(d), dict(m), t)) for d, m, t in phantom_layer_data]
    pred = np.asarray(truth.data).copy()
    gap = pred[50:53]
    gap[gap == 1] = 0                                  # complete failures on 50-52 (right)
    pred[60] = np.roll(pred[60], 4, axis=0)            # a shifted slice (right and left)
    layer = viewer.add_labels(pred, name="test prediction", scale=truth.scale, metadata=dict(truth.metadata))
    w = dock(viewer, "Review")
    w.ref_combo.setCurrentText(truth.name)
    w.pred_combo.setCurrentText(layer.name)
    w.image_combo.setCurrentText(image.name)
    assert w.run()
    qtbot.waitUntil(lambda: viewer.dims.current_step[0] == 50, timeout=2_000)   # the first flagged slice
    return viewer, w, truth, layer


def test_navigator_moves_the_views_to_flagged_slices(reviewed, qtbot):
    from qtpy.QtCore import QPoint, Qt

    viewer, w, truth, pred = reviewed
    assert list(w.flagged_slices()) == [50, 51, 52, 60]            # Review went to the first one (fixture)
    viewer.dims.set_current_step(0, 0)
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.keyClick(canvas, Qt.Key_N, Qt.ShiftModifier)             # Shift+N: next flagged
    assert viewer.dims.current_step[0] == 50
    qtbot.keyClick(canvas, Qt.Key_N, Qt.ShiftModifier)
    assert viewer.dims.current_step[0] == 51
    qtbot.keyClick(canvas, Qt.Key_P, Qt.ShiftModifier)             # Shift+P: previous
    assert viewer.dims.current_step[0] == 50
    viewer.dims.set_current_step(0, 70)
    qtbot.mouseClick(w.next_btn, Qt.LeftButton)                    # past the last one: wraps round
    assert viewer.dims.current_step[0] == 50 and "wrapped" in viewer.status
    qtbot.mouseClick(w.prev_btn, Qt.LeftButton)
    assert viewer.dims.current_step[0] == 60
    # clicking the table row of slice 60 goes there, centres on the nerve, and the other two views'
    # slices (the three views' crosshair) go through it
    viewer.dims.set_current_step(0, 0)
    row = next(i for i in range(w.table.rowCount()) if w.table.item(i, 0).text() == "60")
    rect = w.table.visualItemRect(w.table.item(row, 1))
    qtbot.mouseClick(w.table.viewport(), Qt.LeftButton, pos=rect.center())
    assert viewer.dims.current_step[0] == 60
    side = w.table.item(row, 1).text()
    lab = 1 if side == "right" else 2
    centroid = np.argwhere(np.asarray(pred.data)[60] == lab).mean(axis=0)
    cam = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    assert np.allclose(cam.center[-2:], centroid * np.asarray(pred.scale[1:]), atol=0.5)
    assert np.allclose(viewer.dims.point[1:], centroid * np.asarray(pred.scale[1:]), atol=1.0)
    # clicking the strip at a slice's cell goes there too; the strip has a legend
    n = w.status.shape[1]
    x = int((30 + 0.5) / n * w.strip.width())
    qtbot.mouseClick(w.strip, Qt.LeftButton, pos=QPoint(x, 5))
    assert viewer.dims.current_step[0] == 30
    assert all(word in w.legend.text() for word in ("pass", "complete", "accepted", "corrected"))


def test_accept_all_passing_and_next_unreviewed(reviewed, qtbot):
    from qtpy.QtCore import Qt

    from napari_ian.trainer.metrics import CATEGORY

    viewer, w, truth, pred = reviewed
    passing = w.review.categories() == CATEGORY.index("pass")
    qtbot.mouseClick(w.accept_pass_btn, Qt.LeftButton)             # one click, not one per slice
    assert (w.status[passing] == 1).all() and (w.status[~passing] == 0).all()
    assert w.table.item_for(50, "right", "status").text() == "unreviewed"
    # what is left to look at: the slices with nerve that did not pass
    viewer.dims.set_current_step(0, 0)
    seen = []
    for _ in range(5):
        qtbot.mouseClick(w.unreviewed_btn, Qt.LeftButton)
        seen.append(viewer.dims.current_step[0])
    assert seen == [50, 51, 52, 60, 50]                            # and round again
    w.accept_current()                                             # slice 50 done
    assert w.next_unreviewed() == 51


def test_a_paint_event_updates_only_the_touched_rows_and_marks_them_corrected(reviewed, qtbot):
    viewer, w, truth, pred = reviewed
    w.filter_combo.setCurrentIndex(1)                               # all slices with nerve
    others = [(s, side) for s in (40, 59, 61, 70) for side in ("right", "left")]
    untouched = {k: id(w.table.item_for(*k, "dsc")) for k in others}
    before = w.table.rowCount()
    fixed = np.asarray(truth.data)[60]
    idx = np.nonzero(fixed == 1)
    pred.data_setitem((np.full(idx[0].size, 60), *idx), 1)          # the annotator repairs slice 60 (right)
    qtbot.waitUntil(lambda: w.last_updated == {60}, timeout=2_000)
    assert {k: id(w.table.item_for(*k, "dsc")) for k in others} == untouched   # other rows left alone
    assert w.table.rowCount() == before
    assert w.table.item_for(60, "right", "category").text() == "pass"
    assert w.table.item_for(60, "right", "status").text() == "corrected"
    assert w.status[0, 60] == 2 and w.status[1, 60] == 0
    # undo (no paint event in napari) brings the failure back, again only for that slice
    w.last_updated = set()
    pred.undo()
    qtbot.waitUntil(lambda: w.last_updated == {60}, timeout=2_000)
    assert w.table.item_for(60, "right", "category").text() == "complete failure"
    pred.redo()
    qtbot.waitUntil(lambda: w.table.item_for(60, "right", "category").text() == "pass", timeout=2_000)
    # the same numbers as a full recompute
    from napari_ian.trainer.review import SliceReview

    full = SliceReview(truth.data, pred.data)
    assert np.allclose(np.nan_to_num(full.metrics(1).dsc), np.nan_to_num(w.review.metrics(1).dsc))


def test_the_3d_figures_are_measured_in_the_background_and_follow_an_edit(reviewed, qtbot):
    from napari_ian.trainer.metrics import nerve_metrics

    viewer, w, truth, pred = reviewed
    qtbot.waitUntil(lambda: w.figures_3d.last is not None, timeout=30_000)
    first = w.figures_3d.last
    expect = nerve_metrics(np.asarray(truth.data), np.asarray(pred.data), 1, tuple(pred.scale), 0)
    assert first["right"]["dsc_3d"] == pytest.approx(expect["dsc_3d"]) and expect["dsc_3d"] < 1.0
    assert f"{first['right']['dsc_3d']:.3f}" in w.summary_label.text()
    # the annotator repairs the right nerve everywhere: the 3D DSC is measured again, 1.0
    t = np.asarray(truth.data)
    idx = np.nonzero(t == 1)
    pred.data_setitem(idx, 1)
    wrong = np.nonzero((np.asarray(pred.data) == 1) & (t != 1))
    pred.data_setitem(wrong, 0)
    qtbot.waitUntil(lambda: w.figures_3d.last is not first and w.figures_3d.last["right"]["dsc_3d"] == 1.0,
                    timeout=30_000)
    assert "1.000" in w.summary_label.text()


def test_status_is_saved_with_the_case_and_restored(reviewed, qtbot):
    from qtpy.QtCore import Qt

    from gui_actions import close_panel, dock

    viewer, w, truth, pred = reviewed
    viewer.dims.set_current_step(0, 40)
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key_A, Qt.ShiftModifier)   # Shift+A: accept
    assert list(w.status[:, 40]) == [1, 1]
    close_panel(viewer, w)                                         # closed, and opened again
    w2 = dock(viewer, "Review")
    assert w2 is not w
    w2.ref_combo.setCurrentText(truth.name)
    w2.pred_combo.setCurrentText(pred.name)
    assert w2.run()
    assert list(w2.status[:, 40]) == [1, 1] and w2.status.sum() == 2


def test_csv_export_matches_the_table(reviewed, tmp_path):
    viewer, w, truth, pred = reviewed
    out = w.export_csv(tmp_path / "review.csv")
    rows = list(csv.DictReader(open(out)))
    flagged = [r for r in rows if r["category"] not in ("pass", "true-negative slice")]
    assert {(int(r["slice"]), r["side"]) for r in flagged} == {(50, "right"), (51, "right"), (52, "right"),
                                                               (60, "right"), (60, "left")}
    assert all(r["category"] == "complete failure" and float(r["dsc"]) == 0 for r in flagged if r["slice"] != "60")
    assert len(rows) == 2 * truth.data.shape[0]      # every slice of both sides, as `ian evaluate` writes


def test_review_export_and_ian_evaluate_csv_are_the_same_bytes(reviewed, tmp_path, qtbot):
    from qtpy.QtCore import Qt

    from napari_ian._writer import write_labels
    from napari_ian.trainer.cli import main

    viewer, w, truth, pred = reviewed
    ref_p, pred_p = tmp_path / "ref.nii.gz", tmp_path / "pred.nii.gz"
    write_labels(str(ref_p), truth.data, {"metadata": truth.metadata})
    write_labels(str(pred_p), pred.data, {"metadata": pred.metadata})
    assert main(["evaluate", "--reference", str(ref_p), "--prediction", str(pred_p),
                 "--csv", str(tmp_path / "evaluate.csv")]) == 0
    panel = w.export_csv(tmp_path / "panel.csv")
    assert open(panel, "rb").read() == (tmp_path / "evaluate.csv").read_bytes()
    # a reviewed slice changes its status field and nothing else
    viewer.dims.set_current_step(0, 40)
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key_A, Qt.ShiftModifier)   # Shift+A: accept
    panel_lines = open(w.export_csv(tmp_path / "panel2.csv")).read().splitlines()
    eval_lines = (tmp_path / "evaluate.csv").read_text().splitlines()
    changed = [(a, b) for a, b in zip(eval_lines, panel_lines) if a != b]
    assert len(changed) == 2 and all(a.rsplit(",", 1)[0] == b.rsplit(",", 1)[0] and b.endswith(",accepted")
                                     for a, b in changed)


def test_without_a_reference_it_shows_warnings_not_dsc(reviewed):
    viewer, w, truth, pred = reviewed
    w.ref_combo.setCurrentText("(none: warnings from the prediction alone)")
    assert w.run()
    assert "not DSC" in w.mode_label.text()
    kinds = {(x["slice"], x["kind"]) for x in w.warnings}
    assert {(50, "gap"), (51, "gap"), (52, "gap")} <= kinds
    assert any(k == "jump" and s in (60, 61) for s, k in kinds)
    assert w.table.columnCount() == 5 and w.table.rowCount() == len(w.warnings)


def test_measurements_plot_and_csv(reviewed, tmp_path, qtbot):
    viewer, w, truth, pred = reviewed
    w.marker_spin.setValue(40)
    assert w.show_measurements() is not None
    qtbot.waitUntil(lambda: getattr(w, "measure_window", None) is not None, timeout=20_000)
    win = w.measure_window
    assert win.isVisible() and not win.plot.pixmap().isNull() and win.plot.pixmap().width() > 300
    rows = list(csv.DictReader(open(win.save_csv(tmp_path / "m.csv"))))
    assert rows and {"area_mm2", "mean_signal", "max_signal", "distance_mm"} <= set(rows[0])
    assert all(float(r["area_mm2"]) > 0 for r in rows)
    win.close()


def test_bad_inputs_are_explained(make_napari_viewer, monkeypatch, tmp_path):
    from gui_actions import dock
    from napari_ian import _review_widget as rw

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    said = []
    monkeypatch.setattr(rw, "show_info", said.append)
    viewer = make_napari_viewer(show=True)
    a = viewer.add_labels(np.zeros((10, 12, 14), np.uint8), name="a", scale=(0.8, 1.6, 0.4))
    b = viewer.add_labels(np.zeros((10, 12, 15), np.uint8), name="b", scale=(0.8, 1.6, 0.4))
    c = viewer.add_labels(np.zeros((10, 12, 14), np.uint8), name="c", scale=(1.0, 1.6, 0.4))
    flat = viewer.add_labels(np.zeros((12, 14), np.uint8), name="flat")
    w = dock(viewer, "Review")
    for ref, pred, words in ((a, b, "not the same grid"), (a, c, "different voxel sizes"), (a, flat, "2D")):
        w.ref_combo.setCurrentText(ref.name)
        w.pred_combo.setCurrentText(pred.name)
        assert not w.run()
        assert words in said[-1] and words in w.mode_label.text()
        assert w.table.rowCount() == 0
    # an empty reference and a prediction with a foreign label value: reviewed, with a note
    pred = np.zeros((10, 12, 14), np.uint8)
    pred[3, 4:6, 4:6] = 1
    pred[4, 1, 1] = 7
    d = viewer.add_labels(pred, name="d", scale=(0.8, 1.6, 0.4))
    w.ref_combo.setCurrentText(a.name)
    w.pred_combo.setCurrentText(d.name)
    assert w.run()
    text = w.mode_label.text()
    assert "reference a is empty" in text and "values 7" in text
    assert [r["category"] for r in w.review.rows()] == ["false-positive slice"]


def test_the_reference_is_outlined_and_a_new_prediction_is_followed(reviewed, qtbot):
    viewer, w, truth, pred = reviewed
    assert truth.contour >= 1 and "outlined" in w.mode_label.text()   # not drawn like the prediction
    assert truth.get_color(1).tolist() != pred.get_color(1).tolist()   # the sample's truth has its own colours
    redone = np.asarray(truth.data).copy()
    redone[30] = 0                                                    # the new model misses slice 30 instead
    # what the Predict panel adds when the user predicts again
    new = viewer.add_labels(redone, name="ian-default prediction (2)", scale=truth.scale,
                            metadata={**truth.metadata, "ian_model": {"name": "ian-default"}})
    assert w.pred_combo.currentText() == new.name
    assert "Now reviewing the new prediction" in w.mode_label.text()
    assert 30 in w.flagged_slices() and 50 not in w.flagged_slices()
