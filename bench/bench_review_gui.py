"""The Review panel on a full-size volume: how long each review action holds the GUI thread.

A phantom at the paper's matrix (canonical AP x SI x RL = 246 x 150 x 384, the issue's
384 x 246 x 150) is shown with its ground truth as the reference and the bundled model's
prediction, in a shown 1500 x 1000 viewer with the Case and Review panels. Each action is done
the way a reviewer does it (button clicks, keys on the canvas, clicks on a table row or the
strip, a brush drag of real mouse events); a 10 ms heartbeat timer runs on the GUI thread and the
longest gap between its ticks, from the action until 0.8 s after it (which covers the deferred
table update and the 3D-metrics worker that starts 0.4 s after an edit), is what the GUI was blocked.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python bench/bench_review_gui.py``
(``make bench-review``). Goal (issue 5): no review action blocks the GUI longer than 0.2 s.
"""
from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import guikit  # bench/guikit.py, next to this script


def main():
    from qtpy.QtCore import QPoint, Qt, QTimer
    from qtpy.QtTest import QTest

    from napari_ian.sample_data.phantom import make_phantom
    from napari_ian.trainer.modelfile import load_model
    from napari_ian.trainer.predict import predict_volume
    from napari_ian.trainer.registry import resolve_model

    os.environ["NAPARI_IAN_HOME"] = tempfile.mkdtemp(prefix="ian-bench-review-")
    spacing, shape = (0.8, 1.6, 0.429), (246, 150, 384)
    image, truth, sp, _ = make_phantom(0, spacing=spacing, fov=tuple(n * s for n, s in zip(shape, spacing)))
    model, meta = load_model(resolve_model("ian-default"))
    pred = predict_volume(image, model, meta, sp, device="cpu").labels
    print(f"volume {image.shape} at {tuple(round(s, 3) for s in sp)} mm; "
          f"{int((truth > 0).sum())} reference and {int((pred > 0).sum())} predicted nerve voxels")

    viewer, app = guikit.shown_viewer(1500, 1000)

    def pump(seconds=0.0):
        guikit.pump(app, seconds)

    img = viewer.add_image(image, name="phantom MRN", scale=sp)
    viewer.add_labels(truth, name="ground truth", scale=sp)
    layer = viewer.add_labels(pred, name="ian-default prediction", scale=sp)
    case = guikit.dock(viewer, "Case")
    w = guikit.dock(viewer, "Review")
    w.ref_combo.setCurrentText("ground truth")
    w.pred_combo.setCurrentText(layer.name)
    w.image_combo.setCurrentText(img.name)
    pump(1.0)

    ticks = []
    beat = QTimer()
    beat.timeout.connect(lambda: ticks.append(time.perf_counter()))
    beat.start(10)
    rows = []

    def measure(what, action, after=0.8):
        pump(0.3)
        ticks.clear()
        t0 = time.perf_counter()
        action()
        call = time.perf_counter() - t0
        pump(after)
        gaps = np.diff([t0] + ticks)
        rows.append((what, call * 1000, gaps.max() * 1000))

    canvas = viewer.window._qt_viewer.canvas.native

    def key(k):
        return lambda: QTest.keyClick(canvas, k, Qt.ShiftModifier)

    measure("Review button (full recompute, table, strip)", w.run_btn.click, after=1.5)
    n_flagged = len(w.flagged_slices())
    measure("Shift+N: next flagged slice (dims + centre on the nerve)", key(Qt.Key_N))
    measure("Shift+N again", key(Qt.Key_N))
    measure("Shift+P: previous flagged slice", key(Qt.Key_P))

    def click_row():
        rect = w.table.visualItemRect(w.table.item(min(3, w.table.rowCount() - 1), 1))
        QTest.mouseClick(w.table.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())

    measure("Click a table row", click_row)
    measure("Click the strip", lambda: QTest.mouseClick(w.strip, Qt.LeftButton, Qt.NoModifier,
                                                        QPoint(w.strip.width() // 3, 5)))
    measure("Shift+A: accept the slice (status saved)", key(Qt.Key_A))
    measure("Filter: all slices with nerve (table refilled)", lambda: w.filter_combo.setCurrentIndex(1))
    measure("Sort the table by DSC (header click)", lambda: w.table.sortItems(2))

    # a brush stroke on the prediction, with real mouse events, on the current (flagged) slice
    sl = int(w.flagged_slices()[0])
    viewer.dims.set_current_step(0, sl)
    viewer.layers.selection.active = layer
    case.brush_box.brush_diameter.setValue(2.5)
    case.brush_box.brush_side.setCurrentIndex(0)   # right
    case.brush_box.brush_check.setChecked(True)
    pump(0.5)

    def pos(si, rl):
        return guikit.canvas_point(viewer, layer, si, rl)

    centre = np.argwhere(truth[sl] > 0).mean(axis=0)

    def stroke():
        path = [centre + (0, d) for d in np.linspace(-4, 4, 9)]
        QTest.mouseMove(canvas, pos(*path[0]))
        QTest.mousePress(canvas, Qt.LeftButton, Qt.NoModifier, pos(*path[0]))
        for p in path[1:]:
            QTest.mouseMove(canvas, pos(*p), delay=-1)
            app.processEvents()
        QTest.mouseRelease(canvas, Qt.LeftButton, Qt.NoModifier, pos(*path[-1]))

    w.last_updated = set()
    measure("Brush stroke (9 mouse moves, repaint included) + live table/strip update", stroke, after=1.5)
    stroke_rows = sorted(w.last_updated)
    case.brush_box.brush_check.setChecked(False)
    measure("Ctrl+Z: undo the stroke (recompute the changed slices)",
            lambda: QTest.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier), after=1.5)
    out = Path(os.environ["NAPARI_IAN_HOME"]) / "review.csv"
    measure("Export CSV (all rows)", lambda: w.export_csv(out))
    measure("Measurements window (area, signal, distance; plot drawn in a worker)", w.show_measurements, after=4.0)
    assert w.measure_window is not None, "the measurements window did not open within 4 s"
    w.measure_window.close()
    w.ref_combo.setCurrentText("(none: warnings from the prediction alone)")
    measure("Review without a reference (label-free warnings)", w.run_btn.click)
    beat.stop()

    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}; {n_flagged} flagged slices; "
          f"stroke recomputed slices {stroke_rows}")
    print("| Review action | call on the GUI thread | longest GUI stall (10 ms heartbeat) |\n| --- | --- | --- |")
    for what, call, stall in rows:
        print(f"| {what} | {call:.0f} ms | {stall:.0f} ms |")
    viewer.close()


if __name__ == "__main__":
    main()
