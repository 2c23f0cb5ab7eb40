"""Launch napari with the napari-ian panels docked and the phantom sample open.

``python -m napari_ian [--predict] [--review] [--screenshot FILE.png]``
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


def _run_predict_panel(viewer, truth_layer):
    """Press the docked Predict panel's button and wait for its result layer."""
    import time

    from qtpy.QtWidgets import QApplication

    from ._predict_widget import PredictWidget

    panel = next(w for w in viewer.window._qt_window.findChildren(PredictWidget))
    n = len(viewer.layers)
    panel.run_btn.click()
    t0 = time.time()
    while len(viewer.layers) == n and time.time() - t0 < 300:
        QApplication.processEvents()
        time.sleep(0.02)
    truth_layer.visible = False
    viewer.layers.selection.active = viewer.layers[-1]


def close_toasts(viewer) -> None:
    """Close napari's notification toasts (e.g. its PyQt5 notice): they would cover the canvas in a picture."""
    try:
        from napari._qt.dialogs.qt_notification import NapariQtNotification

        for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
            toast.close()
    except Exception:  # private API: the screenshot is still taken without it
        pass


def _run_review_panel(viewer, truth_layer, dock):
    """Review the prediction against the ground truth and go to the first flagged slice."""
    from qtpy.QtWidgets import QApplication

    from ._review_widget import ReviewWidget

    panel = next(w for w in viewer.window._qt_window.findChildren(ReviewWidget))
    panel.ref_combo.setCurrentText(truth_layer.name)
    panel.pred_combo.setCurrentText(viewer.layers[-1].name)
    panel.image_combo.setCurrentText(viewer.layers[0].name)
    if panel.run():
        # show the worst slice that holds nerve in the reference (a failure, not an empty slice)
        rows = [r for r in panel.all_rows() if r["category"] not in ("pass", "false-positive slice")]
        rows = rows or [r for r in panel.all_rows() if r["tp"] + r["fn"] > 0]
        if rows:
            worst = min(rows, key=lambda r: r["dsc"])
            panel.go_to_slice(worst["slice"], worst["label"])
    dock.raise_()
    QApplication.processEvents()
    return dock


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m napari_ian", description=__doc__)
    ap.add_argument("--screenshot", help="save a screenshot of the window to this PNG and exit")
    ap.add_argument("--no-sample", action="store_true", help="start without the phantom")
    ap.add_argument("--no-views", action="store_true", help="no axial/sagittal side views")
    ap.add_argument("--predict", action="store_true",
                    help="run the Predict panel on the phantom before showing (or screenshotting) it")
    ap.add_argument("--review", action="store_true",
                    help="with --predict: review the prediction against the ground truth in the Review panel")
    args = ap.parse_args(argv)
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        print("napari-ian: no display (DISPLAY is not set). On a headless machine run it under "
              "xvfb-run, or use the 'ian' command line.", file=sys.stderr)
        return 2
    import napari

    viewer = napari.Viewer(title="napari-ian")
    case_dock, _ = viewer.window.add_plugin_dock_widget("napari-ian", "Case")
    viewer.window.add_plugin_dock_widget("napari-ian", "Phantom")
    predict_dock, _ = viewer.window.add_plugin_dock_widget("napari-ian", "Predict", tabify=True)
    review_dock, _ = viewer.window.add_plugin_dock_widget("napari-ian", "Review", tabify=True)
    viewer.window.add_plugin_dock_widget("napari-ian", "Fine-tune", tabify=True)
    predict_dock.raise_()

    def layout_docks():
        try:  # the Case panel is the tall one: give it most of the height
            from qtpy.QtCore import Qt

            win = viewer.window._qt_window
            win.resizeDocks([case_dock], [450], Qt.Horizontal)
            heights = [300, 600] if args.review else [560, 340]
            win.resizeDocks([case_dock, predict_dock], heights, Qt.Vertical)
        except Exception:  # private attribute of napari's window; only the initial layout depends on it
            pass

    layout_docks()
    if not args.no_sample:
        layers = viewer.open_sample("napari-ian", "phantom")
        viewer.dims.axis_labels = ("AP", "SI", "RL")
        _centre_on_nerve(viewer, layers[-1])
        if args.predict:
            _run_predict_panel(viewer, layers[-1])
            if args.review:
                _run_review_panel(viewer, layers[-1], review_dock)
        if not args.no_views:
            from napari_orthogonal_views.ortho_view_manager import show_orthogonal_views

            show_orthogonal_views(viewer)
    if args.screenshot:
        from qtpy.QtWidgets import QApplication

        viewer.window._qt_window.resize(1500, 950)
        for _ in range(5):
            QApplication.processEvents()
        layout_docks()
        QApplication.processEvents()
        viewer.reset_view()
        close_toasts(viewer)
        QApplication.processEvents()
        viewer.screenshot(args.screenshot, canvas_only=False)
        viewer.close()
        print(args.screenshot)
        return 0
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
