"""Centreline tracing: the cost of moving one point, re-painting only its stretch vs the whole tube.

Twelve clicks along the right nerve of a full-size phantom (246 x 150 x 384, the issue's
384 x 246 x 150); one middle point is moved by 2 voxels. Timed: the tracer's re-paint after the
move (cached spans and snapped paths, only the changed stretch computed and written) against
computing the whole tube again (what the tracer did before), with and without snapping to the
bright nerve. No GUI: the layers are napari layers without a viewer.

Run: ``.venv/bin/python bench/bench_trace.py``.
"""
from __future__ import annotations

import os
import platform
import time

import numpy as np


def main():
    from napari.layers import Labels, Points
    from qtpy.QtWidgets import QApplication

    from napari_ian._trace import CenterlineTracer
    from napari_ian.sample_data.phantom import make_phantom
    from napari_ian.trainer.annotate import snapped_points, tube_indices

    app = QApplication.instance() or QApplication([])  # the tracer's debounce timer needs one
    spacing, shape = (0.8, 1.6, 0.429), (246, 150, 384)
    image, truth, sp, info = make_phantom(0, spacing=spacing, fov=tuple(n * s for n, s in zip(shape, spacing)))
    cl = np.asarray(info["centerline_right"])
    clicks = cl[np.linspace(0, len(cl) - 1, 12).astype(int)].astype(float)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}; volume {image.shape}, 12 points, diameter 2.5 mm")
    print("| move one point | whole tube again | this stretch only (tracer) |\n| --- | --- | --- |")
    for snap in (False, True):
        labels = Labels(np.zeros(image.shape, np.uint8), scale=sp)
        points = Points(clicks, scale=sp)
        tracer = CenterlineTracer(points, labels, 2.5, 1, delay_ms=100_000, image=image if snap else None)
        tracer.paint()
        moved = clicks.copy()
        moved[6] += [0, 2, 0]
        t = time.perf_counter()
        pts = snapped_points(image, moved, sp) if snap else moved
        tube_indices(pts, 2.5, sp, image.shape)
        whole = time.perf_counter() - t
        points.data = moved
        t = time.perf_counter()
        tracer.paint()
        local = time.perf_counter() - t
        print(f"| {'snapped to the bright nerve' if snap else 'plain spline'} | {whole * 1000:.0f} ms "
              f"(+ writing the tube) | {local * 1000:.0f} ms incl. writing {tracer.last_changed.size} voxels |")
    del app


if __name__ == "__main__":
    main()
