"""Review panel: go straight to the slices where a prediction failed, in the paper's terms.

With a reference labels layer, every slice and side gets DSC, IoU, precision, recall and the
paper's failure category (:class:`~napari_ian.trainer.review.SliceReview`, the same code as
``ian evaluate``); without one, warnings computed from the prediction alone. This module wires the
panel: which layers are reviewed, live updates when they are painted (a paint on the prediction
marks its slices corrected), navigation and the review status. The table, the strip, the summary,
its 3D figures, the status file and the measurements window are their own modules.
"""
from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QPushButton, QSpinBox

from ._combo import chosen_layer, refill_layer_combo
from ._identity import layer_uid
from ._panel import Panel, while_alive
from ._review_3d import NerveFigures3D
from ._review_status import StatusFile
from ._review_strip import (CATEGORY_COLOURS, NERVE_COLOUR, STATUS_COLOURS, WARNING_COLOUR, ReviewStrip,
                            legend_html)
from ._review_summary import summary_html, summary_tooltip
from ._review_table import ReviewTable, filter_choices, keeps
from ._panel_layout import compact, panel_layout, wrapping_label
from ._slice_edits import SliceWatch
from .trainer.metrics import CATEGORY, SIDES
from .trainer.evaluation import ROW_FIELDS, table_csv
from .trainer.review import STATUS, SliceReview, label_free_warnings, touched_slices

AXES = {"coronal (AP)": 0, "axial (SI)": 1, "sagittal (RL)": 2}
NO_REFERENCE = "(none: warnings from the prediction alone)"
NO_IMAGE = "(none)"
UNREVIEWED, ACCEPTED, CORRECTED = (STATUS.index(s) for s in ("unreviewed", "accepted", "corrected"))


def foreign_labels(data) -> list:
    """Label values other than 0, 1 and 2 (checked by min/max first: ~1 ms instead of np.unique's ~0.1 s)."""
    a = np.asarray(data)
    if a.size == 0 or (a.min() >= 0 and a.max() <= 2):
        return []
    return np.unique(a[(a < 0) | (a > 2)]).tolist()


def is_prediction(layer) -> bool:
    """A labels layer made by the Predict panel (or named like one)."""
    return bool((layer.metadata or {}).get("ian_model")) or "prediction" in layer.name.lower()


