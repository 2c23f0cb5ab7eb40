"""The annotator's GUI path on a full-size volume: brush latency, GUI vs CLI prediction, memory.

A phantom made at the paper's matrix (canonical AP x SI x RL = 246 x 150 x 384, i.e. the issue's
384 x 246 x 150 at 0.43 x 0.8 x 1.6 mm) is written as NIfTI and opened through the plugin's
reader in a shown viewer. Measured in one run:

* sphere-brush stroke latency: real mouse events on the canvas, per mouse-move event including
  napari's repaint (and the compute part alone);
* one prediction through the Predict panel (click to layer added) vs ``ian predict`` on the same
  file in a fresh process, and the longest stall of the GUI event loop while the panel predicts;
* resident memory of the viewer process before the image, with it, with labels, with the prediction.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python bench/bench_gui.py``
(``make bench-gui``). Prints a Markdown table for BENCHMARKS.md.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

import guikit  # bench/guikit.py, next to this script


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def main():
    from qtpy.QtCore import Qt, QTimer
    from qtpy.QtTest import QTest


    tmp = Path(tempfile.mkdtemp(prefix="ian-bench-"))
    os.environ["NAPARI_IAN_HOME"] = str(tmp / "home")
    src = tmp / "case.nii.gz"
    # made in another process, so this one's memory figures hold only what the viewer keeps
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--make", str(src)], check=True)
    print(f"phantom written in {time.perf_counter() - t0:.1f} s")

    rows = []
    viewer, app = guikit.shown_viewer(1500, 1000)

    def pump(seconds=0.0):
        guikit.pump(app, seconds)

    pump(1.0)
    m0 = rss_mb()
    [img] = viewer.open(str(src), plugin="napari-ian")
    pump(1.0)
    m1 = rss_mb()
    case = guikit.dock(viewer, "Case")
    labels = case.new_labels()
    viewer.layers.selection.active = labels
    pump(0.5)
    m2 = rss_mb()

    # -- brush latency: a drag of real mouse events across the coronal slice ------------------
    case.brush_box.brush_diameter.setValue(2.5)
    case.brush_box.brush_check.setChecked(True)
    viewer.dims.current_step = (120, 0, 0)
    canvas = viewer.window._qt_viewer.canvas.native
    pump(0.5)

    def pos(si, rl):
        return guikit.canvas_point(viewer, labels, si, rl)

    path = [(60 + 20 * np.sin(t), 100 + 180 * t / 6.0) for t in np.linspace(0, 6, 61)]
    # the same moves with the brush off: what one repaint costs on this machine's renderer
    baseline = []
    case.brush_box.brush_check.setChecked(False)
    labels.mode, labels.mouse_pan = "pan_zoom", False
    for p in path[1:]:
        t = time.perf_counter()
        QTest.mouseMove(canvas, pos(*p), delay=-1)
        app.processEvents()
        canvas.repaint()
        baseline.append(time.perf_counter() - t)
    case.brush_box.brush_check.setChecked(True)
    QTest.mouseMove(canvas, pos(*path[0]))
    pump(0.2)
    QTest.mousePress(canvas, Qt.LeftButton, Qt.NoModifier, pos(*path[0]))
    pump()
    per_move = []
    for p in path[1:]:
        t = time.perf_counter()
        QTest.mouseMove(canvas, pos(*p), delay=-1)
        app.processEvents()          # napari handles the event and repaints the changed slice
        canvas.repaint()
        per_move.append(time.perf_counter() - t)
    QTest.mouseRelease(canvas, Qt.LeftButton, Qt.NoModifier, pos(*path[-1]))
    pump(0.2)
    painted = int((np.asarray(labels.data) > 0).sum())
    brush = case.brush_box.brush
    compute = []
    for a, b in zip(path[:-1], path[1:]):
        t = time.perf_counter()
        with labels.block_history():
            brush.paint(labels, [np.array([120, *a]), np.array([120, *b])])
        compute.append(time.perf_counter() - t)
    case.brush_box.brush_check.setChecked(False)
    pm = np.asarray(per_move) * 1000
    rows.append(("Sphere brush 2.5 mm, one mouse-move event incl. repaint (60 events)",
                 f"median {np.median(pm):.1f} ms, p95 {np.percentile(pm, 95):.1f} ms, max {pm.max():.1f} ms"))
    rows.append(("Same mouse moves with the brush off (event + repaint only: the renderer's floor)",
                 f"median {np.median(baseline) * 1000:.1f} ms"))
    rows.append(("Sphere brush, compute + write of one segment (no repaint)",
                 f"median {np.median(compute) * 1000:.2f} ms"))
    print(f"painted {painted} voxels")
    pump(0.5)
    m3 = rss_mb()

    # -- prediction through the panel, with an event-loop heartbeat --------------------------
    pw = guikit.dock(viewer, "Predict")
    pw.device_combo.setCurrentText("cpu")
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    n_before = len(viewer.layers)
    t = time.perf_counter()
    pw.run_btn.click()
    while len(viewer.layers) == n_before:
        app.processEvents()
        time.sleep(0.005)
    gui_s = time.perf_counter() - t
    timer.stop()
    gaps = np.diff(ticks)
    pump(0.5)
    m4 = rss_mb()
    out = tmp / "cli_pred.nii.gz"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "napari_ian.trainer.cli", "predict", str(src), "--out", str(out),
                    "--device", "cpu", "--quiet"], check=True, capture_output=True)
    cli_s = time.perf_counter() - t
    from napari_ian.trainer.modelfile import load_model
    from napari_ian.trainer.predict import predict_volume
    from napari_ian.trainer.registry import resolve_model

    t = time.perf_counter()
    model, meta = load_model(resolve_model("ian-default"))
    predict_volume(np.asarray(img.data), model, meta, tuple(img.scale), device="cpu")
    direct_s = time.perf_counter() - t
    rows.append(("Predict one volume (ian-default, CPU): Predict panel, click to layer", f"{gui_s:.1f} s"))
    rows.append(("Same volume: load model + `predict_volume` in this process (no GUI)", f"{direct_s:.1f} s"))
    rows.append(("Same volume: `ian predict` in a new process (start, read, predict, write)", f"{cli_s:.1f} s"))
    rows.append(("Longest GUI event-loop stall while the panel predicts (20 ms heartbeat)",
                 f"{gaps.max() * 1000:.0f} ms (median {np.median(gaps) * 1000:.0f} ms)"))
    rows.append(("Viewer process RSS: empty viewer", f"{m0:.0f} MB"))
    rows.append(("+ image opened (float32, 55 MB of voxels)", f"+{m1 - m0:.0f} MB"))
    rows.append(("+ Case panel and empty IAN labels (uint8, 14 MB)", f"+{m2 - m1:.0f} MB"))
    rows.append(("+ one brush drag (60 events, undo history)", f"+{m3 - m2:.0f} MB"))
    rows.append(("+ model run and prediction layer", f"+{m4 - m3:.0f} MB (total {m4:.0f} MB)"))

    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    print("| What | Figure |\n| --- | --- |")
    for what, fig in rows:
        print(f"| {what} | {fig} |")
    viewer.close()


def make_volume(path):
    from napari_ian.sample_data.dataset import phantom_geometry
    from napari_ian.sample_data.phantom import make_phantom
    from napari_ian.trainer.io_nifti import write_nifti

    spacing, shape = (0.8, 1.6, 0.429), (246, 150, 384)
    image, _labels, sp, _info = make_phantom(0, spacing=spacing, fov=tuple(n * s for n, s in zip(shape, spacing)))
    print(f"phantom {image.shape} at {tuple(round(s, 3) for s in sp)} mm")
    write_nifti(path, image, phantom_geometry(image.shape, sp), dtype="float32")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--make":
        make_volume(sys.argv[2])
    else:
        main()
