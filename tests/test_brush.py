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
    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtTest import QTest

    from napari_ian._widgets import CaseWidget

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    viewer = make_napari_viewer(show=True)
    image, truth = viewer.open_sample("napari-ian", "phantom")
    truth.visible = False
    w = CaseWidget(viewer)
    viewer.window.add_dock_widget(w)
    labels = w.new_labels()
    viewer.layers.selection.active = labels
    w.brush_diameter.setValue(4.0)
    w.brush_side.setCurrentIndex(1)                 # left IAN = 2
    w.brush_check.setChecked(True)
    ap = 50
    viewer.dims.current_step = (ap, 0, 0)
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.wait(100)
    target = np.array([30.0, 200.0])                # (SI, RL) voxel to paint
    world = target * np.asarray(labels.scale[1:])
    cam = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    centre = np.asarray(cam.center)[-2:]
    px = (world - centre) * cam.zoom + np.array([canvas.height(), canvas.width()]) / 2.0
    pos = QPoint(int(round(px[1])), int(round(px[0])))
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
    labels.undo()
    assert not np.asarray(labels.data).any()
    labels.redo()
    assert (np.asarray(labels.data) == 2).sum() == len(painted)
