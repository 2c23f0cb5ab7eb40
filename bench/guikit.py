"""Shared bits of the GUI benchmarks: a shown viewer of a fixed size and an event pump."""
from __future__ import annotations


def pump(app, seconds: float = 0.0) -> None:
    """Process Qt events for ``seconds`` (at least once)."""
    from napari_ian.__main__ import pump as pump_qt

    pump_qt(seconds)


def shown_viewer(width: int = 1500, height: int = 1000):
    """A shown napari viewer of a fixed window size and its QApplication."""
    import napari

    app = napari.qt.get_qapp()
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(width, height)
    return viewer, app


def dock(viewer, name: str):
    """Dock the napari-ian panel ``name`` as Plugins > napari-ian does (with napari's viewer proxy)."""
    return viewer.window.add_plugin_dock_widget("napari-ian", name)[1]


def canvas_point(viewer, layer, si: float, rl: float):
    """The canvas pixel (a QPoint) of voxel (SI, RL) of ``layer`` on the current coronal slice (2D view)."""
    import numpy as np
    from qtpy.QtCore import QPoint

    canvas = viewer.window._qt_viewer.canvas.native
    cam = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    world = np.array([si, rl], float) * np.asarray(layer.scale[1:])
    px = (world - np.asarray(cam.center)[-2:]) * cam.zoom + np.array([canvas.height(), canvas.width()]) / 2
    return QPoint(int(round(px[1])), int(round(px[0])))
