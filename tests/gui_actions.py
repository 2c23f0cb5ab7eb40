"""What a user does in napari, for the GUI tests: dock a panel from the Plugins menu, drag on the canvas.

Panels are docked with ``viewer.window.add_plugin_dock_widget`` (what Plugins > napari-ian does),
so they get the viewer proxy napari gives every plugin, as in real use.
"""
from __future__ import annotations

import numpy as np

PLUGIN = "napari-ian"


def dock(viewer, name: str):
    """Dock the napari-ian panel ``name`` ("Case", "Predict", ...) as the Plugins menu does; return it.

    Returns once the window has taken its new layout (the panel tabs itself and the window fills
    the screen when control returns to Qt): canvas positions computed earlier would be stale.
    """
    from qtpy.QtTest import QTest

    _dock, panel = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    QTest.qWait(300)
    return panel


def close_panel(viewer, panel) -> None:
    """Close a docked panel as its title bar's close button does."""
    viewer.window.remove_dock_widget(panel.parent())


def canvas_point(viewer, layer, si: float, rl: float):
    """The canvas pixel (a QPoint) of voxel (SI, RL) of ``layer`` on the current coronal slice (2D view)."""
    from qtpy.QtCore import QPoint

    canvas = viewer.window._qt_viewer.canvas.native
    cam = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    world = np.array([si, rl], float) * np.asarray(layer.scale[1:]) + np.asarray(layer.translate[1:])
    px = (world - np.asarray(cam.center)[-2:]) * cam.zoom + np.array([canvas.height(), canvas.width()]) / 2
    return QPoint(int(round(px[1])), int(round(px[0])))


def drag(viewer, points, canvas=None) -> None:
    """A left-button drag through ``points`` (QPoints) on ``canvas`` (default: the main one).

    Qt's QTest.mouseMove sends no button state, so the moves are posted as real QMouseEvents with
    the left button held, as a mouse would.
    """
    from qtpy.QtCore import QEvent, QPointF, Qt
    from qtpy.QtGui import QMouseEvent
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QApplication

    canvas = canvas if canvas is not None else viewer.window._qt_viewer.canvas.native
    QTest.mouseMove(canvas, points[0])
    QTest.mousePress(canvas, Qt.LeftButton, Qt.NoModifier, points[0])
    for p in points[1:]:
        ev = QMouseEvent(QEvent.MouseMove, QPointF(p), QPointF(canvas.mapToGlobal(p)), Qt.LeftButton,
                         Qt.LeftButton, Qt.NoModifier)
        QApplication.sendEvent(canvas, ev)
        QApplication.processEvents()
    QTest.mouseRelease(canvas, Qt.LeftButton, Qt.NoModifier, points[-1])
    QApplication.processEvents()
