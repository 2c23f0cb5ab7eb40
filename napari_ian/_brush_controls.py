"""The Case panel's sphere-brush box: brush on/off, diameter, side, eraser, centreline tracing, keys.

It owns the :class:`~napari_ian._brush.SphereBrush` (attached to every Labels layer, and to their
copies in the three-view side views), the ring under the mouse, the tracer and the keyboard
shortcuts; everything it attaches to the viewer is registered with its panel, so closing the
Case panel leaves no brush, ring, callback or key behind.
"""
from __future__ import annotations

import warnings

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QPushButton

from ._layers import on_grid_of
from ._panel_layout import wrapping_label

TRACE_KEY = "ian_trace"       # metadata of the points layers that trace a centreline
SIDE_COLOURS = {1: "yellow", 2: "cyan"}


class BrushControls(QGroupBox):
    """The brush box of ``panel`` (a Case panel: ``target_labels()`` and ``selected_image()``)."""

    # keyboard shortcuts of the annotation tools (viewer-wide while the Case panel is open)
    SHORTCUTS = (
        ("Shift+B", "sphere brush on / off", "toggle_brush"),
        ("Shift+E", "eraser on / off", "toggle_eraser"),
        ("Shift+R", "side: right IAN (1)", "side_right"),
        ("Shift+L", "side: left IAN (2)", "side_left"),
        ("Shift+Up", "brush diameter + 0.5 mm", "diameter_up"),
        ("Shift+Down", "brush diameter - 0.5 mm", "diameter_down"),
        ("Shift+T", "trace a centreline", "start_trace"),
    )

    def __init__(self, panel):
        from ._brush import BrushReach, SphereBrush

        super().__init__("Sphere brush in mm (napari-ian)")
        self.panel = panel
        self.viewer = panel.viewer
        self.brush = SphereBrush()
        self.tracers = []            # every centreline traced while the panel is open (each follows its points)
        self._warned = False
        self.brush_check = QCheckBox("paint spheres with a left-drag")
        self.brush_diameter = QDoubleSpinBox()
        self.brush_diameter.setRange(0.3, 15.0)
        self.brush_diameter.setSingleStep(0.5)
        self.brush_diameter.setSuffix(" mm")
        self.brush_diameter.setValue(self.brush.diameter_mm)
        self.brush_side = QComboBox()
        self.brush_side.addItems(["1: right IAN", "2: left IAN"])
        self.brush_erase = QCheckBox("eraser")
        form = QFormLayout(self)
        form.addRow(self.brush_check)
        form.addRow("Diameter", self.brush_diameter)
        form.addRow("Side", self.brush_side)
        form.addRow(self.brush_erase)
        self.hint = wrapping_label(
            "Paints spheres in mm on the anisotropic voxels, in the main view and in the three views' side "
            "views; the yellow ring under the mouse is the sphere's section on this slice. napari's own brush "
            "(the layer controls, top left) is another tool: a disk in voxels.")
        form.addRow(self.hint)
        self.trace_btn = QPushButton("Trace centreline")
        self.trace_btn.setToolTip("Add points along the nerve (in any order along it, end to end); a smooth tube "
                                  "of this diameter is painted through them and follows when you move a point")
        self.trace_btn.clicked.connect(self.start_trace)
        self.snap_check = QCheckBox("snap the curve to the bright nerve")
        self.snap_check.setToolTip("Join the points by the brightest path through the image (the nerve is bright "
                                   "on MR neurography) instead of a plain spline; fewer points are needed")
        form.addRow(self.trace_btn)
        form.addRow(self.snap_check)
        keys = [(k, what) for k, what, _ in self.SHORTCUTS] + [("Ctrl+Z / Ctrl+Shift+Z", "undo / redo a stroke")]
        rows = "".join(f"<tr><td><b>{k}</b>&nbsp;</td><td>{what}</td></tr>" for k, what in keys)
        self.shortcuts_label = wrapping_label(f"<table cellspacing=0>{rows}</table>")
        form.addRow(self.shortcuts_label)
        self.brush_check.toggled.connect(self._brush_toggled)
        self.brush_diameter.valueChanged.connect(self._diameter_changed)
        self.brush_side.currentIndexChanged.connect(lambda i: setattr(self.brush, "label", i + 1))
        self.brush_erase.toggled.connect(lambda on: setattr(self.brush, "erase", bool(on)))
        for layer in self.viewer.layers:
            if isinstance(layer, Labels):
                self.brush.attach(layer)
        panel.listen(self.viewer.layers.events.inserted, self._inserted)
        panel.listen(self.viewer.layers.events.removed, self._removed)
        # the ring needs napari's canvas: the session holds the viewer itself, not a proxy of it
        self.reach = BrushReach(panel.session.viewer, self.brush, self._paint_target)
        panel.on_close(self.reach.close)
        panel.on_close(self.brush.detach_all)
        panel.on_close(self._stop_tracing)
        panel.add_callback(self.viewer.mouse_drag_callbacks, self._drag_not_on_labels)
        panel.bind_keys(self.SHORTCUTS, self)

    def _inserted(self, event):
        if isinstance(event.value, Labels):
            self.brush.attach(event.value)

    def _removed(self, event):
        if isinstance(event.value, Labels):
            self.brush.detach(event.value)

    # -- shortcut actions --------------------------------------------------------------------------------
    def toggle_brush(self):
        self.brush_check.setChecked(not self.brush_check.isChecked())

    def toggle_eraser(self):
        self.brush_erase.setChecked(not self.brush_erase.isChecked())

    def side_right(self):
        self.brush_side.setCurrentIndex(0)

    def side_left(self):
        self.brush_side.setCurrentIndex(1)

    def diameter_up(self):
        self.brush_diameter.setValue(self.brush_diameter.value() + 0.5)

    def diameter_down(self):
        self.brush_diameter.setValue(self.brush_diameter.value() - 0.5)

    # -- brush --------------------------------------------------------------------------------------------
    def _paint_target(self):
        active = self.viewer.layers.selection.active
        return active if isinstance(active, Labels) and active.ndim == 3 else None

    def _brush_toggled(self, on):
        self.brush.set_enabled(on)
        self._warned = False
        if on and self._paint_target() is None:
            show_info("napari-ian: the sphere brush paints into the selected labels layer; "
                      + ("select it in the layer list" if self.panel.target_labels() is not None
                         else "open an image and press 'New IAN labels' first"))
            self._warned = True
        self.reach.update()

    def _diameter_changed(self, value):
        self.brush.diameter_mm = float(value)
        self.reach.update()

    def _drag_not_on_labels(self, viewer, event):
        # a drag on the image (no layer, or an image, selected) with the brush on paints nothing: say
        # so once; drags on a points or shapes layer (tracing, a prediction box) are that layer's own
        active = self.viewer.layers.selection.active
        if (self.brush.enabled and event.button == 1 and not self._warned
                and (active is None or isinstance(active, Image))):
            self._warned = True
            show_info("napari-ian: nothing painted; select an IAN labels layer (or press 'New IAN labels')")

    def side_view_hook(self, orig, copy):
        """napari-orthogonal-views layer hook: the sphere brush paints from a side view's copy into ``orig``."""
        self.brush.attach(copy, target=orig)
        return [lambda: self.brush.detach(copy)]

    @staticmethod
    def side_view_points_hook(orig, copy):
        """napari-orthogonal-views layer hook: a trace's points look the same in the side views.

        The views copy a layer's per-point colours and sizes; a trace starts without points, so its
        copies fell back to white discs of napari's default size for every later click.
        """
        if TRACE_KEY in orig.metadata:
            copy.current_face_color = orig.current_face_color
            copy.current_border_color = orig.current_border_color
            copy.current_size = float(orig.current_size)
            copy.current_symbol = orig.current_symbol
        return []

    # -- tracing ------------------------------------------------------------------------------------------
    def start_trace(self):
        """A Points layer for centreline clicks, tied to the labels layer, side and diameter."""
        from ._trace import CenterlineTracer

        labels = self.panel.target_labels()
        if labels is None:
            show_info("napari-ian: make IAN labels first (New IAN labels)")
            return None
        side = self.brush.label
        # small rings, not discs: the nerve under a point stays visible
        with warnings.catch_warnings():
            # shown in the three views, napari-orthogonal-views copies the new layer's (empty) colour
            # arrays and napari warns they are illegal; side_view_points_hook sets the copies right
            warnings.filterwarnings("ignore", "The provided color parameter contained illegal values")
            pts = self.viewer.add_points(np.empty((0, 3)), ndim=3, **on_grid_of(labels),
                                         name=f"{'right' if side == 1 else 'left'} IAN centreline", size=2.0,
                                         symbol="ring", face_color=SIDE_COLOURS[side], border_width=0,
                                         metadata={TRACE_KEY: side})
        pts.mode = "add"
        image = self.panel.selected_image()
        snap_to = None
        if self.snap_check.isChecked():
            if image is not None and image.data.shape == labels.data.shape:
                snap_to = np.asarray(image.data)
            else:
                show_info("napari-ian: no image on the labels' grid to snap to; tracing a plain spline")
        self.tracers.append(CenterlineTracer(pts, labels, self.brush.diameter_mm, side, image=snap_to))
        return self.tracers[-1]

    def _stop_tracing(self):
        for tracer in self.tracers:
            tracer.close()
        self.tracers = []
