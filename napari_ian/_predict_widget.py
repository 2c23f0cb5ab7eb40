"""Predict panel: run a registry model on the chosen image in a worker thread.

The result is a new, ordinary Labels layer named after the model, on the image's grid (scale and
source geometry), so it can be edited and saved like any labels; predicting again adds another
layer and never overwrites one. Progress shows in napari's activity bar; Cancel stops between
batches and adds nothing.
"""
from __future__ import annotations

import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton,
                            QVBoxLayout, QWidget)

from ._layers import GEOMETRY_KEY, labels_layer_data
from ._widgets import _image_layers
from .trainer.volume import Geometry


def _devices():
    import torch

    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


class PredictWidget(QWidget):
    """Image + model + device -> IAN labels (1 = right, 2 = left) as a new Labels layer."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.image_combo = QComboBox()
        self.model_combo = QComboBox()
        self.refresh_btn = QPushButton("↻")
        self.refresh_btn.setToolTip("Reload the model list (bundled and user models)")
        self.device_combo = QComboBox()
        self.device_combo.addItems(_devices())
        self.prob_check = QCheckBox("also add the probability map")
        self.run_btn = QPushButton("Predict")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        row = QHBoxLayout()
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.refresh_btn)
        form.addRow("Model", row)
        form.addRow("Device", self.device_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_btn)
        buttons.addWidget(self.cancel_btn)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.prob_check)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        lay.addStretch(1)
        self.worker = None
        self.run_btn.clicked.connect(self.run)
        self.cancel_btn.clicked.connect(self.cancel)
        self.refresh_btn.clicked.connect(self.refresh_models)
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            ev.connect(self._refresh_images)
        self._refresh_images()
        self.refresh_models()

    # -- lists ------------------------------------------------------------------------------
    def _refresh_images(self, event=None):
        current = self.image_combo.currentText()
        names = [ly.name for ly in _image_layers(self.viewer)]
        self.image_combo.clear()
        self.image_combo.addItems(names)
        if current in names:
            self.image_combo.setCurrentText(current)

    def refresh_models(self):
        from .trainer.registry import list_models

        current = self.model_combo.currentText()
        self.model_combo.clear()
        for e in list_models():
            self.model_combo.addItem(e.name)
            self.model_combo.setItemData(self.model_combo.count() - 1,
                                         f"{e.source}: {e.metadata.get('trained_on', '')}", 3)  # tooltip
        if current:
            self.model_combo.setCurrentText(current)

    # -- running ----------------------------------------------------------------------------
    def run(self):
        """Start a prediction; returns the worker (or None when the input is not usable)."""
        from .trainer.modelfile import load_model
        from .trainer.predict import predict_steps
        from .trainer.registry import resolve_model

        name = self.image_combo.currentText()
        if name not in self.viewer.layers:
            show_info("napari-ian: open an MR image first")
            return None
        layer = self.viewer.layers[name]
        if layer.ndim != 3:
            show_error(f"napari-ian: {name} is {layer.ndim}D; prediction needs a 3D volume")
            return None
        model_name = self.model_combo.currentText()
        if not model_name:
            show_error("napari-ian: no model available (see 'ian models')")
            return None
        image = np.asarray(layer.data)
        spacing = tuple(float(s) for s in layer.scale)
        device = self.device_combo.currentText()
        total = 2 * -(-image.shape[0] // 64)   # predict_steps yields once per batch of 64 slices per side

        @thread_worker(progress={"total": total, "desc": f"{model_name} on {name}"})
        def work():
            model, meta = load_model(resolve_model(model_name))
            try:
                result = yield from predict_steps(image, model, meta, spacing, device=device)
                return result, meta, None
            except RuntimeError as exc:  # e.g. CUDA out of memory: fall back to the CPU, say so
                if "out of memory" not in str(exc).lower() or device == "cpu":
                    raise
                result = yield from predict_steps(image, model, meta, spacing, device="cpu", batch=8)
                return result, meta, f"{device} ran out of memory; predicted on the CPU instead"

        self.worker = work()
        self.worker.returned.connect(lambda res: self._add_result(res, layer, model_name))
        self.worker.errored.connect(lambda exc: show_error(f"napari-ian: prediction failed: {' '.join(str(exc).split())}"))
        self.worker.finished.connect(self._finished)
        self.run_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.status.setText(f"Predicting with {model_name} ({device})...")
        self.worker.start()
        return self.worker

    def cancel(self):
        if self.worker is not None:
            self.worker.quit()
            self.status.setText("Cancelled: no layer was added.")

    def _add_result(self, res, image_layer, model_name):
        pred, meta, note = res
        geom_d = (image_layer.metadata or {}).get(GEOMETRY_KEY)
        geom = Geometry.from_dict(geom_d) if geom_d else Geometry(np.eye(4), pred.labels.shape)
        data, kwargs, _ = labels_layer_data(pred.labels, geom, f"{model_name} prediction")
        if not geom_d:
            kwargs["metadata"].pop(GEOMETRY_KEY)
        kwargs["scale"] = tuple(image_layer.scale)
        kwargs["translate"] = tuple(image_layer.translate)
        kwargs["metadata"]["ian_model"] = {"name": model_name, "trained_on": meta.get("trained_on", ""),
                                           "device": pred.device, "bf16": pred.bf16}
        self.viewer.add_labels(data, **kwargs)
        if self.prob_check.isChecked():
            self.viewer.add_image(pred.probability, name=f"{model_name} probability", scale=image_layer.scale,
                                  translate=image_layer.translate, colormap="magma", blending="additive",
                                  contrast_limits=(0.0, 1.0))
        if note:
            show_warning(f"napari-ian: {note}")
        n1, n2 = int((pred.labels == 1).sum()), int((pred.labels == 2).sum())
        self.status.setText(f"{model_name}: right IAN {n1} voxels, left IAN {n2} voxels "
                            f"({pred.device}{', bf16' if pred.bf16 else ''}). "
                            f"Model trained on: {meta.get('trained_on', 'unknown')}.")

    def _finished(self):
        self.worker = None
        self.run_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
