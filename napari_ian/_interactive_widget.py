"""Interactive panel: a few clicks on a nerve give the whole nerve (click-prompted segmentation).

**Start** computes the chosen model's nerve probability for the image in a worker (a few seconds,
once) and adds an ``IAN clicks`` points layer in add mode. Each click is a point whose feature
``label`` says what it marks: 1 right nerve, 2 left nerve, 0 not nerve (the panel's choice, or
its keys). After every change of the points (added, moved, deleted) the side(s) whose clicks
changed are recomputed off the GUI thread (:class:`napari_ian.trainer.interactive.InteractiveSession`)
and written into the chosen labels layer as one undo step: only voxels this panel wrote before
and that still hold that side's label are cleared, and only background voxels are painted, so
hand edits and the other nerve are never touched. The Review panel follows the labels as usual.
"""
from __future__ import annotations

import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (QButtonGroup, QComboBox, QFormLayout, QHBoxLayout, QListWidget, QPushButton,
                            QRadioButton)

from ._combo import chosen_layer, refill_combo, refill_layer_combo
from ._identity import find_layer, layer_uid
from ._layers import image_layers, labels_layers, on_grid_of
from ._panel import Panel, while_alive
from ._panel_layout import compact, fast_box_follows_model, fast_tiles_checkbox, panel_layout, wrapping_label
from ._progress_bridge import WorkerProgress, stages_in
from .trainer.progress import INFER

CLICK_COLOURS = {1: "#ff5a3c", 2: "#3cb4ff", 0: "#ffd700"}
CLICK_NAMES = {1: "right nerve", 2: "left nerve", 0: "not nerve"}
CLICKS_KEY = "ian_clicks_for"          # points-layer metadata: the id of the labels layer it writes


