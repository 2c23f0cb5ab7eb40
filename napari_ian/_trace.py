"""Centreline tracing: click points along the nerve, get a smooth tube of the brush diameter.

The points live in an ordinary napari Points layer, so they stay editable. The curve is local
(each span depends on the four points around it), so moving, adding or deleting a point
re-paints only the stretch it shapes: the spans whose control points changed are recomputed,
voxels that left the tube are cleared (where they still hold the side's label) and the new
stretch is painted; the rest of the tube, and any edits made to it by hand, are left alone.
Each change is one undo step of the labels layer. With ``image`` given, the curve is snapped to
the bright nerve: consecutive points are joined by the brightest path
(:func:`~napari_ian.trainer.annotate.snapped_points`), each pair's path computed once.
"""
from __future__ import annotations

import numpy as np
from qtpy.QtCore import QTimer

from .trainer.annotate import snap_pair, snapped_points, span_controls, span_tube


class CenterlineTracer:
    """Keeps one Points layer and the tube it painted into one Labels layer."""

    def __init__(self, points_layer, labels_layer, diameter_mm: float, label: int, delay_ms: int = 300,
                 image=None):
        self.points = points_layer
        self.image = image  # an array on the labels' grid: snap to the bright nerve; None: plain spline
        self.labels = labels_layer
        self.diameter_mm = float(diameter_mm)
        self.label = int(label)
        self._painted = np.empty(0, np.int64)     # flat indices of the tube as last painted
        self._spans = {}                          # span key -> flat indices of its tube
        self._pairs = {}                          # (a, b) -> snapped nodes between two clicks
        self.last_changed = np.empty(0, np.int64)  # flat indices written by the last paint (for tests)
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self.paint)
        self.points.events.data.connect(self._points_moved)

    def _points_moved(self, event):
        self._timer.start()

    def close(self):
        """Stop following the points (the painted tube stays)."""
        self._timer.stop()
        try:
            self.points.events.data.disconnect(self._points_moved)
        except (RuntimeError, ValueError, TypeError):
            pass

    def ordered_points(self) -> np.ndarray:
        """Clicked points in data coordinates of the labels layer, in clicking order."""
        world = np.asarray([self.points.data_to_world(p) for p in np.asarray(self.points.data)])
        if not len(world):
            return np.empty((0, 3))
        return np.asarray([self.labels.world_to_data(w) for w in world], dtype=float)

    def _span_key(self, controls):
        return (round(self.diameter_mm, 4),) + tuple(np.round(np.asarray(controls, dtype=float), 4).ravel())

    def _pair(self, a, b):
        key = tuple(np.round(a, 4)) + tuple(np.round(b, 4))
        if key not in self._pairs:
            self._pairs[key] = snap_pair(self.image, a, b, tuple(float(s) for s in self.labels.scale))
        return self._pairs[key]

    def paint(self):
        """Re-paint the stretches of the tube the points changed; returns the number of voxels written."""
        pts = self.ordered_points()
        data = self.labels.data
        shape, sp = data.shape, tuple(float(s) for s in self.labels.scale)
        if self.image is not None and len(pts) >= 2:
            pts = snapped_points(self.image, pts, sp, pair=self._pair)
        spans, kept, fresh = {}, [], []
        for controls in span_controls(pts, sp) if len(pts) >= 2 else []:
            key = self._span_key(controls)
            if key in self._spans:
                spans[key] = self._spans[key]
                kept.append(spans[key])
            else:
                spans[key] = span_tube(controls, self.diameter_mm, sp, shape)
                fresh.append(spans[key])
        self._spans = spans
        empty = np.empty(0, np.int64)
        new = np.unique(np.concatenate(kept + fresh)) if spans else empty
        unchanged = np.unique(np.concatenate(kept)) if kept else empty
        leaving = np.setdiff1d(self._painted, new, assume_unique=True)
        if leaving.size:   # only voxels that still hold this side's label (the user may have repainted)
            leaving = leaving[np.asarray(data).ravel()[leaving] == self.label]
        arriving = np.setdiff1d(np.unique(np.concatenate(fresh)) if fresh else empty, unchanged, assume_unique=True)
        with self.labels.block_history():
            if leaving.size:
                self.labels.data_setitem(np.unravel_index(leaving, shape), 0)
            if arriving.size:
                self.labels.data_setitem(np.unravel_index(arriving, shape), self.label)
        self._painted = new
        self.last_changed = np.union1d(leaving, arriving)
        return int(self.last_changed.size)
