"""Fine-tune panel: "fine-tune on my corrections", with an honest before/after, in a worker.

The slices a person corrected or accepted in the Review panel (its saved review status) are
collected with the image into the corrections store (:mod:`napari_ian.trainer.corrections`), and
the chosen model is fine-tuned on them (:mod:`napari_ian.trainer.finetune`, the trainer's own
loop) off the GUI thread, with a progress bar, a live curve and Cancel. The new model goes into
the user registry under a new name and appears in the Predict panel at once.
"""
from __future__ import annotations

import math
import time

import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLineEdit,
                            QMessageBox, QProgressBar, QPushButton, QSpinBox)

from ._combo import chosen_layer, refill_combo, refill_layer_combo
from ._curve import CurveWidget
from ._identity import layer_uid
from ._layers import geometry_of, image_layers, labels_layers
from ._lazy_torch import model_entries, torch_ready, when_devices_known
from ._model_library import ModelLibrary
from ._panel import Panel, while_alive
from ._panel_layout import compact, panel_layout, wrapping_label
from ._progress_bridge import WorkerProgress
from .trainer.finetune import FinetuneConfig
from .trainer.progress import EPOCH, STAGE


class FinetuneWidget(Panel):
    """Corrected slices of this case (and earlier ones) -> a new model in the user registry."""

    TITLE = "Fine-tune"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.worker = None
        self._run = None              # the running worker's progress and cancel (and activity bar)
        self._name_edited = False
        self._device_notes = {}
        self.last_result = None

        self.image_combo, self.labels_combo, self.base_combo = QComboBox(), QComboBox(), QComboBox()
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", "cpu"])      # cuda / mps are added once torch is loaded
        self.name_edit = QLineEdit()
        self.name_edit.textEdited.connect(lambda *_: setattr(self, "_name_edited", True))
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 500)
        defaults = FinetuneConfig()       # the one set of fine-tuning defaults (``ian finetune``'s too)
        self.epochs_spin.setValue(defaults.epochs)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(1e-6, 1e-2)
        self.lr_spin.setSingleStep(1e-5)
        self.lr_spin.setValue(defaults.lr)
        self.holdout_spin = QSpinBox()
        self.holdout_spin.setRange(0, 50)
        self.holdout_spin.setValue(round(defaults.holdout * 100))
        self.holdout_spin.setSuffix(" %")
        self.holdout_spin.setToolTip("Share of each side's corrected slices held out (a contiguous block) "
                                     "to measure the model before and after; never trained on")
        self.device_note = wrapping_label("Runs on: (finding the devices...)")
        self.device_combo.currentTextChanged.connect(self._update_device_note)
        self.holdout_case_combo = QComboBox()
        self.holdout_case_combo.setToolTip("Score before/after on a whole case of the store instead of a block "
                                           "of each case's slices (needs the earlier cases)")
        self.earlier_check = QCheckBox("also train on earlier cases' corrections")
        self.pseudo_check = QCheckBox("also train between corrections (pseudo-labels)")
        self.pseudo_check.setChecked(defaults.pseudo_labels)
        self.pseudo_check.setToolTip(
            "3D models: label the slices between your corrected ones along the nerve they pin, and train on "
            "them with less weight. Off: more gain on a case the model misses, more forgetting of other "
            "cases, and nothing the held-out check can see (BENCHMARKS.md)")
        self.rehearsal_check = QCheckBox("keep what the model knew (rehearsal)")
        self.rehearsal_check.setChecked(defaults.rehearsal_share > 0)
        self.rehearsal_check.setToolTip(
            f"3D models trained on synthetic phantoms: {defaults.rehearsal_share:.0%} of what it trains on comes "
            "from random looks of one of those phantoms (rehearsal), so it forgets far less of other scans for a "
            "little less gain on this case. Off: this case alone (BENCHMARKS.md)")
        self.slices_label = wrapping_label()
        self.run_btn = QPushButton("Fine-tune on my corrections")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m epochs")
        self.progress.setValue(0)
        self.status = wrapping_label()
        self.curve = CurveWidget()
        self.curve.hide()                     # shown from the first run on
        self.result_label = wrapping_label()
        self.predict_btn = QPushButton("Predict this case with the new model")
        self.predict_btn.setEnabled(False)
        self.library = ModelLibrary(self.refresh_store)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        form.addRow("Image", self.image_combo)
        form.addRow("Corrected labels", self.labels_combo)
        form.addRow("Start from model", self.base_combo)
        form.addRow("New model name", self.name_edit)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Hold out", self.holdout_spin)
        form.addRow("or hold out", self.holdout_case_combo)
        form.addRow("Device", self.device_combo)
        form.addRow("", self.device_note)
        for combo in (self.image_combo, self.labels_combo, self.base_combo, self.holdout_case_combo,
                      self.device_combo):
            compact(combo)
        lay, footer = panel_layout(self)
        lay.addLayout(form)
        lay.addWidget(self.earlier_check)
        lay.addWidget(self.pseudo_check)
        lay.addWidget(self.rehearsal_check)
        lay.addWidget(self.library)
        lay.addStretch(1)
        # what will be trained on, the run, its progress and its result never scroll away
        footer.addWidget(self.slices_label)
        row = QHBoxLayout()
        row.addWidget(self.run_btn, 1)
        row.addWidget(self.cancel_btn)
        footer.addLayout(row)
        footer.addWidget(self.progress)
        footer.addWidget(self.status)
        footer.addWidget(self.curve)
        footer.addWidget(self.result_label)
        footer.addWidget(self.predict_btn)

        self.run_btn.clicked.connect(self.run)
        self.cancel_btn.clicked.connect(self.cancel)
        self.predict_btn.clicked.connect(self.predict_with_new_model)
        self.base_combo.currentTextChanged.connect(self._suggest_name)
        self.labels_combo.currentIndexChanged.connect(lambda *_: self.refresh_slices())
        self.earlier_check.toggled.connect(lambda *_: self.refresh_slices())
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            self.listen(ev, self._refresh_layers)
        from ._hub import hub

        self.listen(hub.models_changed, self.refresh_models)
        self.listen(hub.status_changed, self.refresh_slices)   # slices corrected in the Review panel
        self._refresh_layers()
        self.refresh_models()
        self.refresh_store()
        when_devices_known(while_alive(self, self._devices_known))

    def _devices_known(self, devices, notes):
        self._device_notes = notes
        refill_combo(self.device_combo, devices)
        self._update_device_note()
        self.refresh_models()          # with their metadata, and the next free name, now that torch is loaded

    def _update_device_note(self, *_):
        note = self._device_notes.get(self.device_combo.currentText() or "auto")
        self.device_note.setText(note or "Runs on: (finding the devices...)")

    # -- lists --------------------------------------------------------------------------------
    def _refresh_layers(self, event=None):
        images = [ly for ly in image_layers(self.viewer)]
        labels = labels_layers(self.viewer)
        preds = [ly for ly in labels if (ly.metadata or {}).get("ian_model") or "prediction" in ly.name.lower()]
        refill_layer_combo(self.image_combo, images)
        refill_layer_combo(self.labels_combo, labels, fallback=preds[-1] if preds else None)
        self.refresh_slices()

    def refresh_models(self):
        entries = model_entries()
        refill_combo(self.base_combo, [name for name, _, _ in entries])
        self.library.show_models(entries)
        self._suggest_name()

    def refresh_store(self):
        current = self.holdout_case_combo.currentData()
        self.holdout_case_combo.clear()
        self.holdout_case_combo.addItem("a block of each side's corrected slices", None)
        for e in self.library.show_store():
            self.holdout_case_combo.addItem(f"the whole {e.describe()}", e.case)
        i = self.holdout_case_combo.findData(current)
        self.holdout_case_combo.setCurrentIndex(max(i, 0))
        self.refresh_slices()

    def _suggest_name(self, *_):
        if not torch_ready():        # the next free name needs every model's metadata (torch)
            return
        from .trainer.finetune import next_model_name

        base = self.base_combo.currentText()
        if base and (not self._name_edited or not self.name_edit.text()):
            self.name_edit.setText(next_model_name(base))
            self._name_edited = False

    # -- what would be trained on ----------------------------------------------------------------
    def _case(self):
        """(image layer, labels layer, case key, trusted (2, n)) or raises ValueError with the reason."""
        from .trainer.corrections import trusted_from_status
        from .trainer.review import load_status

        image = chosen_layer(self.viewer, self.image_combo)
        labels = chosen_layer(self.viewer, self.labels_combo)
        if image is None:
            raise ValueError("open an MR image first")
        if labels is None:
            raise ValueError("choose the labels layer you corrected")
        if labels.data.shape != image.data.shape:
            raise ValueError(f"{labels.name} {labels.data.shape} is not on the grid of {image.name} {image.data.shape}")
        geom = geometry_of(image) or geometry_of(labels)
        if geom is None or not geom.case_key:
            raise ValueError(f"{image.name} was not opened with napari-ian, so its corrections cannot be kept "
                             "(open it with File > Open)")
        status = load_status(geom.case_key, labels.name, labels.data.shape[0], axis=0)
        if status is None or not (status >= 1).any():
            raise ValueError(f"no corrected or accepted slices of {labels.name} yet: review it in the Review "
                             "panel (coronal axis) and paint corrections or accept slices (Shift+A) first")
        return image, labels, geom.case_key, trusted_from_status(status)

    def refresh_slices(self):
        try:
            _, labels, _, trusted = self._case()
            text = (f"This case: {int(trusted[0].sum())} right + {int(trusted[1].sum())} left coronal slices "
                    f"corrected or accepted in {labels.name}.")
        except ValueError as exc:
            text = f"<i>{exc}.</i>"
        if self.earlier_check.isChecked():
            text += f" Earlier cases in the store: {self.library.store_list.count()}."
        self.slices_label.setText(text)

    # -- running -------------------------------------------------------------------------------------
    def run(self, replace: bool = False):
        """Start fine-tuning; returns the worker (None when the input is not usable)."""
        from .trainer.finetune import new_model_path

        if self.worker is not None:
            return None
        try:
            image, labels, case_key, trusted = self._case()
            name = self.name_edit.text().strip()
            new_model_path(name)   # refused before any work: bundled, malformed or taken
        except ValueError as exc:
            show_info(f"napari-ian: {exc}")
            self.status.setText(f"{exc}.")
            return None

        cfg = FinetuneConfig(epochs=self.epochs_spin.value(), lr=self.lr_spin.value(),
                             holdout=self.holdout_spin.value() / 100.0, device=self.device_combo.currentText(),
                             holdout_case=self.holdout_case_combo.currentData(),
                             pseudo_labels=self.pseudo_check.isChecked(),
                             rehearsal_share=FinetuneConfig.rehearsal_share * self.rehearsal_check.isChecked())
        if cfg.holdout_case and not self.earlier_check.isChecked():
            msg = "holding out a whole case needs the earlier cases: tick 'also train on earlier cases' corrections'"
            show_info(f"napari-ian: {msg}")
            self.status.setText(f"{msg[0].upper()}{msg[1:]}.")
            return None
        base = self.base_combo.currentText()
        img, lab, sp = np.asarray(image.data, dtype=np.float32), np.asarray(labels.data).copy(), tuple(image.scale)
        from .trainer.volume import count_nonfinite

        bad = count_nonfinite(img)
        if bad:
            show_warning(f"napari-ian: {image.name}: {bad} non-finite voxels (NaN/Inf) ignored")
        earlier = self.earlier_check.isChecked()
        image_uid, scale = layer_uid(image), tuple(image.scale)
        # napari's activity bar (bottom right) counts the epochs too, whichever panel tab is in front
        run = self._run = WorkerProgress(f"Fine-tuning {base} → {name}", EPOCH, while_alive(self, self._on_event))

        @thread_worker(ignore_errors=True)
        def work():
            from ._imports import import_torch

            import_torch()
            from .trainer.corrections import image_digest
            from .trainer.progress import Cancelled
            from .trainer.workflows import finetune_case

            trained_on = image_digest(img)     # before training: the layer may change while it runs

            t0 = time.perf_counter()
            try:
                # the one fine-tune flow (``ian finetune`` runs it too): store, earlier cases, train, save
                out = finetune_case(case_key, img, lab, trusted, sp, base=base, name=name, cfg=cfg, earlier=earlier,
                                    replace_store=replace, progress=run, cancel=run.cancelled)
                result, data, path = out.result, out.data, out.path
            except Cancelled:
                return {"cancelled": True}
            except RuntimeError as exc:  # superqt would drop a RuntimeError silently (torch raises them)
                raise FinetuneFailed(str(exc)) from exc
            # "name": where it was saved (another run may have taken ``name`` meanwhile)
            return {"cancelled": False, "name": path.stem, "asked": name, "path": str(path), "before": result.before,
                    "after": result.after, "worse": result.worse, "data": (data.n_train, data.n_held_out),
                    "device": result.metadata["finetune"]["device"], "bf16": result.metadata["finetune"]["bf16"],
                    "seconds": time.perf_counter() - t0, "cases": out.cases,
                    "holdout": cfg.holdout or cfg.holdout_case,
                    # the new model's prediction of this image, made for the after-score
                    "prediction": out.prediction, "metadata": out.result.metadata,
                    "image": (image_uid, scale, trained_on)}

        self.worker = work()
        self.worker.returned.connect(while_alive(self, self._done))
        self.worker.errored.connect(while_alive(self, self._failed))
        self.worker.finished.connect(run.close)      # also when the panel is gone meanwhile
        self.worker.finished.connect(while_alive(self, self._finished))
        self.curve.reset(cfg.epochs)
        self.curve.show()
        self.progress.setRange(0, cfg.epochs)
        self.progress.setValue(0)
        self.run_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.predict_btn.setEnabled(False)
        self.result_label.setText("")
        self.status.setText(f"Fine-tuning {base} → {name}...")
        self._t0 = time.perf_counter()
        self.worker.start()
        return self.worker

    def cancel(self):
        if self.worker is not None:
            self._run.cancel()
            self.status.setText("Cancelling: no model will be saved...")

    def closing(self):
        if self._run is not None:
            self._run.cancel()       # the worker stops between batches and saves nothing

    def _on_event(self, event):
        if event.kind == STAGE:
            self.status.setText(event.message)
        elif event.kind == EPOCH:
            self._on_epoch(event.info)

    def _on_epoch(self, info):
        self.progress.setValue(int(info["epoch"]))
        self.curve.add(info["loss"], info["val_dsc"])
        dsc = info["val_dsc"]
        self.status.setText(f"Epoch {info['epoch']}/{info['epochs']} · loss {info['loss']:.3f} · held-out DSC "
                            f"{'–' if math.isnan(dsc) else format(dsc, '.3f')} · about {info['eta_s']:.0f} s left")

    def _done(self, res):
        if res.get("cancelled"):
            self.status.setText("Cancelled: no model was saved; every model and layer is as it was.")
            return
        if res["name"] != res["asked"]:
            show_warning(f"napari-ian: another run saved a model called {res['asked']} meanwhile; this one is "
                         f"saved as {res['name']} (nothing was replaced)")
        b, a = res["before"]["held_out_dsc"], res["after"]["held_out_dsc"]
        n_train, n_held = res["data"]
        device = f"{res['device']}{' (bf16)' if res['bf16'] else ''}"
        if n_held and not math.isnan(b):
            text = (f"<b>{res['name']}</b> saved. Held-out corrected slices ({n_held}): DSC {b:.3f} → "
                    f"<b>{a:.3f}</b>. Trained on {n_train} side slices of {res['cases']} case(s) on {device} "
                    f"in {res['seconds']:.0f} s.")
        else:
            why = ("hold-out was set to 0 %" if not res["holdout"] else
                   "too few corrected slices with nerve to hold some out")
            text = (f"<b>{res['name']}</b> saved, trained on {n_train} side slices on {device} in "
                    f"{res['seconds']:.0f} s. No before/after figure: {why}.")
        if res["worse"]:
            text += " <span style='color:#ff5f5f'><b>Fine-tuning made the held-out slices worse</b>: keep using " \
                    "the base model, or correct more slices and try again.</span>"
            show_warning(f"napari-ian: fine-tuning made the held-out slices worse ({b:.3f} → {a:.3f})")
        self.result_label.setText(text)
        self.status.setText("Done.")
        self.last_result = res
        self.predict_btn.setText(f"Predict this case with {res['name']}")
        self.predict_btn.setEnabled(True)
        self._name_edited = False
        from ._hub import hub

        hub.models_changed.emit()
        self.refresh_store()

    def _failed(self, exc):
        from .trainer.corrections import CorrectionsMismatch

        if isinstance(exc, CorrectionsMismatch):
            # asked in _finished: a dialog here runs its own event loop, in which the worker's
            # `finished` would be handled before the answer is known
            self._mismatch = exc
            return
        msg = " ".join(str(exc).split())
        show_error(f"napari-ian: fine-tuning failed: {msg}")
        self.status.setText(f"Fine-tuning failed: {msg}. No model was saved.")

    def _finished(self):
        self.worker = None
        self.run_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
        exc, self._mismatch = getattr(self, "_mismatch", None), None
        if exc is not None:
            if self.ask_replace(exc):
                self.run(replace=True)
            else:
                self.status.setText("Stopped: the stored corrections of this case were kept.")

    def ask_replace(self, exc) -> bool:
        """Ask whether the stored corrections of this case may be replaced (tests replace this)."""
        return QMessageBox.question(self, "napari-ian", f"{exc}.\n\nReplace the stored corrections of this "
                                    "case with the current ones?") == QMessageBox.Yes

    # -- after ---------------------------------------------------------------------------------------
    def predict_with_new_model(self):
        """Show the new model's prediction of the fine-tuned image through the Predict panel.

        The fine-tune predicted this image with the new model for its after-score, as ``ian predict``
        does by default; that prediction is added at once when the Predict panel would make the same
        (the same image, unchanged; no box; the model's own tiling; the same device). Otherwise the
        Predict panel runs the model (returns its worker)."""
        from ._predict_widget import PredictWidget

        if not self.last_result:
            return None
        # the Predict panel docked already (from the menu or not), else a new one
        panel = next((w for w in self.viewer.window.dock_widgets.values() if isinstance(w, PredictWidget)), None)
        if panel is None:
            panel = self.viewer.window.add_plugin_dock_widget("napari-ian", "Predict")[1]
        panel.parentWidget().show()
        panel.parentWidget().raise_()
        panel.refresh_models()
        panel.image_combo.setCurrentIndex(max(panel.image_combo.findData(self.image_combo.currentData()), 0))
        panel.model_combo.setCurrentText(self.last_result["name"])
        layer = chosen_layer(self.viewer, panel.image_combo)
        if self._prediction_fits(panel, layer):
            res = self.last_result
            panel.add_prediction(res["prediction"], res["metadata"], layer, res["name"],
                                 made="made by the fine-tune for its after-score, not run again")
            return None
        return panel.run()

    def _prediction_fits(self, panel, layer) -> bool:
        """Whether the fine-tune's prediction is what ``panel`` would predict for ``layer`` now."""
        from .trainer.corrections import image_digest
        from .trainer.device import pick_device

        res = self.last_result
        pred = res.get("prediction")
        if pred is None or layer is None or panel.roi_check.isChecked():
            return False
        if panel.model_combo.currentText() != res["name"] or pred.large_tiles != panel.fast_check.isChecked():
            return False          # the model renamed or deleted since, or other tiles asked for
        if pick_device(panel.device_combo.currentText() or "auto").type != pick_device(pred.device).type:
            return False
        uid, scale, trained_on = res["image"]
        data = np.asarray(layer.data)
        # the fine-tune predicted the float32 copy kept in the corrections store: the same input
        # only where float32 holds the layer's values exactly
        return (layer_uid(layer) == uid and tuple(layer.scale) == scale and np.can_cast(data.dtype, np.float32)
                and image_digest(data) == trained_on)


class FinetuneFailed(Exception):
    """A fine-tuning run that failed in the worker (carries the original message)."""


__all__ = ["FinetuneWidget"]