class InteractiveWidget(Panel):
    """Clicks (right / left / not nerve) -> whole nerves in a labels layer."""

    TITLE = "Interactive"

    SHORTCUTS = (("Shift+1", "clicks mark the right nerve", "mark_right"),
                 ("Shift+2", "clicks mark the left nerve", "mark_left"),
                 ("Shift+3", "clicks mark what is not nerve", "mark_negative"))

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.image_combo, self.labels_combo, self.model_combo = QComboBox(), QComboBox(), QComboBox()
        for combo in (self.image_combo, self.labels_combo, self.model_combo):
            compact(combo)
        self.start_btn = QPushButton("Start")
        self.start_btn.setToolTip("Compute the model's nerve probability once (a few seconds), then click")
        self.fast_check = fast_tiles_checkbox()
        self._model_metadata = {}
        self._follow_model = fast_box_follows_model(self.fast_check, self.model_combo, self._model_metadata)
        self.kind = QButtonGroup(self)
        row = QHBoxLayout()
        for value, text in ((1, "Right nerve"), (2, "Left nerve"), (0, "Not nerve")):
            b = QRadioButton(text)
            self.kind.addButton(b, value)
            row.addWidget(b)
        self.kind.button(1).setChecked(True)
        self.kind.idToggled.connect(self._kind_changed)
        self.clicks_list = QListWidget()
        self.clicks_list.setMaximumHeight(140)
        self.delete_btn = QPushButton("Delete selected click")
        self.clear_btn = QPushButton("Clear clicks")
        self.status = wrapping_label("Choose an image and a labels layer, press Start, then click on the nerve.")
        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow("Labels", self.labels_combo)
        form.addRow("Model", self.model_combo)
        form.addRow("", self.fast_check)
        lay, footer = panel_layout(self, 120)
        lay.addLayout(form)
        lay.addLayout(row)
        lay.addWidget(wrapping_label(
            "Click on the nerve's centre a few times along its course (3-5 per side), anywhere in the "
            "three views; click what is not nerve to push the result off it. Drag a point to move it "
            "(select mode), or pick it here and delete it. Each change is one undo step of the labels. "
            "Keys: " + " · ".join(f"{k} {what}" for k, what, _ in self.SHORTCUTS)))
        lay.addWidget(self.clicks_list)
        buttons = QHBoxLayout()
        buttons.addWidget(self.delete_btn)
        buttons.addWidget(self.clear_btn)
        lay.addLayout(buttons)
        footer.addWidget(self.start_btn)
        footer.addWidget(self.status)
        self.start_btn.clicked.connect(self.start)
        self.delete_btn.clicked.connect(self.delete_selected)
        self.clear_btn.clicked.connect(self.clear)
        self.session_ = None            # trainer.interactive.InteractiveSession of the running image
        self.points = None
        self.labels_id = None
        self._written = {1: np.empty(0, np.int64), 2: np.empty(0, np.int64)}   # flat indices per side
        self.worker = None
        self._run = None                # the probability worker's progress and cancel
        self._pending = False
        self.last_update_s = float("nan")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(120)
        self._timer.timeout.connect(self.update_nerves)
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            self.listen(ev, self._refresh_layers)
        self._refresh_layers()
        self._refresh_models()
        from ._hub import hub
        from ._lazy_torch import when_devices_known

        self.listen(hub.models_changed, self._refresh_models)     # a fine-tuned model appears at once
        when_devices_known(while_alive(self, lambda devices, notes: self._refresh_models()))   # with metadata
        self.bind_keys(self.SHORTCUTS)

    # -- lists -----------------------------------------------------------------------------------
    def _refresh_layers(self, event=None):
        refill_layer_combo(self.image_combo, image_layers(self.viewer))
        refill_layer_combo(self.labels_combo, labels_layers(self.viewer))

    def _refresh_models(self, event=None):
        from ._lazy_torch import model_entries

        entries = model_entries()
        self._model_metadata.clear()
        self._model_metadata.update({name: meta for name, _, meta in entries if meta is not None})
        refill_combo(self.model_combo, [name for name, _, _ in entries], fallback="ian-default")
        self._follow_model()

    # -- keys ------------------------------------------------------------------------------------
    def mark_right(self):
        self.kind.button(1).setChecked(True)

    def mark_left(self):
        self.kind.button(2).setChecked(True)

    def mark_negative(self):
        self.kind.button(0).setChecked(True)

    def _kind_changed(self, value, checked):
        if checked and self.points is not None:
            self.points.feature_defaults["label"] = value
            self.points.current_face_color = CLICK_COLOURS[value]

    # -- starting ----------------------------------------------------------------------------------
    def start(self):
        """Compute the probability map in a worker, then add the clicks layer (returns the worker)."""
        image = chosen_layer(self.viewer, self.image_combo)
        labels = chosen_layer(self.viewer, self.labels_combo)
        if image is None or labels is None:
            show_info("napari-ian: choose an image and an IAN labels layer on its grid first (Case panel: "
                      "New IAN labels)")
            return None
        if labels.data.shape != image.data.shape:
            show_error(f"napari-ian: {labels.name} is not on the grid of {image.name}")
            return None
        data = np.asarray(image.data)
        spacing = tuple(float(s) for s in image.scale)
        model = self.model_combo.currentText() or None
        fast = self.fast_check.isChecked()

        run = self._run = WorkerProgress("nerve probability for the clicks", INFER, stages_in(self, self.status))

        @thread_worker(ignore_errors=True)
        def work():
            from ._imports import import_torch

            import_torch()
            from .trainer.interactive import InteractiveSession
            from .trainer.workflows import predict_case

            res = predict_case(data, spacing, model, postprocess=False, progress=run, cancel=run.cancelled,
                               fast=fast)
            return InteractiveSession(data, spacing, res.prediction.probability)

        self.worker = work()
        self.worker.returned.connect(while_alive(self, lambda s: self._started(s, image, labels)))
        self.worker.errored.connect(while_alive(self, self._failed))
        self.worker.finished.connect(run.close)
        self.worker.finished.connect(while_alive(self, self._worker_done))
        self.start_btn.setEnabled(False)
        self.status.setText(f"Computing {model or 'ian-default'}'s nerve probability for {image.name}...")
        self.worker.start()
        return self.worker

    def _started(self, session, image, labels):
        self.session_ = session
        self.labels_id = layer_uid(labels)
        self._written = {1: np.empty(0, np.int64), 2: np.empty(0, np.int64)}
        import pandas as pd

        value = self.kind.checkedId()
        kinds = pd.Categorical([], categories=list(CLICK_COLOURS))     # a category: coloured by the cycle
        points = self.viewer.add_points(
            np.empty((0, 3)), name=f"IAN clicks ({labels.name})", ndim=3, size=2.0,
            features={"label": kinds}, feature_defaults={"label": value},
            face_color="label", face_color_cycle=CLICK_COLOURS, border_color="white", border_width=0.1,
            metadata={CLICKS_KEY: self.labels_id}, **on_grid_of(image))
        points.face_color_mode = "cycle"
        self.points = points
        self._kind_changed(value, True)
        self.listen(points.events.data, lambda e: self._timer.start())
        self.listen(points.events.data, self._refresh_list)
        self.viewer.layers.selection.active = points
        points.mode = "add"
        self.status.setText("Click on the nerve: right nerve clicks are red, left blue, 'not nerve' yellow.")

    def _failed(self, exc):
        show_error(f"napari-ian: interactive mode could not start: {' '.join(str(exc).split())}")
        self.status.setText("Could not compute the nerve probability; nothing was changed.")

    def _worker_done(self):
        self.worker = None
        self._run = None                # the probability worker's progress and cancel
        self.start_btn.setEnabled(True)

    # -- clicks --------------------------------------------------------------------------------------
    def clicks(self) -> list:
        """``[(voxel (ap, si, rl) of the labels layer, label)]`` of the clicks layer."""
        labels = find_layer(self.viewer, self.labels_id)
        if self.points is None or labels is None:
            return []
        kinds = np.asarray(self.points.features["label"]) if len(self.points.features) else np.empty(0, int)
        return [(np.asarray(labels.world_to_data(self.points.data_to_world(p)), float), int(k))
                for p, k in zip(np.asarray(self.points.data), kinds)]

    def _refresh_list(self, event=None):
        self.clicks_list.clear()
        for i, (v, k) in enumerate(self.clicks()):
            self.clicks_list.addItem(f"{i + 1}. {CLICK_NAMES[k]} at slice {v[0]:.0f} ({v[1]:.0f}, {v[2]:.0f})")

    def delete_selected(self):
        row = self.clicks_list.currentRow()
        if self.points is None or row < 0:
            return
        self.points.selected_data = {row}
        self.points.remove_selected()

    def clear(self):
        if self.points is not None and len(self.points.data):
            self.points.selected_data = set(range(len(self.points.data)))
            self.points.remove_selected()

    # -- updating ----------------------------------------------------------------------------------
    def update_nerves(self):
        """Recompute the sides whose clicks changed (in a worker) and write them (on return)."""
        labels = find_layer(self.viewer, self.labels_id)
        if self.session_ is None or labels is None:
            return None
        if self.worker is not None:      # one at a time; the latest clicks are taken when it ends
            self._pending = True
            return None
        try:
            changed = self.session_.set_clicks(self.clicks())
        except ValueError as exc:
            show_error(f"napari-ian: {exc}")
            return None
        if not changed:
            return None
        session = self.session_
        import time

        t0 = time.perf_counter()

        @thread_worker(ignore_errors=True)
        def work():
            masks = {side: np.flatnonzero(session.side_mask(side)) for side in changed}
            return masks, session.hints()

        self.worker = work()
        self.worker.returned.connect(while_alive(self, lambda result: self._write(*result, t0)))
        self.worker.errored.connect(while_alive(self, lambda exc: show_error(f"napari-ian: {exc}")))
        self.worker.finished.connect(while_alive(self, self._update_done))
        self.worker.start()
        return self.worker

    def _update_done(self):
        self.worker = None
        if self._pending:
            self._pending = False
            self.update_nerves()

    def _write(self, masks: dict, hints: list, t0: float):
        import time

        labels = find_layer(self.viewer, self.labels_id)
        if labels is None:
            return
        flat = np.asarray(labels.data).reshape(-1)
        shape = labels.data.shape
        with labels.block_history():          # all sides of one click: one undo step
            for side, new in masks.items():
                old = self._written[side]
                leaving = np.setdiff1d(old, new, assume_unique=True)
                leaving = leaving[flat[leaving] == side]       # hand edits to it stay
                arriving = np.setdiff1d(new, old, assume_unique=True)
                arriving = arriving[flat[arriving] == 0]       # never over the other nerve or an edit
                if leaving.size:
                    labels.data_setitem(np.unravel_index(leaving, shape), 0)
                if arriving.size:
                    labels.data_setitem(np.unravel_index(arriving, shape), side)
                self._written[side] = new
        self.last_update_s = time.perf_counter() - t0
        n = {s: int(v.size) for s, v in self._written.items()}
        said = "".join(f" {hint[0].upper()}{hint[1:]}." for hint in hints)
        self.status.setText(f"Right nerve {n[1]} voxels, left nerve {n[2]} voxels "
                            f"(updated in {self.last_update_s:.2f} s).{said}")

    def closing(self):
        if self._run is not None:
            self._run.cancel()       # a probability map still being computed stops between batches
