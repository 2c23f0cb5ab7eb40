"""Synced axial/sagittal/coronal views (napari-orthogonal-views) over the napari-ian layers."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def test_three_views_share_labels_and_follow_the_slice(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from gui_actions import dock
    from napari_ian._window import orthoviews

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-ian", "phantom")
    w = dock(viewer, "Case")
    labels = w.new_labels()
    w.views_btn.click()
    m = orthoviews(viewer)
    qtbot.waitUntil(m.is_shown, timeout=5_000)
    side_models = [wd.vm_container.viewer_model for wd in (m.right_widget, m.bottom_widget)]
    # each side view shows another pair of axes than the main (coronal) view
    shown = {tuple(vm.dims.displayed) for vm in side_models}
    assert tuple(viewer.dims.displayed) == (1, 2) and len(shown) == 2 and (1, 2) not in shown
    # painting in the main view shows in the side views (the labels are shared)
    w.brush_box.brush.paint(labels, [[60, 30, 100]])
    for vm in side_models:
        twin = vm.layers[labels.name]
        qtbot.waitUntil(lambda t=twin: (np.asarray(t.data) == 1).any(), timeout=5_000)
        np.testing.assert_array_equal(np.asarray(twin.data), np.asarray(labels.data))
        np.testing.assert_allclose(twin.scale, labels.scale)
    # moving the coronal slice moves the side views' crosshair slice with it
    viewer.dims.current_step = (77, 30, 100)
    qtbot.waitUntil(lambda: all(vm.dims.current_step[0] == 77 for vm in side_models), timeout=5_000)
    # closing napari clears the layers in one batch: each of the three canvases cleans its scene
    # graph (a full garbage collection) once, not once per layer, even after the views were hidden
    # and shown again through napari-orthogonal-views' own manager (new side viewers)
    from napari._vispy.canvas import VispyCanvas

    from napari_ian._window import side_viewer_models

    m.hide()
    m.show()
    side_models = side_viewer_models(viewer)
    qtbot.waitUntil(lambda: all(len(vm.layers) == len(viewer.layers) for vm in side_models), timeout=5_000)
    assert len(side_models) == 2 and len(viewer.layers) >= 3
    cleaned, clean = [], VispyCanvas._clean_and_update_scenegraph
    monkeypatch.setattr(VispyCanvas, "_clean_and_update_scenegraph", lambda self: (cleaned.append(self), clean(self)))
    viewer.layers.clear()
    assert all(len(vm.layers) == 0 for vm in side_models)
    assert len(cleaned) == 3 and len({id(c) for c in cleaned}) == 3
    m.cleanup()
    # after napari-orthogonal-views' own clean-up (its "Remove Orthogonal Views"), deleting the
    # selected layers (a batch) brings no views back, and closing twice does not fail
    from napari_orthogonal_views.ortho_view_manager import _VIEWER_MANAGERS

    for i in range(2):
        viewer.add_labels(np.zeros((4, 5, 6), np.uint8), name=f"more {i}")
    viewer.layers.select_all()
    viewer.layers.remove_selected()
    assert len(viewer.layers) == 0 and viewer not in _VIEWER_MANAGERS
    viewer.close()
    viewer.close()
    assert viewer not in _VIEWER_MANAGERS


def _side_view_point(widget, layer, vox2):
    """Canvas pixel of a voxel (in the side view's two displayed axes) in a napari-orthogonal-views widget."""
    from qtpy.QtCore import QPoint

    vm = widget.vm_container.viewer_model
    canvas = widget.qt_viewer.canvas.native
    shown = list(vm.dims.displayed)
    world = np.asarray(vox2, float) * np.asarray(layer.scale)[shown]
    cam = vm.scene.camera if hasattr(vm, "scene") else vm.camera
    px = (world - np.asarray(cam.center)[-2:]) * cam.zoom + np.array([canvas.height(), canvas.width()]) / 2
    return canvas, QPoint(int(round(px[1])), int(round(px[0])))


def test_sphere_brush_paints_in_a_side_view_into_the_layer_itself(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """A drag along the nerve in the axial view (where it runs lengthwise) paints the labels layer."""
    from gui_actions import dock, drag
    from napari_ian._window import orthoviews

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    viewer = make_napari_viewer(show=True)
    image, truth = viewer.open_sample("napari-ian", "phantom")
    w = dock(viewer, "Case")
    labels = w.new_labels()
    viewer.layers.selection.active = labels
    w.views_btn.click()
    m = orthoviews(viewer)
    qtbot.waitUntil(m.is_shown, timeout=5_000)
    qtbot.wait(400)                                                # laid out and fitted
    w.brush_box.brush_diameter.setValue(2.5)
    w.brush_box.brush_check.setChecked(True)
    axial = next(wd for wd in (m.right_widget, m.bottom_widget)
                 if tuple(wd.vm_container.viewer_model.dims.displayed) == (0, 2))
    si = int(viewer.dims.current_step[1])
    course = np.argwhere(np.asarray(truth.data)[:, si, :] == 1)   # the right nerve on this axial slice
    assert len(course) > 10
    stops = course[np.linspace(0, len(course) - 1, 6).astype(int)]
    canvas, _ = _side_view_point(axial, labels, stops[0])
    drag(viewer, [_side_view_point(axial, labels, s)[1] for s in stops], canvas)
    qtbot.waitUntil(lambda: np.asarray(labels.data).any(), timeout=5_000)
    painted = np.argwhere(np.asarray(labels.data) == 1)
    assert abs(np.median(painted[:, 1]) - si) <= 1                 # on that axial slice ...
    assert np.ptp(painted[:, 0]) >= np.ptp(stops[:, 0]) - 2         # ... along the nerve's course
    labels.undo()                                                  # one stroke of the layer's own history
    assert not np.asarray(labels.data).any()


def test_tracing_with_the_brush_on_is_quiet_and_its_points_stay_small_rings(make_napari_viewer, qtbot, tmp_path,
                                                                           monkeypatch):
    import warnings

    from gui_actions import canvas_point, dock
    from napari_ian import _brush_controls
    from napari_ian._window import orthoviews

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    said = []
    monkeypatch.setattr(_brush_controls, "show_info", said.append)
    viewer = make_napari_viewer(show=True)
    image, truth = viewer.open_sample("napari-ian", "phantom")
    w = dock(viewer, "Case")
    labels = w.new_labels()
    w.views_btn.click()
    m = orthoviews(viewer)
    qtbot.waitUntil(m.is_shown, timeout=5_000)
    viewer.layers.selection.active = labels
    w.brush_box.brush_check.setChecked(True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracer = w.brush_box.start_trace()
        ap = int(viewer.dims.current_step[0])
        nerve = np.argwhere(np.asarray(truth.data)[ap] == 1)
        for si, rl in nerve[[0, len(nerve) // 2, -1]]:
            from qtpy.QtCore import Qt
            from qtpy.QtTest import QTest

            QTest.mouseClick(viewer.window._qt_viewer.canvas.native, Qt.LeftButton, Qt.NoModifier,
                             canvas_point(viewer, labels, si, rl))
        qtbot.waitUntil(lambda: len(tracer.points.data) == 3, timeout=3_000)
    assert not any("nothing painted" in s for s in said)            # clicks on the trace are no mistake
    assert not [c for c in caught if "illegal" in str(c.message)]
    for widget in (m.right_widget, m.bottom_widget):                 # the side views draw them as the main one
        copy = widget.vm_container.viewer_model.layers[tracer.points.name]
        qtbot.waitUntil(lambda c=copy: len(c.data) == 3, timeout=3_000)
        colours = np.unique(np.asarray(tracer.points.face_color), axis=0)
        assert len(colours) == 1 and colours[0][2] == 0                # the side's colour (yellow), no white
        np.testing.assert_allclose(np.unique(copy.face_color, axis=0), colours)
        np.testing.assert_allclose(np.unique(copy.size), np.unique(tracer.points.size))
    assert str(tracer.points.symbol[0]) in ("ring", "Symbol.RING") and np.all(tracer.points.size <= 2.0)
