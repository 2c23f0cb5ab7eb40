"""Review speed on a full-size volume (246 x 150 x 384 canonical = the issue's 384 x 246 x 150).

Reference: two smooth nerve tubes (2.5 mm) along a jaw-like course; prediction: the same tubes
shifted by a voxel with a few planted failures. Measured: a full per-slice recompute (both
sides, all metrics and categories), the update after one brush stroke (the slices a 2.5 mm
sphere dragged over 5 mm touches), and the label-free warnings and measurements.

Run: ``.venv/bin/python bench/bench_review.py``. Goals (issue 5): full <= 50 ms, update <= 10 ms.
"""
from __future__ import annotations

import os
import platform
import time

import numpy as np

from napari_ian.trainer.annotate import sphere_offsets, stroke_indices, tube_indices
from napari_ian.trainer.review import SliceReview, label_free_warnings, nerve_measurements


def best_ms(fn, reps=7):
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return 1000 * min(t), 1000 * float(np.median(t))


def main():
    shape, sp = (246, 150, 384), (0.8, 1.6, 0.429)
    ref = np.zeros(shape, np.uint8)
    for lab, x0 in ((1, 100), (2, 284)):
        pts = [(10, 110, x0 + (20 if lab == 1 else -20)), (80, 100, x0), (160, 80, x0 - (10 if lab == 1 else -10)),
               (230, 30, x0)]
        ref[tube_indices(pts, 2.5, sp, shape)] = lab
    pred = np.roll(ref, 1, axis=2)
    pred[100:104] = 0
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    rows = []
    rv = SliceReview(ref, pred)
    rows.append(("full recompute (both sides, all slices)", *best_ms(rv.recompute)))
    stroke = stroke_indices([(120, 90, 95), (120, 90, 107)], sphere_offsets(2.5, sp), shape, 0.8, sp)
    touched = np.unique(stroke[0])

    def one_stroke():
        pred[stroke] = 1
        rv.update_slices(touched)
        rv.rows()

    rows.append((f"update after one stroke ({len(touched)} slices) + table rows", *best_ms(one_stroke)))
    rows.append(("rows for the table (all flagged and positive slices)", *best_ms(rv.rows)))
    rows.append(("label-free warnings (prediction only)", *best_ms(lambda: label_free_warnings(pred, sp), 3)))
    rows.append(("nerve measurements (area, signal, distance)", *best_ms(lambda: nerve_measurements(pred, image, sp), 3)))
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}; volume {shape} (AP, SI, RL), {int((ref > 0).sum())} nerve voxels")
    print("| step | best ms | median ms |\n| --- | --- | --- |")
    for what, best, med in rows:
        print(f"| {what} | {best:.1f} | {med:.1f} |")


if __name__ == "__main__":
    main()