class ReviewWidget(Panel):
    """Reference + prediction (any two labels layers) -> per-slice table, strip, navigator, summary."""

    TITLE = "Review"

    SHORTCUTS = (("Shift+N", "next flagged slice", "next_flagged"),
                 ("Shift+P", "previous flagged slice", "previous_flagged"),
                 ("Shift+A", "accept this slice (both sides)", "accept_current"),
                 ("Shift+U", "next unreviewed slice", "next_unreviewed"))

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.review = None            # SliceReview when a reference is chosen
        self.warnings = []            # label-free warnings otherwise
        self.status = None            # (2, n) int8
        self.axis = 0
        self._layers = (None, None)
        self._ids = (None, None)      # stable ids of the reviewed layers (events carry the layers, not proxies)
        self._watches = {}            # layer id -> SliceWatch (which slices an undo/redo changed)
        self._seen_at = {}            # layer id -> the dims point of its last refresh
        self._status_file = None
        self.last_updated = set()
        self._pending = set()
        self._summary = {}
        self.figures_3d = NerveFigures3D(self, self._inputs_3d, self._show_summary)
        self.ref_combo, self.pred_combo = QComboBox(), QComboBox()
        self.image_combo = QComboBox()
        self.axis_combo = QComboBox()
        self.axis_combo.addItems(list(AXES))
        self.run_btn = QPushButton("Review")
        self.mode_label = wrapping_label()
        self.strip = ReviewStrip()
        self.legend = wrapping_label()
        self.filter_combo = QComboBox()
        self.table = ReviewTable()
        self.summary_label = wrapping_label()
        self.summary_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.prev_btn, self.next_btn = QPushButton("◀ Flagged"), QPushButton("Flagged ▶")
        self.accept_btn = QPushButton("Accept")
        self.accept_btn.setToolTip("Accept this slice on both sides (Shift+A)")
        self.unreviewed_btn = QPushButton("Next unreviewed")
        self.unreviewed_btn.setToolTip("The next slice with nerve that is neither accepted nor corrected (Shift+U)")
        self.accept_pass_btn = QPushButton("Accept all passing")
        self.accept_pass_btn.setToolTip("Accept every unreviewed slice whose category is 'pass' (DSC ≥ 0.3)")
        self.csv_btn = QPushButton("Export CSV...")
        self.marker_spin = QSpinBox()
        self.marker_spin.setRange(-1, 100000)
        self.marker_spin.setSpecialValueText("none")
        self.marker_spin.setValue(-1)
        self.marker_spin.setToolTip("Slice where the anterior loop / mental foramen region begins "
                                    "(slices before it, anterior, are read as that region)")
        self.measure_btn = QPushButton("Measurements...")
        self.measure_btn.setToolTip("Cross-sectional area (mm²), mean and max signal and distance along the "
                                    "nerve per slice: a plot, per-region means and a CSV")
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        form.addRow("Reference", self.ref_combo)
        form.addRow("Prediction", self.pred_combo)
        form.addRow("Image (signal)", self.image_combo)
        axis_row = QHBoxLayout()
        axis_row.addWidget(self.axis_combo, 1)
        axis_row.addWidget(self.run_btn, 1)
        form.addRow("Slice axis", axis_row)
        for combo in (self.ref_combo, self.pred_combo, self.image_combo, self.axis_combo, self.filter_combo):
            compact(combo)
        # a table of at least a few rows; in a dock too short for everything the panel scrolls
        self.table.setMinimumHeight(110)
        lay, footer = panel_layout(self, 200, grow_body=True)
        footer.addWidget(self.summary_label)      # the case's figures stay in view under the table
        lay.addLayout(form)
        lay.addWidget(self.mode_label)
        lay.addWidget(self.strip)
        lay.addWidget(self.legend)
        for buttons in ((self.prev_btn, self.next_btn, self.accept_btn), (self.unreviewed_btn, self.accept_pass_btn)):
            row = QHBoxLayout()
            for b in buttons:
                row.addWidget(b)
            lay.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(QLabel("Show"))
        row.addWidget(self.filter_combo, 1)
        row.addWidget(self.csv_btn)
        lay.addLayout(row)
        lay.addWidget(self.table, 1)
        low = QHBoxLayout()
        low.addWidget(QLabel("Loop ends at"))
        low.addWidget(self.marker_spin)
        low.addWidget(self.measure_btn)
        lay.addLayout(low)
        lay.addWidget(wrapping_label("Keys: " + " · ".join(f"{k} {what}" for k, what, _ in self.SHORTCUTS)
                                     + ". Painting on a slice marks it corrected."))
        self.run_btn.clicked.connect(self.run)
        self.strip.clicked.connect(self.go_to_slice)
        self.table.row_clicked.connect(self.go_to_slice)
        self.filter_combo.currentIndexChanged.connect(lambda *_: self._fill_table())
        self.prev_btn.clicked.connect(self.previous_flagged)
        self.next_btn.clicked.connect(self.next_flagged)
        self.accept_btn.clicked.connect(self.accept_current)
        self.unreviewed_btn.clicked.connect(self.next_unreviewed)
        self.accept_pass_btn.clicked.connect(self.accept_all_passing)
        self.csv_btn.clicked.connect(self.export_csv_dialog)
        self.measure_btn.clicked.connect(self.show_measurements)
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            self.listen(ev, self._refresh_layers)
        self.listen(self.viewer.layers.events.inserted, self._follow_new_prediction)
        self.listen(self.viewer.dims.events.current_step, self._dims_changed)
        self.bind_keys(self.SHORTCUTS)
        self._refresh_layers()

    def closing(self):
        self._disconnect()
        self.figures_3d.stop()

    # -- layer lists ---------------------------------------------------------------------------
    def _refresh_layers(self, event=None):
        labels = [ly for ly in self.viewer.layers if isinstance(ly, Labels)]
        images = [ly for ly in self.viewer.layers if isinstance(ly, Image) and not ly.rgb]
        first = self.pred_combo.count() == 0
        refill_layer_combo(self.ref_combo, labels, extra=[NO_REFERENCE])
        refill_layer_combo(self.pred_combo, labels)
        refill_layer_combo(self.image_combo, images, extra=[NO_IMAGE])
        # sensible first choice: a ground truth / reference as reference, a prediction as prediction
        if self.pred_combo.count() and (first or self._layers[1] is None):
            preds = [ly for ly in labels if is_prediction(ly)]
            refs = [ly for ly in labels if "truth" in ly.name.lower() or "reference" in ly.name.lower()]
            if preds:
                self._choose(self.pred_combo, preds[-1])
            if refs:
                self._choose(self.ref_combo, refs[0])
            elif preds:
                self.ref_combo.setCurrentText(NO_REFERENCE)

    @staticmethod
    def _choose(combo, layer):
        combo.setCurrentIndex(max(combo.findData(layer_uid(layer)), 0))

    def _follow_new_prediction(self, event):
        """A new prediction of the reviewed grid replaces the old one in the panel (and is reviewed)."""
        new, old = event.value, self._layers[1]
        if not isinstance(new, Labels) or not (new.metadata or {}).get("ian_model") or old is None:
            return
        if new.data.shape != old.data.shape or layer_uid(new) == self._ids[1]:
            return
        self._refresh_layers()            # napari calls the latest connected callback first
        self._choose(self.pred_combo, new)
        if self.run():
            self.mode_label.setText(self.mode_label.text() + f"<br>Now reviewing the new prediction "
                                    f"<b>{new.name}</b> (was {old.name}).")

    # -- computing ----------------------------------------------------------------------------------
    def check_layers(self, ref, pred) -> str | None:
        """A one-line reason these layers cannot be reviewed together, or None."""
        if pred is None:
            return "choose a prediction labels layer"
        if pred.ndim != 3:
            return f"{pred.name} is {pred.ndim}D; the review needs 3D labels"
        if ref is not None:
            if ref.ndim != 3:
                return f"{ref.name} is {ref.ndim}D; the review needs 3D labels"
            if ref.data.shape != pred.data.shape:
                return f"{ref.name} has shape {ref.data.shape} and {pred.name} {pred.data.shape}: not the same grid"
            if not np.allclose(ref.scale, pred.scale) or not np.allclose(ref.translate, pred.translate):
                return (f"{ref.name} and {pred.name} have different voxel sizes or positions "
                        f"({tuple(np.round(ref.scale, 3))} vs {tuple(np.round(pred.scale, 3))} mm)")
        return None

    def run(self):
        """(Re)compute the review for the chosen layers and go to the first flagged slice; True when it could."""
        ref = chosen_layer(self.viewer, self.ref_combo)
        pred = chosen_layer(self.viewer, self.pred_combo)
        problem = self.check_layers(ref, pred)
        self._disconnect()
        if problem:
            self.review, self.warnings, self.status = None, [], None
            self.mode_label.setText(f"<b>Cannot review:</b> {problem}.")
            self.table.clear_rows()
            self.strip.set_colours(np.zeros((0, 0), object))
            self.summary_label.setText("")
            show_info(f"napari-ian: {problem}")
            return False
        self.axis = AXES[self.axis_combo.currentText()]
        notes = []
        other = foreign_labels(pred.data)
        if other:
            notes.append(f"{pred.name} holds values {', '.join(map(str, other[:5]))} besides 1 and 2; "
                         "only 1 (right) and 2 (left) are reviewed")
        if ref is not None:
            if not np.asarray(ref.data).any():
                notes.append(f"the reference {ref.name} is empty: every predicted slice counts as a "
                             "false-positive slice")
            if not ref.contour:
                ref.contour = 1   # an outline: the reference no longer looks like the prediction
            self.review = SliceReview(ref.data, pred.data, self.axis)
            self.warnings = []
            mode = (f"<b>{pred.name}</b> against <b>{ref.name}</b> (outlined): DSC per "
                    f"{self.axis_combo.currentText().split()[0]} slice.")
        else:
            self.review = None
            self.warnings = label_free_warnings(pred.data, pred.scale, self.axis, self._probability_for(pred))
            mode = (f"<b>No reference</b>: <i>warnings</i> from {pred.name} alone (gaps, jumps, stray pieces, "
                    "areas, low probability) — likely failures, <i>not DSC</i>.")
        self._layers = (ref, pred)
        self._ids = tuple(layer_uid(ly) if ly is not None else None for ly in (ref, pred))
        self.figures_3d.new_review()   # 3D numbers of an earlier review are stale now
        self._status_file = StatusFile(pred, self.axis)
        self.status, note = self._status_file.load()
        if note:
            notes.append(note)
        self.mode_label.setText(mode + "".join(f"<br>Note: {n}." for n in notes))
        self.legend.setText(legend_html(ref is not None))
        self.accept_pass_btn.setEnabled(ref is not None)
        self._fill_filter()
        self._fill_table()
        self._paint_strip()
        self._start_summary()
        self._connect()
        flagged = self.flagged_slices()
        if flagged.size:   # once the table is shown: two shorter stops of the GUI thread than one long one
            QTimer.singleShot(0, while_alive(self, lambda: self.go_to_slice(int(flagged[0]))))
        return True

    def _probability_for(self, pred):
        from ._predict_widget import PROBABILITY_OF

        uid = layer_uid(pred)
        layer = next((ly for ly in self.viewer.layers if (ly.metadata or {}).get(PROBABILITY_OF) == uid), None)
        return np.asarray(layer.data) if layer is not None and layer.data.shape == pred.data.shape else None

    # -- live updates -------------------------------------------------------------------------------
    def _connect(self):
        self._watches, self._seen_at = {}, {}
        for layer in self._layers:
            if layer is not None:
                layer.events.paint.connect(self._painted)
                layer.events.set_data.connect(self._maybe_undone)
                self._watches[layer_uid(layer)] = SliceWatch(layer.data, self.axis)
                self._seen_at[layer_uid(layer)] = tuple(self.viewer.dims.point)

    def _disconnect(self):
        for layer in self._layers:
            if layer is not None:
                for ev, fn in ((layer.events.paint, self._painted), (layer.events.set_data, self._maybe_undone)):
                    try:
                        ev.disconnect(fn)
                    except (TypeError, ValueError, RuntimeError):
                        pass
        self._watches = {}

    def _maybe_undone(self, event):
        # napari's undo and redo emit only set_data, as slicing does: after a move to another slice
        # nothing was written, else the slices' checksums tell what an undo or redo changed
        uid = layer_uid(event.source)
        watch = self._watches.get(uid)
        point = tuple(self.viewer.dims.point)
        moved, self._seen_at[uid] = self._seen_at.get(uid) != point, point
        if watch is None or self._pending or moved:
            return
        changed = watch.changed(event.source.data)
        if changed.size:
            self.update_slices(changed)

    def _painted(self, event):
        sl = touched_slices(event.value, self.axis)
        if sl is None:
            sl = np.arange(self.status.shape[1])
        if layer_uid(event.source) == self._ids[1] and len(sl):
            for s in self._painted_sides(event.value):
                self.status[s - 1, sl] = CORRECTED
            self._status_file.save(self.status)
        # napari announces a data_setitem edit before writing it: recompute once control returns
        first = not self._pending
        self._pending.update(int(s) for s in sl)
        if first:
            QTimer.singleShot(0, while_alive(self, self._flush_pending))

    def _flush_pending(self):
        sl, self._pending = sorted(self._pending), set()
        if sl and self._layers[1] is not None:
            for layer in self._layers:
                if layer is not None and layer_uid(layer) in self._watches:
                    self._watches[layer_uid(layer)].seen(layer.data, sl)
            self.update_slices(sl)

    @staticmethod
    def _painted_sides(atoms):
        sides = set()
        for atom in atoms or []:
            new = getattr(atom, "new_value", None)
            if new is None and isinstance(atom, tuple) and len(atom) == 3:
                new = atom[2]
            vals = np.unique(np.asarray(new)).tolist() if new is not None else [0]
            for v in vals:
                sides.update([1, 2] if v == 0 else ([v] if v in (1, 2) else []))
        return sorted(sides)

    def update_slices(self, slices):
        """Recompute ``slices`` and replace only their table rows and strip cells."""
        slices = np.asarray(slices, dtype=int)
        if self.review is not None:
            self.review.update_slices(slices)
            wanted = set(slices.tolist())
            new_rows = [r for r in self.all_rows() if r["slice"] in wanted]
        else:
            # warnings compare neighbouring slices (gaps, jumps): an edit can change those of others
            ref, pred = self._layers
            self.warnings = label_free_warnings(pred.data, pred.scale, self.axis, self._probability_for(pred))
            slices = np.arange(self.status.shape[1])
            new_rows = self.all_rows()
        self.last_updated = {int(s) for s in slices}
        self.table.replace(self.last_updated, new_rows, self._keep)
        self._paint_strip()
        self._start_summary()

    # -- table ---------------------------------------------------------------------------------------
    def all_rows(self) -> list[dict]:
        """The rows behind the table (before filtering), with each slice's review status."""
        rows = self.review.rows() if self.review is not None else [dict(w) for w in self.warnings]
        for r in rows:
            r["status"] = STATUS[self.status[r["label"] - 1, r["slice"]]]
        return rows

    def _fill_filter(self):
        self.filter_combo.blockSignals(True)
        self.filter_combo.clear()
        self.filter_combo.addItems(filter_choices(self.review is not None))
        self.filter_combo.blockSignals(False)

    def _keep(self, row) -> bool:
        return keeps(self.filter_combo.currentText(), row)

    def _fill_table(self):
        if self.status is not None:
            self.table.fill(self.all_rows(), self._keep, self.review is not None)

    # -- strip and navigation -------------------------------------------------------------------------
    def _paint_strip(self):
        n = self.status.shape[1]
        colours = np.empty((3, n), object)
        if self.review is not None:
            cats = self.review.categories()
            for s in range(2):
                colours[s] = [CATEGORY_COLOURS[CATEGORY[c]] for c in cats[s]]
        else:
            pred = self._layers[1]
            has = np.moveaxis(np.asarray(pred.data), self.axis, 0).reshape(n, -1)
            for s, lab in enumerate(SIDES):
                colours[s] = np.where((has == lab).any(axis=1), NERVE_COLOUR, CATEGORY_COLOURS["true-negative slice"])
            for w in self.warnings:
                colours[w["label"] - 1, w["slice"]] = WARNING_COLOUR
        colours[2] = [STATUS_COLOURS[STATUS[v]] for v in self.status.max(axis=0)]
        self.strip.set_colours(colours)
        self._dims_changed()

    def flagged_slices(self) -> np.ndarray:
        if self.review is not None:
            return self.review.flagged()
        return np.unique([w["slice"] for w in self.warnings]).astype(int)

    def _current(self) -> int:
        offset = self.viewer.dims.ndim - 3
        return int(self.viewer.dims.current_step[offset + self.axis])

    def _dims_changed(self, event=None):
        if self.status is not None:
            self.strip.current = self._current()
            self.strip.update()

    def _step(self, candidates, forward: bool, what: str) -> int | None:
        """Go to the next (previous) of ``candidates`` after (before) this slice, wrapping round at the end."""
        c = np.asarray(candidates, dtype=int)
        if not c.size:
            self.viewer.status = f"napari-ian: no {what} slice"
            return None
        here = self._current()
        ahead = c[c > here] if forward else c[c < here][::-1]
        target = int(ahead[0]) if ahead.size else int(c[0] if forward else c[-1])
        if not ahead.size:
            self.viewer.status = f"napari-ian: wrapped round to the {'first' if forward else 'last'} {what} slice"
        self.go_to_slice(target)
        return target

    def next_flagged(self):
        return self._step(self.flagged_slices(), True, "flagged")

    def previous_flagged(self):
        return self._step(self.flagged_slices(), False, "flagged")

    def unreviewed_slices(self) -> np.ndarray:
        """Slices with nerve (in the reference or the prediction) not yet accepted or corrected on that side."""
        if self.status is None:
            return np.zeros(0, int)
        n = self.status.shape[1]
        nerve = np.zeros((2, n), bool)
        for layer in self._layers:
            if layer is not None:
                a = np.moveaxis(np.asarray(layer.data), self.axis, 0).reshape(n, -1)
                for s, lab in enumerate(SIDES):
                    nerve[s] |= (a == lab).any(axis=1)
        return np.flatnonzero((nerve & (self.status == UNREVIEWED)).any(axis=0))

    def next_unreviewed(self):
        return self._step(self.unreviewed_slices(), True, "unreviewed")

    def go_to_slice(self, index: int, label: int | None = None):
        """Move every view to slice ``index``, with the other two views through the nerve there
        (``label``'s, else either) and the main view centred on it."""
        ref, pred = self._layers
        if pred is None:
            return
        offset = self.viewer.dims.ndim - 3
        vox = []
        for layer in (pred, ref):
            if layer is None:
                continue
            sl = np.take(np.asarray(layer.data), int(index), axis=self.axis)
            m = sl == label if label else sl > 0
            if m.any():
                vox = np.argwhere(m).mean(axis=0)
                break
        if not len(vox):
            self.viewer.dims.set_current_step(offset + self.axis, int(index))
            return
        world = np.asarray(pred.data_to_world(np.insert(vox, self.axis, index)), dtype=float)[-3:]
        # one move of all three slices (one refresh): this one, and the side views' through the nerve
        self.viewer.dims.set_point(tuple(range(offset, offset + 3)), tuple(float(w) for w in world))
        self.viewer.dims.set_current_step(offset + self.axis, int(index))   # exactly this slice
        cam = self.viewer.scene.camera if hasattr(self.viewer, "scene") else self.viewer.camera
        shown = [d - offset for d in self.viewer.dims.displayed]
        cam.center = tuple(world[shown])

    # -- review status --------------------------------------------------------------------------------
    def _set_status(self, mask: np.ndarray) -> int:
        """Accept the unreviewed (side, slice) cells in ``mask``; save, update; returns how many."""
        change = mask & (self.status == UNREVIEWED)
        if not change.any():
            return 0
        self.status[change] = ACCEPTED
        self._status_file.save(self.status)
        changed = np.flatnonzero(change.any(axis=0))
        self.table.replace(changed, [r for r in self.all_rows() if r["slice"] in set(changed.tolist())], self._keep)
        self._paint_strip()
        return int(change.sum())

    def accept_current(self):
        """Mark the current slice accepted on both sides (a corrected slice stays corrected)."""
        if self.status is None:
            show_info("napari-ian: press Review first")
            return
        i = self._current()
        if 0 <= i < self.status.shape[1]:
            mask = np.zeros_like(self.status, dtype=bool)
            mask[:, i] = True
            self._set_status(mask)

    def accept_all_passing(self) -> int:
        """Accept every unreviewed slice and side whose category is 'pass'; returns how many."""
        if self.review is None:
            show_info("napari-ian: accepting passing slices needs a reference (press Review with one)")
            return 0
        n = self._set_status(self.review.categories() == CATEGORY.index("pass"))
        self.viewer.status = f"napari-ian: accepted {n} passing slice{'s' if n != 1 else ''}"
        return n

    # -- summary ---------------------------------------------------------------------------------------
    def _start_summary(self):
        if self.review is None:
            n = len(self.warnings)
            self.summary_label.setToolTip("")
            self.summary_label.setText(f"{n} warning{'s' if n != 1 else ''} on "
                                       f"{len(self.flagged_slices())} slices (not DSC).")
            return
        self._summary = self.review.summary()
        self._show_summary(None)
        self.figures_3d.request()

    def _show_summary(self, nerve3d, note=""):
        self.summary_label.setText(summary_html(self._summary, nerve3d, note))
        self.summary_label.setToolTip(summary_tooltip(self._summary, nerve3d))

    def _inputs_3d(self):
        ref, pred = self._layers
        if self.review is None or ref is None or pred is None:
            return None
        return ref.data, pred.data, tuple(pred.scale), self.axis

    # -- export ----------------------------------------------------------------------------------------
    def export_csv(self, path) -> str:
        """Write the whole table (unfiltered) with each slice's review status to ``path``
        atomically: against a reference, every slice of both sides in ``ian evaluate --csv``'s
        format (the same bytes for the same pair, plus the status); otherwise the warnings."""
        from .trainer.atomic import atomic_write_text

        if self.review is not None:
            text = table_csv(self.review.table_rows(self.status), ROW_FIELDS)
        else:
            text = table_csv(self.all_rows(), ["slice", "side", "label", "kind", "detail", "status"])
        atomic_write_text(path, text)
        return str(path)

    def export_csv_dialog(self):
        if self.status is None:
            show_info("napari-ian: press Review first")
            return None
        path, _ = QFileDialog.getSaveFileName(self, "Export review table", "review.csv", "CSV (*.csv)")
        if not path:
            return None
        try:
            return self.export_csv(path)
        except OSError as exc:
            show_error(f"napari-ian: {path}: {exc.strerror or exc}")
            return None

    # -- measurements ----------------------------------------------------------------------------------
    def show_measurements(self):
        """Compute the measurements and draw their plot in a worker, then open the window.

        Returns the worker (None when the inputs are not usable); the window is
        ``self.measure_window`` once it has opened.
        """
        from ._measurements import measure_in_worker

        pred, image = self._layers[1], chosen_layer(self.viewer, self.image_combo)
        try:
            self.measurements_inputs(pred, image)
        except ValueError as exc:
            show_info(f"napari-ian: {exc}")
            return None
        marker = self.marker_spin.value() if self.marker_spin.value() >= 0 else None
        worker = measure_in_worker(pred.data, image.data, pred.scale, self.axis, marker)
        worker.returned.connect(while_alive(self, lambda res: self._open_measurements(*res, marker)))
        worker.errored.connect(lambda exc: show_error(f"napari-ian: measurements failed: {exc}"))
        self.measure_btn.setEnabled(False)
        worker.finished.connect(while_alive(self, lambda: self.measure_btn.setEnabled(True)))
        worker.start()
        return worker

    def _open_measurements(self, rows, regions, bgrx, marker):
        from ._measurements import MeasurementsWindow

        if getattr(self, "measure_window", None) is not None:
            self.measure_window.close()
        self.measure_window = MeasurementsWindow(rows, regions, marker, bgrx)
        self.measure_window.show()
        self.on_close(self.measure_window.close)

    @staticmethod
    def measurements_inputs(pred, image):
        if pred is None:
            raise ValueError("press Review first")
        if image is None or image.data.shape != pred.data.shape:
            raise ValueError("choose the MR image the prediction belongs to (same grid) under 'Image (signal)'")


__all__ = ["ReviewWidget"]
