"""A spherical brush whose diameter is in millimetres, for napari Labels layers.

napari's own brush is a disk (or a ball in voxel units); on anisotropic MRN voxels that is not a
sphere in the patient. This brush paints the voxels whose centres lie within a true sphere in mm
(:func:`napari_ian.trainer.annotate.sphere_offsets`) along the mouse drag, as one undo step
(napari's Ctrl+Z / Ctrl+Shift+Z undo and redo it).
"""
from __future__ import annotations

import numpy as np
from napari.layers import Labels

from .trainer.annotate import sphere_offsets, stroke_indices


class SphereBrush:
    """Attach to Labels layers; while ``enabled``, a left-drag paints spheres of ``diameter_mm``."""

    def __init__(self, diameter_mm: float = 2.5, label: int = 1):
        self.diameter_mm = float(diameter_mm)
        self.label = int(label)
        self.erase = False
        self.enabled = False
        self._layers = []

    def attach(self, layer: Labels):
        if layer in self._layers:
            return
        layer.mouse_drag_callbacks.append(self._drag)
        self._layers.append(layer)

    def detach(self, layer: Labels):
        if layer in self._layers:
            layer.mouse_drag_callbacks.remove(self._drag)
            self._layers.remove(layer)

    def set_enabled(self, on: bool):
        self.enabled = bool(on)
        for layer in self._layers:
            # our drag paints; the camera must not pan under it, and napari's own brush must rest
            layer.mouse_pan = not self.enabled
            if self.enabled:
                layer.mode = "pan_zoom"

    def offsets(self, layer) -> np.ndarray:
        return sphere_offsets(self.diameter_mm, tuple(float(s) for s in layer.scale))

    def paint(self, layer, points):
        """Paint (or erase) spheres along ``points`` (data coordinates) as part of the current stroke."""
        idx = stroke_indices(points, self.offsets(layer), layer.data.shape,
                             step_mm=self.diameter_mm / 3.0, spacing=tuple(layer.scale))
        if idx[0].size:
            layer.data_setitem(idx, 0 if self.erase else self.label)
        return idx

    def _drag(self, layer, event):
        if not self.enabled or event.button != 1 or layer.ndim != 3:
            return
        last = np.asarray(layer.world_to_data(event.position), dtype=float)
        with layer.block_history():  # the whole drag is one undo step
            self.paint(layer, [last])
            yield
            while event.type == "mouse_move":
                p = np.asarray(layer.world_to_data(event.position), dtype=float)
                self.paint(layer, [last, p])
                last = p
                yield
