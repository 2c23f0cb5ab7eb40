"""Dock widgets: the case panel (geometry, new labels) and the phantom generator.

Qt is imported only through qtpy. Long work (making a phantom) runs in a napari thread worker;
layers are added only from the GUI thread, when the worker returns.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_info
from qtpy.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QPushButton,
                            QSpinBox)

from ._layers import GEOMETRY_KEY, geometry_of, image_layer_data, labels_layer_data, on_grid_of
from ._panel import Panel, while_alive
from ._scroll import compact, panel_layout, wrapping_label
from .trainer.volume import CANONICAL_AXCODES, LABELS, Geometry


def _image_layers(viewer):
    return [ly for ly in viewer.layers if isinstance(ly, Image) and ly.ndim == 3 and not ly.rgb]


class CaseWidget(Panel):
    """Which image is the case, its geometry in mm, and a button for new IAN labels."""

    TITLE = "Case"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.image_combo = QComboBox()
        compact(self.image_combo)
        self.info = wrapping_label()
        self.new_labels_btn = QPushButton("New IAN labels")
        self.new_labels_btn.setToolTip("An empty labels layer on the chosen image's grid (same shape and scale)")
        self.new_labels_btn.clicked.connect(self.new_labels)
        self.restore_btn = QPushButton("Restore autosaved labels")
        self.restore_btn.setToolTip("Labels autosaved for this image (after every edit, in the workspace)")
        self.restore_btn.clicked.connect(self.restore_autosave)
        self.autosave_info = wrapping_label()
        legend = wrapping_label("Labels: " + ", ".join(f"{k} = {v}" for k, v in LABELS.items() if k))
        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        # the panel is tall (brush, keys, save); it scrolls rather than squashing its rows
        lay, _footer = panel_layout(self, 200)
        lay.addLayout(form)
        lay.addWidget(self.info)
        lay.addWidget(legend)
        self.views_btn = QPushButton("Three views (axial, sagittal, coronal)")
        self.views_btn.setToolTip("Show or hide synced orthogonal views with a crosshair "
                                  "(napari-orthogonal-views); painting in any view shows in all")
        self.views_btn.clicked.connect(self.toggle_three_views)
        lay.addWidget(self.views_btn)
        lay.addWidget(self.new_labels_btn)
        lay.addWidget(self.restore_btn)
        lay.addWidget(self.autosave_info)
        self.save_btn = QPushButton("Save labels as NIfTI...")
        self.save_btn.setToolTip("The selected IAN labels layer, on the source image's grid and affine; "
                                 "the file dialog opens where this case was saved last")
        self.save_btn.clicked.connect(self.save_labels_dialog)
        self.save_info = wrapping_label()
        lay.addWidget(self.save_btn)
        lay.addWidget(self.save_info)
        lay.addWidget(self._brush_box())
        lay.addStretch(1)
        self.autosaver = autosaver_for(self.viewer)
        self.autosaver.listeners.append(self._show_autosaves)
        self.image_combo.currentIndexChanged.connect(self._show_info)
        self.image_combo.currentIndexChanged.connect(self._show_autosaves)
        self.image_combo.currentIndexChanged.connect(self._show_saved)
        self.viewer.layers.events.inserted.connect(self._refresh)
        self.viewer.layers.events.removed.connect(self._refresh)
        self.viewer.layers.events.changed.connect(self._refresh)
        self._refresh()

    # -- helpers ----------------------------------------------------------------------------
    def selected_image(self):
        name = self.image_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _refresh(self, event=None):
        current = self.image_combo.currentText()
        names = [ly.name for ly in _image_layers(self.viewer)]
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        self.image_combo.addItems(names)
        if current in names:
            self.image_combo.setCurrentText(current)
        self.image_combo.blockSignals(False)
        self.new_labels_btn.setEnabled(bool(names))
        self._show_info()
        self._show_autosaves()
        self._show_saved()

    def _show_info(self, *args):
        layer = self.selected_image()
        if layer is None:
            self.info.setText("Open an MR volume (File > Open, or File > Open Sample > napari-ian).")
            return
        geom = geometry_of(layer)
        sp = " x ".join(f"{s:.3g}" for s in layer.scale)
        lines = [f"<b>{layer.name}</b>", f"shape (AP, SI, RL): {' x '.join(map(str, layer.data.shape))}",
                 f"spacing mm (AP, SI, RL): {sp}",
                 f"array orientation: {''.join(CANONICAL_AXCODES)} (slider = coronal slices, A to P)"]
        if geom is not None:
            lines += [f"source: {geom.kind}, stored as {''.join(geom.native_axcodes)} "
                      f"{' x '.join(map(str, geom.native_shape))}"]
            if geom.series_description:
                lines.append(f"series: {geom.series_description}")
        else:
            lines.append("<i>not opened with napari-ian: source geometry unknown, labels cannot be "
                         "saved on its grid</i>")
        self.info.setText("<br>".join(lines))

    # keyboard shortcuts of the annotation panel (viewer-wide; none collides with napari's own)
    SHORTCUTS = (
        ("Shift+B", "sphere brush on / off", "toggle_brush"),
        ("Shift+E", "eraser on / off", "toggle_eraser"),
        ("Shift+R", "side: right IAN (1)", "side_right"),
        ("Shift+L", "side: left IAN (2)", "side_left"),
        ("Shift+Up", "brush diameter + 0.5 mm", "diameter_up"),
        ("Shift+Down", "brush diameter - 0.5 mm", "diameter_down"),
        ("Shift+T", "trace a centreline", "start_trace"),
    )

    def _brush_box(self):
        from ._brush import BrushReach, SphereBrush

        self.brush = SphereBrush()
        box = QGroupBox("Sphere brush (mm)")
        self.brush_check = QCheckBox("paint spheres with a left-drag")
        self.brush_diameter = QDoubleSpinBox()
        self.brush_diameter.setRange(0.3, 15.0)
        self.brush_diameter.setSingleStep(0.5)
        self.brush_diameter.setSuffix(" mm")
        self.brush_diameter.setValue(self.brush.diameter_mm)
        self.brush_side = QComboBox()
        self.brush_side.addItems(["1: right IAN", "2: left IAN"])
        self.brush_erase = QCheckBox("eraser")
        form = QFormLayout(box)
        form.addRow(self.brush_check)
        form.addRow("Diameter", self.brush_diameter)
        form.addRow("Side", self.brush_side)
        form.addRow(self.brush_erase)
        hint = wrapping_label("A sphere in mm on the anisotropic voxels; the yellow ring under the mouse is its "
                              "section on this slice, its label how many slices it reaches. The wheel still zooms.")
        form.addRow(hint)
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
        self.viewer.layers.events.inserted.connect(
            lambda e: self.brush.attach(e.value) if isinstance(e.value, Labels) else None)
        self.reach = BrushReach(self.viewer, self.brush, self._paint_target)
        self.viewer.mouse_drag_callbacks.append(self._drag_not_on_labels)
        for key, _, method in self.SHORTCUTS:
            self.viewer.bind_key(key, self._key_action(method), overwrite=True)
        return box

    def _key_action(self, method):
        def action(viewer):
            getattr(self, method)()
        action.__name__ = f"napari_ian_{method}"
        return action

    # shortcut actions
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

    def _paint_target(self):
        active = self.viewer.layers.selection.active
        return active if isinstance(active, Labels) and active.ndim == 3 else None

    def _brush_toggled(self, on):
        self.brush.set_enabled(on)
        if on and self._paint_target() is None:
            show_info("napari-ian: the sphere brush paints into the selected labels layer; "
                      + ("select it in the layer list" if self.target_labels() is not None
                         else "open an image and press 'New IAN labels' first"))
        self.reach.update()

    def _diameter_changed(self, value):
        self.brush.diameter_mm = float(value)
        self.reach.update()

    def _drag_not_on_labels(self, viewer, event):
        if self.brush.enabled and event.button == 1 and self._paint_target() is None:
            show_info("napari-ian: nothing painted; select an IAN labels layer (or press 'New IAN labels')")

    def toggle_three_views(self):
        """Show the three synced views (fitted to the volume, crosshair on the nerve), or hide them."""
        from ._window import hide_three_views, show_three_views, three_views_shown

        if three_views_shown(self.viewer):
            hide_three_views(self.viewer)
        else:
            show_three_views(self.viewer)

    def target_labels(self):
        """The labels layer to paint: the active one, else the top labels layer on the image's grid."""
        image = self.selected_image()
        active = self.viewer.layers.selection.active
        if isinstance(active, Labels) and (image is None or active.data.shape == image.data.shape):
            return active
        for layer in reversed(self.viewer.layers):
            if isinstance(layer, Labels) and image is not None and layer.data.shape == image.data.shape:
                return layer
        return None

    def start_trace(self):
        """A Points layer for centreline clicks, tied to the labels layer, side and diameter."""
        from ._trace import CenterlineTracer

        labels = self.target_labels()
        if labels is None:
            show_info("napari-ian: make IAN labels first (New IAN labels)")
            return None
        side = self.brush.label
        pts = self.viewer.add_points(np.empty((0, 3)), ndim=3, **on_grid_of(labels),
                                     name=f"{'right' if side == 1 else 'left'} IAN centreline", size=1.5,
                                     face_color="yellow" if side == 1 else "cyan")
        pts.mode = "add"
        image = self.selected_image()
        snap_to = None
        if self.snap_check.isChecked():
            if image is not None and image.data.shape == labels.data.shape:
                snap_to = np.asarray(image.data)
            else:
                show_info("napari-ian: no image on the labels' grid to snap to; tracing a plain spline")
        self.tracer = CenterlineTracer(pts, labels, self.brush.diameter_mm, side, image=snap_to)
        return self.tracer

    def _autosaves(self):
        from .trainer.workspace import list_autosaves

        layer = self.selected_image()
        geom = geometry_of(layer) if layer is not None else None
        return list_autosaves(geom.case_key) if geom is not None and geom.case_key else []

    # -- save / export ----------------------------------------------------------------------
    def default_save_path(self, layer) -> str:
        """Where the save dialog starts: this case's last export, else a file named after the layer
        in the last folder used (the layer name is already free of patient identifiers)."""
        from .trainer.workspace import last_export, last_export_dir

        geom = geometry_of(layer)
        if geom is not None and geom.case_key:
            prev = last_export(geom.case_key)
            if prev is not None and prev.parent.is_dir():
                return str(prev)
        folder = last_export_dir()
        folder = folder if folder is not None and folder.is_dir() else Path.home()
        stem = re.sub(r"[^A-Za-z0-9._ -]+", "_", layer.name).strip(" ._") or "ian_labels"
        return str(folder / f"{stem}.nii.gz")

    def save_labels_dialog(self):
        """Ask where to save the selected labels layer, then save it (see :meth:`save_labels_to`)."""
        from qtpy.QtWidgets import QFileDialog

        layer = self.target_labels()
        if layer is None:
            show_info("napari-ian: no IAN labels layer to save (select one, or press 'New IAN labels')")
            return None
        path, _ = QFileDialog.getSaveFileName(self, f"Save {layer.name}", self.default_save_path(layer),
                                              "NIfTI (*.nii.gz *.nii)")
        if not path:
            return None
        if not path.lower().endswith((".nii", ".nii.gz")):
            path += ".nii.gz"
        return self.save_labels_to(path, layer)

    def save_labels_to(self, path, layer):
        """Write ``layer`` to ``path`` through the plugin's writer (atomic, source grid); remember it."""
        from napari.utils.notifications import show_error

        from ._writer import write_labels
        from .trainer.errors import VolumeWriteError

        try:
            write_labels(str(path), layer.data, {"metadata": layer.metadata})
        except (VolumeWriteError, OSError) as exc:
            show_error(f"napari-ian: {layer.name} not saved: {' '.join(str(exc).split())}")
            return None
        show_info(f"napari-ian: saved {layer.name} to {path}")
        self._show_saved()
        return str(path)

    def _show_saved(self, *args):
        from .trainer.workspace import last_export

        layer = self.selected_image()
        geom = geometry_of(layer) if layer is not None else None
        prev = last_export(geom.case_key) if geom is not None and geom.case_key else None
        self.save_info.setText(f"Last saved to {prev}" if prev else "")

    def _show_autosaves(self, *args):
        saves = self._autosaves()
        self.restore_btn.setEnabled(bool(saves))
        self.autosave_info.setText(
            f"Autosaved for this image: {saves[0].describe()}" + (f" and {len(saves) - 1} more" if len(saves) > 1 else "")
            if saves else "Labels made on this image are autosaved after every edit.")

    def restore_autosave(self):
        """Add the newest autosaved labels of the chosen image as a new layer."""
        from .trainer.workspace import load_labels

        layer = self.selected_image()
        saves = self._autosaves()
        if layer is None or not saves:
            show_info("napari-ian: nothing autosaved for this image")
            return None
        data = load_labels(saves[0])
        if data.shape != layer.data.shape:
            show_info(f"napari-ian: the autosave {saves[0].describe()} has shape {data.shape}, "
                      f"the image {layer.data.shape}; not restored")
            return None
        _, kwargs, _ = labels_layer_data(data, geometry_of(layer), f"{saves[0].layer_name} (restored)")
        kwargs.update(on_grid_of(layer))
        return self.viewer.add_labels(data, **kwargs)

    def new_labels(self):
        """Add an empty Labels layer matching the chosen image (shape, scale, geometry)."""
        layer = self.selected_image()
        if layer is None:
            show_info("napari-ian: open an image first")
            return None
        geom = geometry_of(layer)
        if geom is None:
            geom = Geometry(native_affine=np.diag(list(layer.scale) + [1.0]), native_shape=layer.data.shape)
        data, kwargs, _ = labels_layer_data(np.zeros(layer.data.shape, np.uint8), geom, f"{layer.name} IAN labels")
        if geometry_of(layer) is None:
            kwargs["metadata"].pop(GEOMETRY_KEY)
        kwargs.update(on_grid_of(layer))
        new = self.viewer.add_labels(data, **kwargs)
        new.selected_label = 1
        return new


