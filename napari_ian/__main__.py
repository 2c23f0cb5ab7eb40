"""Launch napari with the napari-ian panels docked and the phantom sample open.

``python -m napari_ian [--seed N] [--screenshot FILE.png]``
"""
from __future__ import annotations

import argparse
import os
import sys


def _centre_on_nerve(viewer, labels_layer):
    import numpy as np

    idx = np.argwhere(np.asarray(labels_layer.data) > 0)
    if idx.size:
        # a coronal slice in the mandibular body, where the nerve is a round cross-section
        ap = int(np.percentile(idx[:, 0], 25))
        step = list(viewer.dims.current_step)
        step[0] = ap
        viewer.dims.current_step = tuple(step)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m napari_ian", description=__doc__)
    ap.add_argument("--screenshot", help="save a screenshot of the window to this PNG and exit")
    ap.add_argument("--no-sample", action="store_true", help="start without the phantom")
    args = ap.parse_args(argv)
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        print("napari-ian: no display (DISPLAY is not set). On a headless machine run it under "
              "xvfb-run, or use the 'ian' command line.", file=sys.stderr)
        return 2
    import napari

    viewer = napari.Viewer(title="napari-ian")
    viewer.window.add_plugin_dock_widget("napari-ian", "Case")
    viewer.window.add_plugin_dock_widget("napari-ian", "Predict")
    viewer.window.add_plugin_dock_widget("napari-ian", "Phantom")
    if not args.no_sample:
        layers = viewer.open_sample("napari-ian", "phantom")
        viewer.dims.axis_labels = ("AP", "SI", "RL")
        _centre_on_nerve(viewer, layers[-1])
    if args.screenshot:
        from qtpy.QtWidgets import QApplication

        viewer.window._qt_window.resize(1500, 950)
        for _ in range(5):
            QApplication.processEvents()
        viewer.reset_view()
        try:  # toasts (e.g. napari's PyQt5 notice) would cover the canvas in the picture
            from napari._qt.dialogs.qt_notification import NapariQtNotification

            for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
                toast.close()
        except Exception:  # private API: the screenshot is still taken without it
            pass
        QApplication.processEvents()
        viewer.screenshot(args.screenshot, canvas_only=False)
        viewer.close()
        print(args.screenshot)
        return 0
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
