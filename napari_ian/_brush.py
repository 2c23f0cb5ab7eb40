"""A spherical brush whose diameter is in millimetres, for napari Labels layers.

napari's own brush is a disk (or a ball in voxel units); on anisotropic MRN voxels that is not a
sphere in the patient. This brush paints the voxels whose centres lie within a true sphere in mm
(:func:`napari_ian.trainer.annotate.sphere_offsets`) along the mouse drag, as one undo step
(napari's Ctrl+Z / Ctrl+Shift+Z undo and redo it).
"""
from __future__ import annotations

import numpy as np
from napari.layers import Labels

from ._identity import same_layer, unwrap
from .trainer.annotate import sphere_offsets, stroke_indices


class SphereBrush:
    """Attach to Labels layers; while ``enabled``, a left-drag paints spheres of ``diameter_mm``.

    A layer can be attached with another ``target``: the drag is read on the layer it happens on
    and painted into the target (a side view's copy of a layer paints into the layer itself, so
    its undo history, autosave and review see the stroke).
    """

    def __init__(self, diameter_mm: float = 2.5, label: int = 1):
        self.diameter_mm = float(diameter_mm)
        self.label = int(label)
        self.erase = False
        self.enabled = False
        self._entries = []        # (layer, its drag callback)

    def attach(self, layer: Labels, target: Labels | None = None):
        if any(same_layer(layer, ly) for ly, _ in self._entries):
            return
        paint_into = layer if target is None else target

        def drag(on, event):
            return self._drag(on, event, paint_into)

        layer.mouse_drag_callbacks.append(drag)
        self._entries.append((layer, drag))
        if self.enabled:
            layer.mouse_pan = False

    def detach(self, layer: Labels):
        for entry in [e for e in self._entries if same_layer(layer, e[0])]:
            entry[0].mouse_pan = True
            if entry[1] in entry[0].mouse_drag_callbacks:
                entry[0].mouse_drag_callbacks.remove(entry[1])
            self._entries.remove(entry)

    def detach_all(self):
        for layer, _ in list(self._entries):
            self.detach(layer)

    @property
    def layers(self) -> list:
        return [layer for layer, _ in self._entries]

    def set_enabled(self, on: bool):
        self.enabled = bool(on)
        for layer, _ in self._entries:
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

    def _drag(self, layer, event, target):
        if not self.enabled or event.button != 1 or layer.ndim != 3:
            return
        last = np.asarray(layer.world_to_data(event.position), dtype=float)
        with target.block_history():  # the whole drag is one undo step
            self.paint(target, [last])
            yield
            while event.type == "mouse_move":
                p = np.asarray(layer.world_to_data(event.position), dtype=float)
                self.paint(target, [last, p])
                last = p
                yield


