"""The mm sphere brush: geometry on anisotropic voxels, and real mouse drags in a shown viewer."""
from __future__ import annotations

import numpy as np
import pytest

from napari_ian.trainer.annotate import sphere_indices, sphere_offsets


def test_sphere_in_mm_on_anisotropic_voxels():
    sp = (0.8, 1.6, 0.43)
    off = sphere_offsets(5.0, sp)
    ext_mm = (off.max(axis=0) - off.min(axis=0)) * np.asarray(sp)
    # every voxel centre within 2.5 mm, extents at most the diameter along each axis
    assert np.all(np.sqrt(((off * sp) ** 2).sum(axis=1)) <= 2.5 + 1e-9)
    assert np.all(ext_mm <= 5.0 + 1e-9)
    assert list(off.max(axis=0)) == [3, 1, 5]          # floor(2.5 / spacing) on each axis
    assert len(sphere_offsets(0.1, sp)) == 1            # the smallest brush paints the centre voxel
    idx = sphere_indices((0, 0, 0), off, (10, 10, 10))  # clipped at the volume's corner
    assert min(a.min() for a in idx) == 0


@pytest.mark.gui
def test_drag_with_the_real_mouse_paints_a_mm_ball_and_undo_removes_it(make_napari_viewer, qtbot, tmp_path,
                                                                       monkeypatch):
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    from gui_actions import canvas_point, dock

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    viewer = make_napari_viewer(show=True)
    image, truth = viewer.open_sample("napari-ian", "phantom")
    truth.visible = False
    w = dock(viewer, "Case")
    labels = w.new_labels()
    viewer.layers.selection.active = labels
    w.brush_box.brush_diameter.setValue(4.0)
    w.brush_box.brush_side.setCurrentIndex(1)                 # left IAN = 2
    w.brush_box.brush_check.setChecked(True)
    ap = 50
    viewer.dims.current_step = (ap, 0, 0)
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.wait(100)
    target = np.array([30.0, 200.0])                # (SI, RL) voxel to paint
    pos = canvas_point(viewer, labels, *target)
    QTest.mouseMove(canvas, pos)
    qtbot.wait(50)
    QTest.mousePress(canvas, Qt.LeftButton, Qt.NoModifier, pos)
    QTest.mouseRelease(canvas, Qt.LeftButton, Qt.NoModifier, pos)
    qtbot.waitUntil(lambda: np.asarray(labels.data).any(), timeout=5_000)
    painted = np.argwhere(np.asarray(labels.data) == 2)
    assert len(painted) and not (np.asarray(labels.data) == 1).any()
    centre_vox = np.round(painted.mean(axis=0))
    assert centre_vox[0] == ap and abs(centre_vox[1] - target[0]) <= 1 and abs(centre_vox[2] - target[1]) <= 2
    # the painted set is exactly the mm sphere around the clicked voxel
    expected = sphere_offsets(4.0, labels.scale) + centre_vox.astype(int)
    assert {tuple(p) for p in painted} == {tuple(p) for p in expected}
    ext_mm = (painted.max(axis=0) - painted.min(axis=0)) * np.asarray(labels.scale)
    assert np.all(ext_mm <= 4.0 + 1e-9) and ext_mm[2] > 3.0     # ~4 mm across in RL (0.41 mm voxels)
    assert len(np.unique(painted[:, 0])) > 1                     # a ball: it reaches other coronal slices
    # undo and redo survive a slice change, through the real keys
    viewer.dims.current_step = (ap + 20, 0, 0)
    qtbot.wait(50)
    QTest.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier)
    qtbot.waitUntil(lambda: not np.asarray(labels.data).any(), timeout=2_000)
    QTest.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    qtbot.waitUntil(lambda: (np.asarray(labels.data) == 2).sum() == len(painted), timeout=2_000)


def test_tube_through_points_is_connected_and_of_the_right_diameter():
    from scipy import ndimage

    from napari_ian.trainer.annotate import centerline_curve, tube_indices

    sp = (0.8, 1.6, 0.43)
    shape = (80, 30, 200)
    pts = [(10, 15, 40), (30, 18, 90), (55, 14, 130), (70, 16, 170)]   # down a jaw-like course
    curve = centerline_curve(pts, sp)
    for p in pts:                                                         # through every point
        assert np.min(np.linalg.norm((curve - p) * sp, axis=1)) < 1e-6
    mask = np.zeros(shape, bool)
    mask[tube_indices(pts, 2.5, sp, shape)] = True
    lab, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    assert n == 1
    # diameter: the painted volume is that of a 2.5 mm tube of the curve's length (voxelised)
    length = np.linalg.norm(np.diff(curve, axis=0) * sp, axis=1).sum()
    tube_mm3 = np.pi * 1.25 ** 2 * length + 4 / 3 * np.pi * 1.25 ** 3
    assert 0.6 < mask.sum() * np.prod(sp) / tube_mm3 < 1.4
    from scipy.spatial import cKDTree

    fine = centerline_curve(pts, sp, step_mm=0.02)
    d, _ = cKDTree(fine * sp).query(np.argwhere(mask) * sp)
    assert d.max() <= 1.25 + 0.02                                       # no voxel beyond the radius
    # and every voxel centre within 1.0 mm of the curve is painted (no holes)
    box = np.argwhere(np.ones(shape, bool)[5:75, 10:22, 35:175]) + [5, 10, 35]
    dd, _ = cKDTree(fine * sp).query(box * sp)
    assert mask[tuple(box[dd <= 1.0].T)].all()


