"""Predict panel: run a registry model on the chosen image in a worker thread.

The result is a new, ordinary Labels layer named after the model, on the image's grid (scale and
source geometry), so it can be edited and saved like any labels; predicting again adds another
layer and never overwrites one. Progress shows in napari's activity bar; Cancel stops between
batches and adds nothing.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QPushButton

from ._combo import chosen_layer, refill_combo, refill_layer_combo
from ._identity import layer_uid
from ._layers import GEOMETRY_KEY, image_layers, labels_layer_data, on_grid_of
from ._lazy_torch import model_entries, when_devices_known
from ._panel import Panel, while_alive
from ._panel_layout import compact, fast_box_follows_model, fast_tiles_checkbox, panel_layout, wrapping_label
from ._progress_bridge import WorkerProgress, stages_in
from .trainer.progress import INFER
from .trainer.volume import Geometry

PROBABILITY_OF = "ian_probability_of"    # metadata of a probability map: the id of its prediction layer


class PredictionFailed(Exception):
    """A model run that failed in the worker (carries the original message)."""


class PredictWidget(Panel):
    """Image + model + device -> IAN labels (1 = right, 2 = left) as a new Labels layer."""

    TITLE = "Predict"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.image_combo = QComboBox()
        self.model_combo = QComboBox()
        self.refresh_btn = QPushButton("↻")
        self.refresh_btn.setToolTip("Reload the model list (bundled and user models)")
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", "cpu"])      # cuda / mps are added once torch is loaded
        self.prob_check = QCheckBox("also add the probability map")
        self.fast_check = fast_tiles_checkbox()
        self._model_metadata = {}
        self._follow_model = fast_box_follows_model(self.fast_check, self.model_combo, self._model_metadata)
        self.roi_check = QCheckBox("only inside the box")
        self.roi_check.setToolTip("Predict only inside the rectangles of the 'prediction box' layer: their "
                                  "bounding box; an axis they do not span is taken whole, so draw on two "
                                  "slices to bound the slice range too")
        self.box_btn = QPushButton("Draw box")
        self.box_btn.setToolTip("Add (or select) the 'prediction box' shapes layer in rectangle mode")
        self.box_btn.clicked.connect(self.draw_box)
        self.run_btn = QPushButton("Predict")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.status = wrapping_label()
        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        row = QHBoxLayout()
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.refresh_btn)
        form.addRow("Model", row)
        form.addRow("Device", self.device_combo)
        for combo in (self.image_combo, self.model_combo, self.device_combo):
            compact(combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_btn)
        buttons.addWidget(self.cancel_btn)
        lay, footer = panel_layout(self)
        lay.addLayout(form)
        lay.addWidget(self.prob_check)
        lay.addWidget(self.fast_check)
        box_row = QHBoxLayout()
        box_row.addWidget(self.roi_check, 1)
        box_row.addWidget(self.box_btn)
        lay.addLayout(box_row)
        lay.addStretch(1)
        footer.addLayout(buttons)      # the run button and the result stay in view in a short dock
        footer.addWidget(self.status)
        self.worker = None
        self._run = None      # the running worker's progress and cancel
        self.run_btn.clicked.connect(self.run)
        self.cancel_btn.clicked.connect(self.cancel)
        self.refresh_btn.clicked.connect(self.refresh_models)
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            self.listen(ev, self._refresh_images)
        self._refresh_images()
        self.refresh_models()
        from ._hub import hub

        self.listen(hub.models_changed, self.refresh_models)   # a fine-tuned model appears at once
        when_devices_known(while_alive(self, self._devices_known))

    # -- lists ------------------------------------------------------------------------------
    def _refresh_images(self, event=None):
        refill_layer_combo(self.image_combo, image_layers(self.viewer))

    def _devices_known(self, devices, notes):
        refill_combo(self.device_combo, devices)
        for i, name in enumerate(devices):
            self.device_combo.setItemData(i, notes.get(name, ""), 3)     # tooltip
        self.refresh_models()                                            # with their metadata now

    def refresh_models(self):
        current = self.model_combo.currentText()
        entries = model_entries()
        self._model_metadata.clear()
        self._model_metadata.update({name: meta for name, _, meta in entries if meta is not None})
        self.model_combo.blockSignals(True)       # one choice change at most, applied below
        try:
            self.model_combo.clear()
            for name, source, meta in entries:
                self.model_combo.addItem(name)
                if meta is not None:
                    self.model_combo.setItemData(self.model_combo.count() - 1,
                                                 f"{source}: {meta.get('trained_on', '')}", 3)  # tooltip
            if current:
                self.model_combo.setCurrentText(current)
        finally:
            self.model_combo.blockSignals(False)
        self._follow_model()

    # -- box --------------------------------------------------------------------------------
    BOX_NAME = "prediction box"
    BOX_KEY = "ian_prediction_box"      # metadata that marks the box layer (its name may change)

    def box_layer(self):
        """The prediction box (a Shapes layer made by :meth:`draw_box`), or None."""
        return next((ly for ly in self.viewer.layers if (ly.metadata or {}).get(self.BOX_KEY)), None)

    def draw_box(self):
        """A Shapes layer on the chosen image's grid, ready for a rectangle; ticks 'only inside the box'."""
        image = chosen_layer(self.viewer, self.image_combo)
        if image is None:
            show_info("napari-ian: open an MR image first")
            return None
        box = self.box_layer()
        if box is None:
            box = self.viewer.add_shapes(name=self.BOX_NAME, ndim=3, edge_color="lime", face_color="transparent",
                                         edge_width=0.3, metadata={self.BOX_KEY: True}, **on_grid_of(image))
        self.viewer.layers.selection.active = box
        box.mode = "add_rectangle"
        self.roi_check.setChecked(True)
        return box

    def box_roi(self, image_layer):
        """The box as canonical slices of ``image_layer``, or None (no box asked for)."""
        from .trainer.predict import roi_from_vertices

        if not self.roi_check.isChecked():
            return None
        box = self.box_layer()
        if box is None or not len(box.data):
            raise ValueError("'only inside the box' is ticked but no box is drawn (press 'Draw box')")
        world = [box.data_to_world(v) for shape in box.data for v in np.asarray(shape)]
        vox = np.asarray([image_layer.world_to_data(w) for w in world], dtype=float)
        return roi_from_vertices(vox, image_layer.data.shape)

    # -- running ----------------------------------------------------------------------------
    def run(self):
        """Start a prediction; returns the worker (or None when the input is not usable)."""

        layer = chosen_layer(self.viewer, self.image_combo)
        if layer is None:
            show_info("napari-ian: open an MR image first")
            return None
        name = layer.name
        if layer.ndim != 3:
            show_error(f"napari-ian: {name} is {layer.ndim}D; prediction needs a 3D volume")
            return None
        model_name = self.model_combo.currentText()
        if not model_name:
            show_error("napari-ian: no model available (see 'ian models')")
            return None
        try:
            roi = self.box_roi(layer)
        except ValueError as exc:
            show_error(f"napari-ian: {exc}")
            return None
        image = np.asarray(layer.data)
        spacing = tuple(float(s) for s in layer.scale)
        device = self.device_combo.currentText()
        fast = self.fast_check.isChecked()

        run = self._run = WorkerProgress(f"{model_name} on {name}", INFER, stages_in(self, self.status))

        @thread_worker(ignore_errors=True)
        def work():
            # napari builds a Labels layer's features with pandas, imported on first use; doing that
            # here keeps a ~0.2 s import off the GUI thread when the result layer is added
            import pandas  # noqa: F401

            from ._imports import import_torch

            import_torch()

            from .trainer.volume import count_nonfinite
            from .trainer.progress import Cancelled
            from .trainer.workflows import predict_case

            bad = count_nonfinite(image)
            said = f"{name}: {bad} non-finite voxels (NaN/Inf) ignored" if bad else None
            try:
                # the one predict flow (also `ian predict`): a GPU out of memory falls back to the CPU
                res = predict_case(image, spacing, model_name, device=device, roi=roi, progress=run,
                                   cancel=run.cancelled, fast=fast)
            except Cancelled:
                return None
            except RuntimeError as exc:
                # superqt drops a RuntimeError from a worker as an "aborted thread" without
                # emitting `errored`; torch reports most failures that way, so hand it on as another type
                raise PredictionFailed(str(exc)) from exc
            return res.prediction, res.metadata, "; ".join(filter(None, (res.note, said)))

        self.worker = work()
        self.worker.returned.connect(while_alive(self, lambda res: res and self._add_result(res, layer, model_name)))
        self.worker.errored.connect(while_alive(self, self._failed))
        self.worker.finished.connect(run.close)      # also when the panel is gone meanwhile
        self.worker.finished.connect(while_alive(self, self._finished))
        self.run_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        where = "" if roi is None else " inside the box " + ",".join(f"{r.start}:{r.stop}" for r in roi)
        self.status.setText(f"Predicting with {model_name} ({device}{', fast tiles' if fast else ''}){where}...")
        self.worker.start()
        return self.worker

    def cancel(self):
        if self.worker is not None:
            self._run.cancel()
            self.status.setText("Cancelled: no layer was added.")

    def closing(self):
        if self.worker is not None:
            self._run.cancel()

    def add_prediction(self, pred, meta: dict, image_layer, model_name: str, made: str = "") -> None:
        """Add a prediction made elsewhere (``made`` says where, in the status line) as this panel
        adds its own: a new labels layer (and the probability map when ticked), its status line.
        The layers get copies: ``pred`` may be shown again, and edits to one layer must not show in another."""
        pred = dataclasses.replace(pred, labels=pred.labels.copy(), probability=pred.probability.copy())
        self._add_result((pred, meta, None), image_layer, model_name, made)

    def _add_result(self, res, image_layer, model_name, made=""):
        pred, meta, note = res
        geom_d = (image_layer.metadata or {}).get(GEOMETRY_KEY)
        geom = Geometry.from_dict(geom_d) if geom_d else Geometry(np.eye(4), pred.labels.shape)
        data, kwargs, _ = labels_layer_data(pred.labels, geom, self.fresh_layer_name(f"{model_name} prediction", geom))
        if not geom_d:
            kwargs["metadata"].pop(GEOMETRY_KEY)
        kwargs.update(on_grid_of(image_layer))
        kwargs["metadata"]["ian_model"] = {"name": model_name, "trained_on": meta.get("trained_on", ""),
                                           "device": pred.device, "bf16": pred.bf16, "fast_tiles": pred.large_tiles,
                                           "backend": pred.backend}
        new = self.viewer.add_labels(data, **kwargs)
        if self.prob_check.isChecked():
            # tied to its prediction by id, not by name (the Review panel reads it for its warnings)
            self.viewer.add_image(pred.probability, name=f"{model_name} probability", colormap="magma",
                                  blending="additive", contrast_limits=(0.0, 1.0),
                                  metadata={PROBABILITY_OF: layer_uid(new)}, **on_grid_of(image_layer))
        if note:
            show_warning(f"napari-ian: {note}")
        from .trainer.predict import doubt_line

        n1, n2 = int((pred.labels == 1).sum()), int((pred.labels == 2).sum())
        doubt = doubt_line(pred)
        if pred.doubts:
            show_warning(f"napari-ian: {new.name}: {doubt}")
        self.status.setText(f"{model_name}: right IAN {n1} voxels, left IAN {n2} voxels "
                            f"({pred.ran_on}{'; ' + made if made else ''}); {doubt}. "
                            f"Model trained on: {meta.get('trained_on', 'unknown')}.")

    def fresh_layer_name(self, base: str, geom) -> str:
        """``base``, or ``base (2)``, ... : a name no open layer has and this case's workspace never saw.

        A new prediction must not pick up an earlier layer's autosave or review status (kept by
        layer name in the case's workspace), nor overwrite them when it is edited.
        """
        from .trainer.review import status_file
        from .trainer.workspace import list_autosaves

        key = getattr(geom, "case_key", "")
        used = {ly.name for ly in self.viewer.layers}
        if key:
            used |= {a.layer_name for a in list_autosaves(key)}
        name, k = base, 1

        def seen(n):
            return n in used or (key and any(status_file(key, n, ax).exists() for ax in range(3)))

        while seen(name):
            k += 1
            name = f"{base} ({k})"
        return name

    def _failed(self, exc):
        msg = f"prediction failed: {' '.join(str(exc).split())}"
        show_error(f"napari-ian: {msg}")
        self.status.setText(f"{msg[0].upper()}{msg[1:]}. No layer was added.")

    def _finished(self):
        self.worker = None
        self.run_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