class BrushReach:
    """Shows the sphere brush's reach under the mouse (napari draws no 3D brush cursor).

    A ring of the sphere's diameter in mm, centred on the voxel the sphere would be centred on,
    drawn on the current slice; its label says how many slices the ball reaches before and after
    this one. The ring is a vispy visual on napari's canvas rather than a layer: moving a layer
    rebuilds napari's thumbnails and shaders (about 50 ms per mouse move on a software renderer),
    moving a visual costs almost nothing and leaves the layer list alone.
    """

    def __init__(self, viewer, brush: SphereBrush, labels_getter):
        self.viewer = viewer
        self.brush = brush
        self.labels_getter = labels_getter
        self._centre = None
        self._ring = self._text = None
        viewer.mouse_move_callbacks.append(self._moved)
        viewer.dims.events.current_step.connect(self._stepped)

    def _stepped(self, event):
        self.update()

    def close(self):
        """Take the ring off the canvas and stop following the mouse and the slices."""
        if self._moved in self.viewer.mouse_move_callbacks:
            self.viewer.mouse_move_callbacks.remove(self._moved)
        self.viewer.dims.events.current_step.disconnect(self._stepped)
        for node in (self._ring, self._text):
            if node is not None:
                node.parent = None
        self._ring = self._text = None

    def _moved(self, viewer, event):
        if self.brush.enabled:
            self.update(event.position)

    def text(self, labels, axis: int) -> str:
        """'d mm: +-k slices (x mm)' along ``axis`` (data axis of the labels layer)."""
        sp = float(labels.scale[axis])
        k = int(np.floor(self.brush.diameter_mm / 2.0 / sp + 1e-9))
        return f"{self.brush.diameter_mm:.1f} mm: \u00b1{k} slice{'s' if k != 1 else ''} (\u00b1{k * sp:.1f} mm)"

    def ring(self, labels, world) -> tuple | None:
        """(centre voxel, centre in world mm, slice axis), or None off the volume or not a 2D slice."""
        offset = self.viewer.dims.ndim - labels.ndim
        displayed = [d - offset for d in self.viewer.dims.displayed]
        if labels.ndim != 3 or len(displayed) != 2 or min(displayed) < 0:
            return None
        axis = ({0, 1, 2} - set(displayed)).pop()
        c = np.round(np.asarray(labels.world_to_data(world), dtype=float)[-3:])
        if np.any(c < 0) or np.any(c >= np.asarray(labels.data.shape)):
            return None
        return c.astype(int), np.asarray(labels.data_to_world(c), dtype=float), axis

    def _visuals(self):
        if self._ring is None:
            from vispy.scene.visuals import Ellipse, Text

            # napari's canvas has no public API; a panel's viewer is a proxy that warns on private access
            scene = unwrap(self.viewer).window._qt_viewer.canvas.view.scene
            self._ring = Ellipse(center=(0, 0), radius=(1, 1), color=(0, 0, 0, 0), border_color="yellow",
                                 border_width=1.5, parent=scene)
            self._text = Text("", color="yellow", font_size=9, anchor_x="left", anchor_y="bottom", parent=scene)
            for node in (self._ring, self._text):
                node.order = 10_000                      # above every layer
                node.set_gl_state("translucent", depth_test=False)
        return self._ring, self._text

    def update(self, world=None):
        labels = self.labels_getter() if self.brush.enabled else None
        ring = None
        if labels is not None:
            ring = self.ring(labels, self.viewer.cursor.position if world is None else world)
        if ring is None:
            self.hide()
            return
        self._centre, centre_w, axis = ring
        shown = [d for d in self.viewer.dims.displayed]
        y, x = centre_w[-3:][[d - (self.viewer.dims.ndim - 3) for d in shown]]   # vispy x = last displayed dim
        r = self.brush.diameter_mm / 2.0
        ellipse, text = self._visuals()
        # vispy re-tessellates on every property set: set only what changed
        if tuple(ellipse.center[:2]) != (x, y):
            ellipse.center = (x, y)
            text.pos = (x + 0.8 * r, y - 0.8 * r)
        if tuple(ellipse.radius) != (r, r):
            ellipse.radius = (r, r)
            text.pos = (x + 0.8 * r, y - 0.8 * r)
        label = self.text(labels, axis)
        if text.text != label:
            text.text = label
        if not ellipse.visible:
            ellipse.visible = text.visible = True

    def hide(self):
        self._centre = None
        if self._ring is not None:
            self._ring.visible = self._text.visible = False

    def drawn(self) -> tuple | None:
        """What the ring shows now: ((x, y) centre in world mm on the canvas, radius in mm, label), or None."""
        if not self.visible:
            return None
        return tuple(float(v) for v in self._ring.center[:2]), float(self._ring.radius[0]), self._text.text

    @property
    def visible(self) -> bool:
        return self._ring is not None and bool(self._ring.visible)

    def centre(self) -> np.ndarray | None:
        """The voxel (labels' data coordinates) the ring is centred on, or None when hidden."""
        return None if self._centre is None else self._centre.copy()