_AUTOSAVERS = {}


def autosaver_for(viewer):
    """The one :class:`Autosaver` of a viewer (made on first use)."""
    from ._autosave import Autosaver

    from ._identity import unwrap

    real = unwrap(viewer)     # panels get proxies of the viewer, a new one each
    key = id(real)
    if key not in _AUTOSAVERS or unwrap(_AUTOSAVERS[key].viewer) is not real:
        _AUTOSAVERS[key] = Autosaver(real)
    return _AUTOSAVERS[key]


class PhantomWidget(Panel):
    """Make one synthetic patient (seed) off the GUI thread and add image + ground truth."""

    TITLE = "Phantom"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        from ._threads import ensure_spare_pool_threads

        ensure_spare_pool_threads()   # see _threads.py: workers must not starve Qt's own pool tasks
        self.seed = QSpinBox()
        self.seed.setRange(0, 10_000_000)
        self.go = QPushButton("Make phantom")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.status = wrapping_label("Synthetic MRN of the lower jaw with IAN ground truth (not patient data).")
        form = QFormLayout()
        form.addRow("Seed", self.seed)
        row = QHBoxLayout()
        row.addWidget(self.go)
        row.addWidget(self.cancel)
        lay, footer = panel_layout(self, 40)
        lay.addLayout(form)
        lay.addStretch(1)
        footer.addLayout(row)
        footer.addWidget(self.status)
        self.go.clicked.connect(self.start)
        self.cancel.clicked.connect(self.stop)
        self.worker = None

    def start(self):
        from ._sample_data import phantom_layers

        seed = int(self.seed.value())

        @thread_worker(progress={"total": 0, "desc": f"phantom {seed}"}, ignore_errors=True)
        def make():
            return phantom_layers(seed)

        self.worker = make()
        self.worker.returned.connect(while_alive(self, self._add))
        self.worker.errored.connect(while_alive(self, self._failed))
        self.worker.finished.connect(while_alive(self, self._done))
        self.go.setEnabled(False)
        self.cancel.setEnabled(True)
        self.status.setText(f"Making phantom {seed} (a few seconds)...")
        self.worker.start()
        return self.worker

    def stop(self):
        if self.worker is not None:
            self._cancelled = True
            self.worker.quit()
            self.status.setText("Cancelled: nothing was added.")

    def _add(self, layers):
        if getattr(self, "_cancelled", False):
            return
        for data, kwargs, kind in layers:
            getattr(self.viewer, f"add_{kind}")(data, **kwargs)
        self.status.setText(f"Added {layers[0][1]['name']}.")

    def _failed(self, exc):
        from napari.utils.notifications import show_error

        msg = f"phantom failed: {' '.join(str(exc).split())}"
        show_error(f"napari-ian: {msg}")
        self.status.setText(msg.capitalize())

    def _done(self):
        self.worker = None
        self._cancelled = False
        self.go.setEnabled(True)
        self.cancel.setEnabled(False)


__all__ = ["CaseWidget", "PhantomWidget", "image_layer_data"]
