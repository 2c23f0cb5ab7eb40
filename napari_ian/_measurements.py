"""The nerve measurements window: area and signal along the nerve, per-region means, a CSV.

The measurements (cross-sectional area in mm², mean and max signal, distance along the centreline)
and their plot are computed in a worker, matplotlib's import included; the window only shows the
finished picture, so opening it never blocks napari.
"""
from __future__ import annotations

import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFileDialog, QLabel, QPushButton, QVBoxLayout, QWidget

from .trainer.review import measurements_by_region, nerve_measurements, rows_to_csv


def measure_in_worker(pred_data, image_data, spacing, axis: int, marker):
    """A worker (not started) returning ``(rows, regions, picture)``; it reads copies of the arrays."""
    # copies: the annotator may paint while the worker reads
    pdata, idata, sp = np.asarray(pred_data).copy(), np.asarray(image_data), tuple(spacing)

    @thread_worker(ignore_errors=True)
    def work():
        # matplotlib's import (~0.5 s) and the drawing stay off the GUI thread
        from .trainer.review_plot import measurements_rgba

        rows = nerve_measurements(pdata, idata, sp, axis)
        rgba = measurements_rgba(rows, marker)
        # Qt's 32-bit RGB byte order (B, G, R, 255): the GUI thread then makes a pixmap with no
        # conversion. A conversion would be spread over Qt's global thread pool, whose threads
        # napari's workers occupy while they wait for the GIL the GUI thread holds: a deadlock.
        bgrx = np.ascontiguousarray(rgba[..., [2, 1, 0, 3]])
        bgrx[..., 3] = 255
        return rows, measurements_by_region(rows, marker), bgrx

    return work()


class MeasurementsWindow(QWidget):
    """Area and mean signal along the nerve (a picture drawn in the worker), region means, CSV export."""

    def __init__(self, rows, regions, marker, bgrx: np.ndarray):
        super().__init__()
        from qtpy.QtGui import QImage, QPixmap

        self.rows = rows
        self.setWindowTitle("napari-ian: nerve measurements")
        self._pixels = bgrx          # QImage borrows this buffer
        h, w = bgrx.shape[:2]
        pix = QPixmap.fromImage(QImage(bgrx.data, w, h, 4 * w, QImage.Format_RGB32))
        self.plot = QLabel()
        self.plot.setPixmap(pix)
        self.plot.setAlignment(Qt.AlignCenter)
        text = []
        for side, groups in regions.items():
            for name, g in groups.items():
                text.append(f"{side}, {name}: {g['slices']} slices, area {g['mean_area_mm2']:.2f} mm², "
                            f"signal {g['mean_signal']:.3g}")
        lines = text or ["No nerve in the prediction."]
        lines.append("<i>Areas are cut by the slices: where the nerve runs steeply through them (the ramus) "
                     "the cut is oblique and the area larger than the nerve's true cross-section.</i>")
        if marker is None:
            lines.append("<i>Set the loop-region slice to split the nerve into regions.</i>")
        info = QLabel("<br>".join(lines))
        info.setWordWrap(True)
        self.csv_btn = QPushButton("Save CSV...")
        self.csv_btn.clicked.connect(self._save_dialog)
        lay = QVBoxLayout(self)
        lay.addWidget(self.plot, 1)
        lay.addWidget(info)
        lay.addWidget(self.csv_btn)

    def save_csv(self, path) -> str:
        from .trainer.atomic import atomic_write_text

        atomic_write_text(path, rows_to_csv(self.rows))
        return str(path)

    def _save_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save measurements", "nerve_measurements.csv", "CSV (*.csv)")
        if path:
            try:
                self.save_csv(path)
            except OSError as exc:
                show_error(f"napari-ian: {path}: {exc.strerror or exc}")
