"""Case panel: which image is the case, its geometry in mm, its labels (new, autosaved, saved) and the brush.

The brush box (:mod:`napari_ian._brush_controls`) and the three views (:mod:`napari_ian._window`)
are their own modules; this one keeps the case: the image choice and its geometry, New IAN
labels, the list of autosaves to restore (each with its layer name and time), and Save labels
as NIfTI on the source grid.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from napari.layers import Labels, Points
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QPushButton

from ._brush_controls import BrushControls
from ._combo import chosen_layer, refill_layer_combo
from ._layers import GEOMETRY_KEY, geometry_of, image_layers, labels_layer_data, on_grid_of
from ._panel import Panel
from ._panel_layout import compact, panel_layout, wrapping_label
from .trainer.volume import CANONICAL_AXCODES, LABELS, Geometry


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
        self.restore_combo = QComboBox()
        compact(self.restore_combo)
        self.restore_combo.setToolTip("Labels autosaved for this image (after every edit, in the workspace), "
                                      "newest first: layer name and time")
        self.restore_btn = QPushButton("Restore")
        self.restore_btn.setToolTip("Add the chosen autosave as a new labels layer")
        self.restore_btn.clicked.connect(lambda: self.restore_autosave())
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
        self.views_btn.setToolTip("Show or hide synced orthogonal views (napari-orthogonal-views), fitted to the "
                                  "volume, crosshair on the nerve; painting in any view shows in all")
        self.views_btn.clicked.connect(self.toggle_three_views)
        lay.addWidget(self.views_btn)
        lay.addWidget(self.new_labels_btn)
        restore_row = QHBoxLayout()
        restore_row.addWidget(self.restore_combo, 1)
        restore_row.addWidget(self.restore_btn)
        lay.addLayout(restore_row)
        lay.addWidget(self.autosave_info)
        self.save_btn = QPushButton("Save labels...")
        self.save_btn.setToolTip("The selected IAN labels layer, on the source image's grid and affine, as NIfTI, "
                                 "a 3D Slicer segmentation (.seg.nrrd) or a DICOM SEG (asks first: it carries the "
                                 "patient's identifiers); the file dialog opens where this case was saved last")
        self.save_btn.clicked.connect(self.save_labels_dialog)
        self.save_info = wrapping_label()
        lay.addWidget(self.save_btn)
        lay.addWidget(self.save_info)
        self.brush_box = BrushControls(self)
        lay.addWidget(self.brush_box)
        lay.addStretch(1)
        self.autosaver = self.session.autosaver
        self.autosaver.listeners.append(self._show_autosaves)
        self.on_close(lambda: self._show_autosaves in self.autosaver.listeners
                      and self.autosaver.listeners.remove(self._show_autosaves))
        self.image_combo.currentIndexChanged.connect(self._image_changed)
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed,
                   self.viewer.layers.events.changed):
            self.listen(ev, self._refresh)
        self._refresh()

    # -- the case -----------------------------------------------------------------------------------
    def selected_image(self):
        return chosen_layer(self.viewer, self.image_combo)

    def _refresh(self, event=None):
        images = image_layers(self.viewer)
        refill_layer_combo(self.image_combo, images)
        self.new_labels_btn.setEnabled(bool(images))
        self._image_changed()

    def _image_changed(self, *args):
        self._show_info()
        self._show_autosaves()
        self._show_saved()

    def _show_info(self):
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

    def toggle_three_views(self):
        """Show the three synced views (fitted to the volume, crosshair on the nerve), or hide them."""
        from ._window import hide_three_views, three_views_shown

        if three_views_shown(self.viewer):
            hide_three_views(self.viewer)
        else:
            self.show_three_views()

    def show_three_views(self, labels=None):
        """The three synced views, with the sphere brush painting in the side views too (see _window)."""
        from ._window import forget_view_settings, show_three_views

        hooks = [(Labels, self.brush_box.side_view_hook), (Points, self.brush_box.side_view_points_hook)]
        manager = show_three_views(self.viewer, labels=labels, hooks=hooks)
        self.on_close(lambda: forget_view_settings(manager, hooks))

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

    # -- autosaves -------------------------------------------------------------------------------------
    def _autosaves(self):
        from .trainer.workspace import list_autosaves

        layer = self.selected_image()
        geom = geometry_of(layer) if layer is not None else None
        return list_autosaves(geom.case_key) if geom is not None and geom.case_key else []

    def _show_autosaves(self, *args):
        saves = self._autosaves()
        current = self.restore_combo.currentData()
        self.restore_combo.clear()
        for a in saves:
            self.restore_combo.addItem(a.describe(), str(a.path))
        self.restore_combo.setCurrentIndex(max(self.restore_combo.findData(current), 0) if saves else -1)
        self.restore_combo.setEnabled(bool(saves))
        self.restore_btn.setEnabled(bool(saves))
        self.autosave_info.setText(
            f"{len(saves)} autosave{'s' if len(saves) != 1 else ''} of this image to restore (newest first)."
            if saves else "Labels made on this image are autosaved after every edit.")

    def restore_autosave(self, which: int | None = None):
        """Add the autosave chosen in the list (or number ``which``, newest first) as a new labels layer."""
        from .trainer.workspace import load_labels

        layer = self.selected_image()
        saves = self._autosaves()
        if layer is None or not saves:
            show_info("napari-ian: nothing autosaved for this image")
            return None
        chosen = saves[which] if which is not None else next(
            (a for a in saves if str(a.path) == self.restore_combo.currentData()), saves[0])
        data = load_labels(chosen)
        if data.shape != layer.data.shape:
            show_info(f"napari-ian: the autosave {chosen.describe()} has shape {data.shape}, "
                      f"the image {layer.data.shape}; not restored")
            return None
        _, kwargs, _ = labels_layer_data(data, geometry_of(layer), f"{chosen.layer_name} (restored)")
        kwargs.update(on_grid_of(layer))
        return self.viewer.add_labels(data, **kwargs)

    # -- save / export ---------------------------------------------------------------------------------
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
        from .trainer.label_io import LABEL_FORMATS, LABEL_SUFFIXES

        filters = [f"{name} ({' '.join('*' + s for s in suffixes)})" for name, suffixes in LABEL_FORMATS]
        path, chosen = QFileDialog.getSaveFileName(self, f"Save {layer.name}", self.default_save_path(layer),
                                                   ";;".join(filters))
        if not path:
            return None
        if not path.lower().endswith(LABEL_SUFFIXES):
            path += dict(zip(filters, (s[0] for _, s in LABEL_FORMATS))).get(chosen, ".nii.gz")
        if path.lower().endswith(".dcm") and not self._confirm_identifiers(path):
            return None
        return self.save_labels_to(path, layer)

    def _confirm_identifiers(self, path) -> bool:
        """A DICOM SEG is the one export with patient identifiers: say so and let the user choose."""
        from qtpy.QtWidgets import QMessageBox

        from .trainer.dicom_seg import IDENTIFIERS_NOTE

        answer = QMessageBox.question(self, "napari-ian: DICOM SEG with patient identifiers",
                                      f"{Path(path).name}: {IDENTIFIERS_NOTE[0].upper()}{IDENTIFIERS_NOTE[1:]}.\n\n"
                                      "Save it with the identifiers?", QMessageBox.Save | QMessageBox.Cancel,
                                      QMessageBox.Cancel)
        return answer == QMessageBox.Save

    def save_labels_to(self, path, layer):
        """Write ``layer`` to ``path`` through the plugin's writer (format by name, atomic, source grid); remember it."""
        from napari.utils.notifications import show_error

        from ._writer import write_labels
        from .trainer.errors import VolumeWriteError

        try:
            write_labels(str(path), layer.data, {"metadata": layer.metadata})
        except (VolumeWriteError, OSError) as exc:
            show_error(f"napari-ian: {layer.name} not saved: {' '.join(str(exc).split())}")
            return None
        self._show_saved()
        return str(path)

    def _show_saved(self, *args):
        from .trainer.workspace import last_export

        layer = self.selected_image()
        geom = geometry_of(layer) if layer is not None else None
        prev = last_export(geom.case_key) if geom is not None and geom.case_key else None
        self.save_info.setText(f"Last saved to {prev}" if prev else "")
