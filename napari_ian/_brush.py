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


class BrushReach:
    """Shows the sphere brush's reach under the mouse (napari draws no 3D brush cursor).

    A ring of the sphere's diameter in mm, centred on the voxel the sphere would be centred on,
    drawn on the current slice; its label says how many slices the ball reaches before and after
    this one. It lives in a Shapes layer that never becomes the active layer, so painting goes on
    in the labels layer below it.
    """

    NAME = "sphere brush reach"

    def __init__(self, viewer, brush: SphereBrush, labels_getter):
        self.viewer = viewer
        self.brush = brush
        self.labels_getter = labels_getter
        self.layer = None
        self._last = None
        viewer.mouse_move_callbacks.append(self._moved)
        viewer.dims.events.current_step.connect(lambda e: self.update())

    def _moved(self, viewer, event):
        if self.brush.enabled:
            self.update(event.position)

    def text(self, labels, axis: int) -> str:
        """'reaches +-k slices (x mm)' along ``axis`` (data axis of the labels layer)."""
        sp = float(labels.scale[axis])
        k = int(np.floor(self.brush.diameter_mm / 2.0 / sp + 1e-9))
        return f"{self.brush.diameter_mm:.1f} mm: \u00b1{k} slice{'s' if k != 1 else ''} (\u00b1{k * sp:.1f} mm)"

    def ring(self, labels, world) -> tuple | None:
        """(4 corners of the ellipse in the labels' data coordinates, text), or None off-volume."""
        offset = self.viewer.dims.ndim - labels.ndim
        displayed = [d - offset for d in self.viewer.dims.displayed]
        if labels.ndim != 3 or len(displayed) != 2 or min(displayed) < 0:
            return None
        axis = ({0, 1, 2} - set(displayed)).pop()
        c = np.round(np.asarray(labels.world_to_data(world), dtype=float)[-3:])
        if np.any(c < 0) or np.any(c >= np.asarray(labels.data.shape)):
            return None
        r = self.brush.diameter_mm / 2.0 / np.asarray(labels.scale, dtype=float)
        a, b = displayed
        corners = np.repeat(c[None], 4, axis=0)
        for i, (sa, sb) in enumerate([(-1, -1), (-1, 1), (1, 1), (1, -1)]):
            corners[i, a] += sa * r[a]
            corners[i, b] += sb * r[b]
        return corners, self.text(labels, axis)

    def update(self, world=None):
        labels = self.labels_getter() if self.brush.enabled else None
        if labels is None:
            self.hide()
            return
        world = self.viewer.cursor.position if world is None else world
        ring = self.ring(labels, world)
        if ring is None:
            self.hide()
            return
        corners, text = ring
        key = (tuple(corners.ravel()), text, tuple(self.viewer.dims.displayed), id(labels))
        if key == self._last and self.layer is not None and self.layer.visible:
            return
        self._last = key
        if self.layer is None or self.layer not in self.viewer.layers:
            self._make_layer(labels)
        self.layer.scale = labels.scale
        self.layer.translate = labels.translate
        self.layer.data = [corners]
        self.layer.shape_type = ["ellipse"]
        self.layer.edge_width = [0.08]   # data units (~0.1 mm here): a thin ring that hides nothing
        self.layer.features = {"reach": [text]}
        self.layer.visible = True

    def hide(self):
        if self.layer is not None and self.layer in self.viewer.layers:
            self.layer.visible = False

    def _make_layer(self, labels):
        active = self.viewer.layers.selection.active
        self.layer = self.viewer.add_shapes(
            name=self.NAME, ndim=3, scale=labels.scale, translate=labels.translate, edge_color="yellow",
            face_color="transparent", edge_width=0.08, opacity=0.9,
            text={"string": "{reach}", "anchor": "upper_left", "color": "yellow", "size": 9},
            features={"reach": []})
        self.layer.editable = False
        if active is not None:  # keep painting where the user was painting
            self.viewer.layers.selection.active = active
