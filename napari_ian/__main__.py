"""Launch napari with the napari-ian panels docked, the phantom open and three views on the nerve.

``python -m napari_ian [--predict] [--review] [--screenshot FILE.png]``

The window fills the screen, the panels are tabs of one dock (as when they are docked from the
Plugins menu) and the three views are fitted to the volume with their crosshair on the nerve.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def pump(seconds: float = 0.0) -> None:
    """Let Qt lay out and paint for ``seconds`` (at least once)."""
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while True:
        QApplication.processEvents()
        if time.perf_counter() >= end:
            return
        time.sleep(0.002)


def _run_predict_panel(viewer, predict, truth_layer):
    """Press the Predict panel's button and wait for its result layer."""
    n = len(viewer.layers)
    predict.run_btn.click()
    t0 = time.time()
    while len(viewer.layers) == n and time.time() - t0 < 300:
        pump(0.02)
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


def _run_review_panel(viewer, review, truth_layer):
    """Review the prediction against the ground truth (the panel goes to the first flagged slice)."""
    review.ref_combo.setCurrentText(truth_layer.name)
    review.pred_combo.setCurrentText(viewer.layers[-1].name)
    review.image_combo.setCurrentText(viewer.layers[0].name)
    review.run()


def view_report(viewer) -> dict:
    """What the window shows: its size and the screen's, and for each view whether the volume fits in it."""
    import numpy as np
    from qtpy.QtWidgets import QApplication

    from ._window import nerve_voxel, shown_orthoviews

    win = viewer.window._qt_window
    avail = QApplication.primaryScreen().availableGeometry()
    m = shown_orthoviews(viewer)
    views = [("main", viewer, viewer.window._qt_viewer.canvas.native)]
    if m is not None:
        views += [(name, w.vm_container.viewer_model, w.qt_viewer.canvas.native)
                  for name, w in (("right", m.right_widget), ("bottom", m.bottom_widget))]
    out = {"window": [win.width(), win.height()], "screen": [avail.width(), avail.height()], "views": {}}
    for name, vm, canvas in views:
        shown = list(vm.dims.displayed)
        extent = np.asarray(vm.layers.extent.world)[:, shown]
        size_px = (extent[1] - extent[0]) * vm.camera.zoom
        out["views"][name] = {"canvas": [canvas.height(), canvas.width()], "volume_px": size_px.round().tolist(),
                              "axes": [vm.dims.axis_labels[d] for d in shown]}
    labels = next((ly for ly in viewer.layers if ly._type_string == "labels" and np.asarray(ly.data).any()), None)
    if labels is not None:
        vox = np.round(labels.world_to_data(viewer.dims.point[-3:])).astype(int)
        out["point_label"] = int(np.asarray(labels.data)[tuple(vox)])
        out["nerve_voxel"] = nerve_voxel(labels.data).tolist()
        out["point_voxel"] = vox.tolist()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m napari_ian", description=__doc__)
    ap.add_argument("--screenshot", help="save a screenshot of the window to this PNG and exit")
    ap.add_argument("--report", help="with --screenshot: also write what the views show (JSON) to this file")
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
    docks = {name: viewer.window.add_plugin_dock_widget("napari-ian", name)
             for name in ("Case", "Predict", "Interactive", "Review", "Fine-tune", "Phantom")}
    pump(0.2)              # the panels tab themselves and the window fills the screen
    front = "Review" if args.review else "Predict" if args.predict else "Case"
    if not args.no_sample:
        image, truth = viewer.open_sample("napari-ian", "phantom")
        if args.predict:
            _run_predict_panel(viewer, docks["Predict"][1], truth)
            if args.review:
                _run_review_panel(viewer, docks["Review"][1], truth)
        if not args.no_views:
            # after the window has its size: views shown earlier keep the small window's proportions
            docks["Case"][1].show_three_views(labels=truth)
    docks[front][0].raise_()
    if args.screenshot:
        pump(1.0)
        close_toasts(viewer)
        pump(0.2)
        viewer.screenshot(args.screenshot, canvas_only=False)
        if args.report:
            import json
            from pathlib import Path

            Path(args.report).write_text(json.dumps(view_report(viewer), indent=1))
        viewer.close()
        print(args.screenshot)
        return 0
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
