"""Centreline tracing: click points along the nerve, get a smooth tube of the brush diameter.

The points live in an ordinary napari Points layer, so they stay editable; moving, adding or
deleting one re-paints the tube (the previous tube's voxels that still hold the side's label
are cleared first). Each (re)paint is one undo step of the labels layer. With ``image`` given,
the curve is snapped to the bright nerve: consecutive points are joined by the brightest path
(:func:`~napari_ian.trainer.annotate.snapped_points`) before the spline is fitted.
"""
from __future__ import annotations

import numpy as np
from qtpy.QtCore import QTimer

from .trainer.annotate import snapped_points, tube_indices


class CenterlineTracer:
    """Keeps one Points layer and the tube it painted into one Labels layer."""

    def __init__(self, points_layer, labels_layer, diameter_mm: float, label: int, delay_ms: int = 300,
                 image=None):
        self.points = points_layer
        self.image = image  # an array on the labels' grid: snap to the bright nerve; None: plain spline
        self.labels = labels_layer
        self.diameter_mm = float(diameter_mm)
        self.label = int(label)
        self._painted = None
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self.paint)
        self.points.events.data.connect(lambda e: self._timer.start())

    def ordered_points(self) -> np.ndarray:
        """Clicked points in data coordinates of the labels layer, in clicking order."""
        world = np.asarray([self.points.data_to_world(p) for p in np.asarray(self.points.data)])
        if not len(world):
            return np.empty((0, 3))
        return np.asarray([self.labels.world_to_data(w) for w in world], dtype=float)

    def paint(self):
        """(Re)paint the tube through the current points; returns the number of voxels painted."""
        pts = self.ordered_points()
        data = self.labels.data
        with self.labels.block_history():
            if self._painted is not None and self._painted[0].size:
                still = np.asarray(data)[self._painted] == self.label
                old = tuple(a[still] for a in self._painted)
                if old[0].size:
                    self.labels.data_setitem(old, 0)
            if len(pts) < 2:
                self._painted = None
                return 0
            if self.image is not None:
                pts = snapped_points(self.image, pts, tuple(float(s) for s in self.labels.scale))
            idx = tube_indices(pts, self.diameter_mm, tuple(float(s) for s in self.labels.scale), data.shape)
            if idx[0].size:
                self.labels.data_setitem(idx, self.label)
        self._painted = idx
        return int(idx[0].size)
