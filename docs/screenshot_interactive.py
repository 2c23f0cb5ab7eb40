"""Screenshot of the Interactive panel in plain napari: the sample phantom, four clicks per side.

Run under Xvfb: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshot_interactive.py OUT.png``
"""
from __future__ import annotations

import sys

import numpy as np
from qtpy.QtWidgets import QApplication

import napari


def main(out):
    viewer = napari.Viewer(show=True)
    image, truth = viewer.open_sample("napari-ian", "phantom")
    _dock, case = viewer.window.add_plugin_dock_widget("napari-ian", "Case")
    labels = case.new_labels()
    _dock, w = viewer.window.add_plugin_dock_widget("napari-ian", "Interactive")
    w.image_combo.setCurrentText(image.name)
    w.labels_combo.setCurrentText(labels.name)
    w.start()
    while w.points is None:
        QApplication.processEvents()
    t = np.asarray(truth.data)
    for side in (1, 2):
        slices = np.flatnonzero((t == side).any(axis=(1, 2)))
        w.kind.button(side).setChecked(True)
        for a in slices[np.linspace(0, len(slices) - 1, 6).round().astype(int)[1:-1]]:
            c = np.argwhere(t[a] == side).mean(axis=0)
            w.points.add([[a, c[0], c[1]]])   # the clicks layer is on the image's grid
            w.update_nerves()
            while w.worker is not None or w._timer.isActive():
                QApplication.processEvents()
    truth.visible = False
    mid = int(np.median(np.flatnonzero((t > 0).any(axis=(1, 2)))))
    viewer.dims.set_current_step(0, mid)
    viewer.layers.selection.active = w.points
    for _ in range(20):
        QApplication.processEvents()
    from napari_ian.__main__ import close_toasts

    close_toasts(viewer)
    for _ in range(20):
        QApplication.processEvents()
    viewer.screenshot(out, canvas_only=False)
    print(out, w.status.text())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshot_interactive.png")