@pytest.mark.gui
def test_traced_points_paint_a_tube_that_follows_a_moved_point(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from scipy import ndimage

    from gui_actions import dock

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-ian", "phantom")
    w = dock(viewer, "Case")
    labels = w.new_labels()
    w.brush_box.brush_diameter.setValue(2.5)
    tracer = w.brush_box.start_trace()
    pts_layer = tracer.points
    clicks = np.array([[20, 40, 60], [45, 44, 70], [70, 42, 90]], float)
    pts_layer.data = clicks                          # as if clicked: data in the layer's own coordinates
    qtbot.waitUntil(lambda: np.asarray(labels.data).any(), timeout=5_000)
    mask = np.asarray(labels.data) == 1
    assert ndimage.label(mask, structure=np.ones((3, 3, 3)))[1] == 1
    near_old_end = mask[70, 42, 88:93].any()
    # move the last point: the tube follows, the old end is cleared
    moved = clicks.copy()
    moved[2] = [70, 30, 150]
    pts_layer.data = moved
    qtbot.waitUntil(lambda: np.asarray(labels.data)[70, 30, 150] == 1, timeout=5_000)
    assert near_old_end and not np.asarray(labels.data)[70, 42, 88:93].any()
    labels.undo()                                     # one undo step brings the first tube back
    assert np.asarray(labels.data)[70, 42, 88:93].any()


def test_moving_one_point_repaints_only_its_stretch(qtbot):
    """The curve is local: a moved point rewrites the spans it shapes; a hand edit elsewhere stays."""
    from napari.layers import Labels, Points

    from napari_ian._trace import CenterlineTracer
    from napari_ian.trainer.annotate import tube_indices

    sp, shape = (0.8, 1.6, 0.43), (120, 40, 200)
    labels = Labels(np.zeros(shape, np.uint8), scale=sp)
    clicks = np.array([[10 + 14 * k, 20 + 2 * np.sin(k), 40 + 15 * k] for k in range(8)], float)
    points = Points(clicks, scale=sp)
    tracer = CenterlineTracer(points, labels, 2.5, 1, delay_ms=10_000)
    tracer.paint()
    first = np.asarray(labels.data) == 1
    want = np.zeros(shape, bool)
    want[tube_indices(clicks, 2.5, sp, shape)] = True
    np.testing.assert_array_equal(first, want)                   # the union of the spans is the tube
    labels.data[10:14, 18:23, 38:43] = 0                           # the annotator erased a bit near point 0
    erased = np.asarray(labels.data) == 1
    moved = clicks.copy()
    moved[5] += [0, 6, 0]                                         # drag point 5 up by 6 voxels
    points.data = moved
    tracer.paint()
    ap = np.unravel_index(tracer.last_changed, shape)[0]
    assert ap.size and ap.min() >= clicks[3, 0] - 3 and ap.max() <= clicks[7, 0] + 3   # spans 3..6 only
    after = np.asarray(labels.data) == 1
    np.testing.assert_array_equal(after[:clicks[3, 0].astype(int) - 3], erased[:clicks[3, 0].astype(int) - 3])
    want = np.zeros(shape, bool)
    want[tube_indices(moved, 2.5, sp, shape)] = True
    assert after[int(moved[5, 0]), int(moved[5, 1]), int(moved[5, 2])]
    np.testing.assert_array_equal(after[int(clicks[3, 0]):], want[int(clicks[3, 0]):])   # the new stretch
    labels.undo()                                                  # one undo step for the whole move
    np.testing.assert_array_equal(np.asarray(labels.data) == 1, erased)


@pytest.mark.gui
def test_reach_ring_follows_the_mouse_and_shortcuts_drive_the_brush(make_napari_viewer, qtbot, tmp_path,
                                                                     monkeypatch):
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    from gui_actions import canvas_point, dock
    from napari_ian._identity import same_layer

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-ian", "phantom")
    w = dock(viewer, "Case")
    labels = w.new_labels()
    viewer.layers.selection.active = labels
    viewer.dims.current_step = (40, 0, 0)
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.wait(100)
    QTest.keyClick(canvas, Qt.Key_B, Qt.ShiftModifier)            # Shift+B: brush on
    assert w.brush_box.brush_check.isChecked() and w.brush_box.brush.enabled
    w.brush_box.brush_diameter.setValue(4.0)
    target = np.array([30.0, 150.0])
    QTest.mouseMove(canvas, canvas_point(viewer, labels, *target))
    reach = w.brush_box.reach
    qtbot.waitUntil(lambda: reach.visible and reach.centre() is not None, timeout=3_000)
    assert same_layer(viewer.layers.selection.active, labels)      # painting goes on in the labels layer
    assert all(ly._type_string != "shapes" for ly in viewer.layers)  # the ring is no layer
    sp = np.asarray(labels.scale)
    centre = reach.centre()
    assert centre[0] == 40 and abs(centre[1] - target[0]) <= 1 and abs(centre[2] - target[1]) <= 1
    # drawn in world mm where the sphere would be centred, with the sphere's radius in mm
    cw = labels.data_to_world(centre)
    centre_xy, radius, label = reach.drawn()
    assert np.allclose(centre_xy, (cw[2], cw[1])) and np.isclose(radius, 2.0)
    k = int(2.0 // sp[0])
    assert label == f"4.0 mm: \u00b1{k} slices (\u00b1{k * sp[0]:.1f} mm)"
    # the ring is drawn: yellow pixels on the canvas around the mouse
    shot = viewer.screenshot(canvas_only=True, flash=False)
    yellow = (shot[..., 0] > 200) & (shot[..., 1] > 200) & (shot[..., 2] < 80)
    assert yellow.sum() > 20
    QTest.keyClick(canvas, Qt.Key_Up, Qt.ShiftModifier)            # Shift+Up: +0.5 mm, the ring grows
    assert w.brush_box.brush_diameter.value() == 4.5 and w.brush_box.brush.diameter_mm == 4.5
    qtbot.waitUntil(lambda: np.isclose(reach.drawn()[1], 2.25), timeout=3_000)
    QTest.keyClick(canvas, Qt.Key_L, Qt.ShiftModifier)
    assert w.brush_box.brush.label == 2
    QTest.keyClick(canvas, Qt.Key_R, Qt.ShiftModifier)
    assert w.brush_box.brush.label == 1
    QTest.keyClick(canvas, Qt.Key_E, Qt.ShiftModifier)
    assert w.brush_box.brush.erase
    QTest.keyClick(canvas, Qt.Key_B, Qt.ShiftModifier)            # brush off: the ring goes
    assert not w.brush_box.brush.enabled and not reach.visible
    for key, what, _ in type(w.brush_box).SHORTCUTS:                      # every shortcut is listed in the panel
        assert key in w.brush_box.shortcuts_label.text() and what in w.brush_box.shortcuts_label.text()


@pytest.mark.gui
def test_brush_without_an_image_or_labels_says_what_to_do(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    from gui_actions import dock
    from napari_ian import _brush_controls, _case_widget

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    said = []
    for module in (_brush_controls, _case_widget):
        monkeypatch.setattr(module, "show_info", lambda msg: said.append(msg))
    viewer = make_napari_viewer(show=True)
    w = dock(viewer, "Case")
    w.brush_box.brush_check.setChecked(True)
    assert said and "open an image" in said[-1]
    assert w.brush_box.start_trace() is None and "New IAN labels" in said[-1]
    assert w.new_labels() is None and "open an image" in said[-1]
    assert len(viewer.layers) == 0                                 # nothing half-made


def test_snapping_follows_the_bright_nerve_between_few_points(phantom):
    image, truth, spacing, info = phantom
    cl = np.asarray(info["centerline_right"])
    pts = cl[np.linspace(0, len(cl) - 1, 4).astype(int)]          # four clicks along a curved nerve
    from napari_ian.trainer.annotate import bright_path, snapped_points, tube_indices

    nerve = truth == 1

    def dsc(points):
        m = np.zeros(truth.shape, bool)
        m[tube_indices(points, 2.5, spacing, truth.shape)] = True
        return 2 * (m & nerve).sum() / (m.sum() + nerve.sum())

    snapped = snapped_points(image, pts, spacing)
    for p in pts:                                                  # every click stays on the curve
        assert np.min(np.abs(snapped - p).sum(axis=1)) < 1e-9
    plain, snap = dsc(pts), dsc(snapped)
    assert snap > plain + 0.25 and snap > 0.5
    path = bright_path(image, pts[0], pts[1], spacing)
    assert np.all(np.abs(np.diff(path, axis=0)) <= 1)              # a connected voxel path, end to end
    assert np.array_equal(path[0], np.round(pts[0])) and np.array_equal(path[-1], np.round(pts[1]))


@pytest.mark.gui
def test_trace_with_snap_paints_along_the_nerve(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from gui_actions import dock

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    viewer = make_napari_viewer(show=True)
    image, truth = viewer.open_sample("napari-ian", "phantom")
    w = dock(viewer, "Case")
    labels = w.new_labels()
    w.brush_box.snap_check.setChecked(True)
    tracer = w.brush_box.start_trace()
    assert tracer.image is not None
    from napari_ian.sample_data.phantom import make_phantom

    cl = np.asarray(make_phantom(0)[3]["centerline_right"])
    tracer.points.data = cl[np.linspace(0, len(cl) - 1, 4).astype(int)]
    qtbot.waitUntil(lambda: np.asarray(labels.data).any(), timeout=10_000)
    got, nerve = np.asarray(labels.data) == 1, np.asarray(truth.data) == 1
    assert 2 * (got & nerve).sum() / (got.sum() + nerve.sum()) > 0.5
