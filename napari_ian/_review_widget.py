"""Review panel: go straight to the slices where a prediction failed, in the paper's terms.

With a reference labels layer, every slice and side gets DSC, IoU, precision, recall and the
paper's failure category (:class:`~napari_ian.trainer.review.SliceReview`, the same code as
``ian evaluate``); without one,
warnings computed from the prediction alone. A colour strip along the slice axis and a sortable
table both move the viewer to a slice; brush strokes recompute only the slices they touched.
Review status per slice (unreviewed / accepted / corrected) is saved in the case's workspace.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QRectF, Qt, QTimer, Signal
from qtpy.QtGui import QColor, QPainter
from qtpy.QtWidgets import (QAbstractItemView, QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QHeaderView,
                            QLabel, QPushButton, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ._combo import refill_combo
from ._identity import layer_uid
from ._layers import geometry_of
from ._panel import Panel, while_alive
from ._review_summary import summary_html, summary_tooltip
from ._scroll import compact, panel_layout, wrapping_label
from ._slice_edits import SliceWatch
from .trainer.metrics import CATEGORY, SIDES
from .trainer.review import (FLAGGED, STATUS, SliceReview, label_free_warnings, load_status,
                             measurements_by_region, nerve_measurements, new_status, rows_to_csv, status_to_json,
                             touched_slices)

AXES = {"coronal (AP)": 0, "axial (SI)": 1, "sagittal (RL)": 2}
NO_REFERENCE = "(none: warnings from the prediction alone)"
CATEGORY_COLOURS = {
    "true-negative slice": "#3a3f4b", "false-positive slice": "#b05cd6", "complete failure": "#e0303a",
    "tracking failure": "#f08c28", "boundary failure": "#f2d230", "pass": "#38b54a"}
WARNING_COLOUR, NERVE_COLOUR = "#f08c28", "#38b54a"
STATUS_COLOURS = {"unreviewed": "#3a3f4b", "accepted": "#4aa3ff", "corrected": "#ff5fd2"}


def foreign_labels(data) -> list:
    """Label values other than 0, 1 and 2 (checked by min/max first: ~1 ms instead of np.unique's ~0.1 s)."""
    a = np.asarray(data)
    if a.size == 0 or (a.min() >= 0 and a.max() <= 2):
        return []
    return np.unique(a[(a < 0) | (a > 2)]).tolist()


class ReviewStrip(QWidget):
    """Rows of coloured cells along the slice axis (right, left, review status); click to go."""

    clicked = Signal(int)

    def __init__(self):
        super().__init__()
        self.colours = np.zeros((0, 0), object)   # (rows, n) colour names
        self.current = -1
        self.setMinimumHeight(46)
        self.setToolTip("Rows: right IAN, left IAN, review status. Click a slice to go there.")

    def set_colours(self, colours):
        self.colours = colours
        self.update()

    def slice_at(self, x: float) -> int:
        n = self.colours.shape[1]
        return int(np.clip(x / max(self.width(), 1) * n, 0, n - 1)) if n else -1

    def paintEvent(self, event):
        p = QPainter(self)
        rows, n = self.colours.shape if self.colours.ndim == 2 else (0, 0)
        if not n:
            return
        w, h = self.width() / n, self.height() / rows
        for r in range(rows):
            for i in range(n):
                p.fillRect(QRectF(i * w, r * h, w + 0.5, h - 2), QColor(self.colours[r, i]))
        if 0 <= self.current < n:
            p.setPen(QColor("white"))
            p.drawRect(QRectF(self.current * w, 0, max(w, 2), self.height() - 1))

    def mousePressEvent(self, event):
        pos = event.position() if hasattr(event, "position") else event.pos()
        i = self.slice_at(pos.x())
        if i >= 0:
            self.clicked.emit(i)


class ReviewWidget(Panel):
    """Reference + prediction (any two labels layers) -> per-slice table, strip, navigator, summary."""

    TITLE = "Review"

    SHORTCUTS = (("Shift+N", "next flagged slice", "next_flagged"),
                 ("Shift+P", "previous flagged slice", "previous_flagged"),
                 ("Shift+A", "accept this slice (both sides)", "accept_current"))

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        from ._threads import ensure_spare_pool_threads

        ensure_spare_pool_threads()   # see _threads.py: workers must not starve Qt's own pool tasks
        self.review = None            # SliceReview when a reference is chosen
        self.warnings = []            # label-free warnings otherwise
        self.status = None            # (2, n) int8
        self.axis = 0
        self._layers = (None, None)
        self._ids = (None, None)      # stable ids of the reviewed layers (events carry the layers, not proxies)
        self._watches = {}            # layer id -> SliceWatch (which slices an undo/redo changed)
        self._row_items = {}          # (slice, side) -> list of QTableWidgetItem (for targeted updates)
        self.last_updated = set()
        self._pending = set()
        self._3d_worker, self._3d_dirty, self._3d_gen = None, False, 0
        self._3d_timer = QTimer(self)
        self._3d_timer.setSingleShot(True)
        self._3d_timer.setInterval(400)
        self._3d_timer.timeout.connect(self._run_3d)
        self.ref_combo, self.pred_combo = QComboBox(), QComboBox()
        self.image_combo = QComboBox()
        self.axis_combo = QComboBox()
        self.axis_combo.addItems(list(AXES))
        self.run_btn = QPushButton("Review")
        self.mode_label = wrapping_label()
        self.strip = ReviewStrip()
        self.filter_combo = QComboBox()
        self.table = QTableWidget(0, 0)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        # columns fit their contents once per fill; the table scrolls sideways, the panel never widens
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.summary_label = wrapping_label()
        self.summary_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.prev_btn, self.next_btn = QPushButton("◀ Flagged"), QPushButton("Flagged ▶")
        self.accept_btn = QPushButton("Accept")
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
        nav = QHBoxLayout()
        for b in (self.prev_btn, self.next_btn, self.accept_btn):
            nav.addWidget(b)
        low = QHBoxLayout()
        low.addWidget(QLabel("Loop ends at"))
        low.addWidget(self.marker_spin)
        low.addWidget(self.measure_btn)
        for combo in (self.ref_combo, self.pred_combo, self.image_combo, self.axis_combo, self.filter_combo):
            compact(combo)
        # a table of at least a few rows; in a dock too short for everything the panel scrolls
        self.table.setMinimumHeight(120)
        lay, footer = panel_layout(self, 200, grow_body=True)
        footer.addWidget(self.summary_label)      # the case's figures stay in view under the table
        lay.addLayout(form)
        lay.addWidget(self.mode_label)
        lay.addWidget(self.strip)
        lay.addLayout(nav)
        row = QHBoxLayout()
        row.addWidget(QLabel("Show"))
        row.addWidget(self.filter_combo, 1)
        row.addWidget(self.csv_btn)
        lay.addLayout(row)
        lay.addWidget(self.table, 1)
        lay.addLayout(low)
        hint = wrapping_label("Keys: " + " · ".join(f"{k} {what}" for k, what, _ in self.SHORTCUTS)
                              + ". Painting on a slice marks it corrected.")
        lay.addWidget(hint)
        self.run_btn.clicked.connect(self.run)
        self.strip.clicked.connect(self.go_to_slice)
        self.table.cellClicked.connect(self._row_clicked)
        self.filter_combo.currentIndexChanged.connect(lambda *_: self._fill_table())
        self.prev_btn.clicked.connect(self.previous_flagged)
        self.next_btn.clicked.connect(self.next_flagged)
        self.accept_btn.clicked.connect(self.accept_current)
        self.csv_btn.clicked.connect(self.export_csv_dialog)
        self.measure_btn.clicked.connect(self.show_measurements)
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            ev.connect(self._refresh_layers)
        self.viewer.dims.events.current_step.connect(self._dims_changed)
        for key, _, method in self.SHORTCUTS:
            self.viewer.bind_key(key, self._key(method), overwrite=True)
        self._refresh_layers()

    def _key(self, method):
        def action(viewer):
            getattr(self, method)()
        action.__name__ = f"napari_ian_review_{method}"
        return action

    # -- layer lists ---------------------------------------------------------------------------
    def _refresh_layers(self, event=None):
        labels = [ly.name for ly in self.viewer.layers if isinstance(ly, Labels)]
        images = [ly.name for ly in self.viewer.layers if isinstance(ly, Image) and not ly.rgb]
        for combo, names in ((self.ref_combo, labels + [NO_REFERENCE]), (self.pred_combo, labels),
                             (self.image_combo, images + ["(none)"])):
            refill_combo(combo, names)
        # sensible first choice: a ground truth / reference as reference, a prediction as prediction
        if self.pred_combo.count() and not self._layers[1]:
            preds = [n for n in labels if "prediction" in n.lower()]
            refs = [n for n in labels if "truth" in n.lower() or "reference" in n.lower()]
            if preds:
                self.pred_combo.setCurrentText(preds[-1])
            if refs:
                self.ref_combo.setCurrentText(refs[0])
            elif preds:
                self.ref_combo.setCurrentText(NO_REFERENCE)

    def _layer(self, name):
        return self.viewer.layers[name] if name in self.viewer.layers else None

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
        """(Re)compute the review for the chosen layers; returns True when it could."""
        ref = self._layer(self.ref_combo.currentText())
        pred = self._layer(self.pred_combo.currentText())
        problem = self.check_layers(ref, pred)
        self._disconnect()
        if problem:
            self.review, self.warnings = None, []
            self.mode_label.setText(f"<b>Cannot review:</b> {problem}.")
            self.table.setRowCount(0)
            self.strip.set_colours(np.zeros((0, 0), object))
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
            self.review = SliceReview(ref.data, pred.data, self.axis)
            self.warnings = []
            mode = f"<b>{pred.name}</b> against <b>{ref.name}</b>: DSC per {self.axis_combo.currentText().split()[0]} slice."
        else:
            self.review = None
            self.warnings = label_free_warnings(pred.data, pred.scale, self.axis, self._probability_for(pred))
            mode = (f"<b>No reference</b>: <i>warnings</i> from {pred.name} alone (gaps, jumps, stray pieces, "
                    "areas, low probability) — likely failures, <i>not DSC</i>.")
        self._layers = (ref, pred)
        self._ids = tuple(layer_uid(ly) if ly is not None else None for ly in (ref, pred))
        self._3d_gen = getattr(self, "_3d_gen", 0) + 1   # 3D numbers of an earlier review are stale now
        self._load_status(pred)
        self.mode_label.setText(mode + "".join(f"<br>Note: {n}." for n in notes))
        self._fill_filter()
        self._fill_table()
        self._paint_strip()
        self._start_summary()
        self._connect()
        return True

    def _probability_for(self, pred):
        model = (pred.metadata or {}).get("ian_model", {}).get("name")
        name = f"{model} probability" if model else None
        layer = self._layer(name) if name else None
        return np.asarray(layer.data) if layer is not None and layer.data.shape == pred.data.shape else None

    # -- live updates -------------------------------------------------------------------------------
    def _connect(self):
        self._watches = {}
        for layer in self._layers:
            if layer is not None:
                layer.events.paint.connect(self._painted)
                layer.events.set_data.connect(self._maybe_undone)
                self._watches[layer_uid(layer)] = SliceWatch(layer.data, self.axis)

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
        # napari's undo and redo emit only set_data (as slicing does): the slices' checksums tell
        watch = self._watches.get(layer_uid(event.source))
        if watch is None or self._pending:
            return
        changed = watch.changed(event.source.data)
        if changed.size:
            self.update_slices(changed)

    def _painted(self, event):
        sl = touched_slices(event.value, self.axis)
        if sl is None:
            sl = np.arange(self.status.shape[1])
        if layer_uid(event.source) == self._ids[1] and len(sl):
            sides = self._painted_sides(event.value)
            for s in sides:
                self.status[s - 1, sl] = STATUS.index("corrected")
            self._save_status()
        # napari announces a data_setitem edit before writing it: recompute once control returns
        first = not self._pending
        self._pending.update(int(s) for s in sl)
        if first:
            QTimer.singleShot(0, self._flush_pending)

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
            new_rows = [r for r in self.review.rows() if r["slice"] in set(slices.tolist())]
        else:
            # warnings compare neighbouring slices (gaps, jumps): an edit can change those of others
            ref, pred = self._layers
            self.warnings = label_free_warnings(pred.data, pred.scale, self.axis, self._probability_for(pred))
            slices = np.arange(self.status.shape[1])
            new_rows = self._warning_rows()
        self.last_updated = {int(s) for s in slices}
        self._replace_rows(set(self.last_updated), new_rows)
        self._paint_strip()
        self._start_summary()

    # -- table ---------------------------------------------------------------------------------------
    def _columns(self):
        if self.review is not None:
            return ["slice", "side", "dsc", "iou", "precision", "recall", "category", "status"]
        return ["slice", "side", "kind", "detail", "status"]

    def _warning_rows(self):
        return [dict(w) for w in self.warnings]

    def all_rows(self) -> list[dict]:
        """The rows behind the table (before filtering), with each slice's review status."""
        rows = self.review.rows() if self.review is not None else self._warning_rows()
        for r in rows:
            r["status"] = STATUS[self.status[r["label"] - 1, r["slice"]]]
        return rows

    def _fill_filter(self):
        self.filter_combo.blockSignals(True)
        self.filter_combo.clear()
        if self.review is not None:
            self.filter_combo.addItems(["flagged (failures and false-positive slices)", "all slices with nerve"]
                                       + [c for c in CATEGORY if c != "true-negative slice"])
        else:
            from .trainer.review import WARNING_KINDS
            self.filter_combo.addItems(["all warnings"] + list(WARNING_KINDS))
        self.filter_combo.blockSignals(False)

    def _keep(self, row) -> bool:
        f = self.filter_combo.currentText()
        if f.startswith("flagged"):
            return CATEGORY.index(row["category"]) in FLAGGED
        if f.startswith("all"):
            return True
        return row.get("category", row.get("kind")) == f

    def _fill_table(self):
        cols = self._columns()
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setColumnCount(len(cols))
        self.table.setHorizontalHeaderLabels(cols)
        self.table.setRowCount(0)
        self._row_items = {}
        for r in self.all_rows():
            if self._keep(r):
                self._append_row(r, cols)
        self.table.resizeColumnsToContents()
        self.table.setSortingEnabled(True)

    def _append_row(self, r, cols):
        i = self.table.rowCount()
        self.table.insertRow(i)
        items = []
        for j, c in enumerate(cols):
            v = r.get(c, "")
            item = QTableWidgetItem()
            if isinstance(v, float):
                item.setData(Qt.DisplayRole, "" if np.isnan(v) else round(v, 3))
            elif isinstance(v, (int, np.integer)):
                item.setData(Qt.DisplayRole, int(v))
            else:
                item.setText(str(v))
            item.setData(Qt.UserRole, (int(r["slice"]), r["label"]))
            self.table.setItem(i, j, item)
            items.append(item)
        self._row_items.setdefault((int(r["slice"]), r["side"]), []).append(items)

    def _replace_rows(self, slices: set, new_rows):
        cols = self._columns()
        self.table.setSortingEnabled(False)
        for key in [k for k in self._row_items if k[0] in slices]:
            for items in self._row_items.pop(key):
                self.table.removeRow(self.table.row(items[0]))
        for r in new_rows:
            r["status"] = STATUS[self.status[r["label"] - 1, r["slice"]]]
            if self._keep(r):
                self._append_row(r, cols)
        self.table.setSortingEnabled(True)

    def _row_clicked(self, row, col):
        item = self.table.item(row, 0)
        if item is not None:
            sl, label = item.data(Qt.UserRole)
            self.go_to_slice(sl, label)

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

    def next_flagged(self):
        f = self.flagged_slices()
        after = f[f > self._current()] if f.size else f
        if after.size:
            self.go_to_slice(int(after[0]))
        elif f.size:
            show_info("napari-ian: no flagged slice after this one")

    def previous_flagged(self):
        f = self.flagged_slices()
        before = f[f < self._current()] if f.size else f
        if before.size:
            self.go_to_slice(int(before[-1]))
        elif f.size:
            show_info("napari-ian: no flagged slice before this one")

    def go_to_slice(self, index: int, label: int | None = None):
        """Move every view to slice ``index`` and centre on the nerve there (``label``'s, else both)."""
        ref, pred = self._layers
        if pred is None:
            return
        offset = self.viewer.dims.ndim - 3
        self.viewer.dims.set_current_step(offset + self.axis, int(index))
        vox = []
        for layer in (pred, ref):
            if layer is None:
                continue
            sl = np.take(np.asarray(layer.data), int(index), axis=self.axis)
            m = sl == label if label else sl > 0
            if m.any():
                vox = np.argwhere(m).mean(axis=0)
                break
        if len(vox):
            point = np.insert(vox, self.axis, index)
            world = np.asarray(pred.data_to_world(point), dtype=float)
            cam = self.viewer.scene.camera if hasattr(self.viewer, "scene") else self.viewer.camera
            shown = [d - offset for d in self.viewer.dims.displayed]
            cam.center = tuple(world[shown])

    # -- review status --------------------------------------------------------------------------------
    def _status_path(self, pred) -> Path | None:
        from .trainer.review import status_file

        geom = geometry_of(pred)
        if geom is None or not geom.case_key:
            return None
        return status_file(geom.case_key, pred.name, self.axis)

    def _load_status(self, pred):
        n = pred.data.shape[self.axis]
        self.status = new_status(n)
        geom = geometry_of(pred)
        if geom is None or not geom.case_key:
            return
        try:
            saved = load_status(geom.case_key, pred.name, n, self.axis)
        except ValueError as exc:
            show_info(f"napari-ian: review status not used ({exc})")
            return
        if saved is not None:
            self.status = saved

    def _save_status(self):
        from .trainer.atomic import atomic_write_text

        path = self._status_path(self._layers[1])
        if path is None:
            return
        try:
            atomic_write_text(path, status_to_json(self.status))
        except OSError as exc:
            show_error(f"napari-ian: review status not saved ({exc.strerror or exc})")
            return
        from ._hub import hub

        hub.status_changed.emit()     # the Fine-tune panel counts the corrected slices anew

    def accept_current(self):
        """Mark the current slice accepted on both sides (a corrected slice stays corrected)."""
        if self.status is None:
            show_info("napari-ian: press Review first")
            return
        i = self._current()
        if not 0 <= i < self.status.shape[1]:
            return
        for s in range(2):
            if self.status[s, i] == STATUS.index("unreviewed"):
                self.status[s, i] = STATUS.index("accepted")
        self._save_status()
        self._replace_rows({i}, [r for r in self.all_rows() if r["slice"] == i])
        self._paint_strip()

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
        # the 3D numbers take seconds on a full volume: one worker at a time, started after edits settle
        self._3d_timer.start()

    def _show_summary(self, nerve3d, note=""):
        self.summary_label.setText(summary_html(self._summary, nerve3d, note))
        self.summary_label.setToolTip(summary_tooltip(self._summary, nerve3d))

    def _run_3d(self):
        if self._3d_worker is not None:
            self._3d_dirty = True
            return
        ref, pred = self._layers
        if self.review is None or ref is None or pred is None:
            return
        rdata, pdata, sp, axis = np.asarray(ref.data).copy(), np.asarray(pred.data).copy(), tuple(pred.scale), self.axis
        gen = self._3d_gen

        @thread_worker(ignore_errors=True)
        def nerve3d():
            from .trainer.metrics import nerve_metrics

            return {side: nerve_metrics(rdata, pdata, lab, sp, axis) for lab, side in SIDES.items()}

        worker = nerve3d()
        worker.returned.connect(while_alive(self, lambda res: self._show_3d(res, gen)))
        worker.errored.connect(while_alive(self, lambda exc: self._show_summary({}, f"3D figures failed: {exc}")))
        worker.finished.connect(while_alive(self, self._3d_finished))
        self._3d_worker = worker
        self._3d_dirty = False
        worker.start()

    def _3d_finished(self):
        self._3d_worker = None
        if self._3d_dirty:
            self._run_3d()

    def _show_3d(self, res, gen=None):
        if self._3d_dirty or self.review is None or (gen is not None and gen != self._3d_gen):
            return  # stale: newer edits are being measured, or another review replaced this one
        self._show_summary(res)
        self.last_3d = res

    # -- export ----------------------------------------------------------------------------------------
    def export_csv(self, path) -> str:
        """Write every row (unfiltered) with its status to ``path`` atomically."""
        from .trainer.atomic import atomic_write_text

        rows = self.all_rows()
        cols = (["slice", "side", "label", "dsc", "iou", "precision", "recall", "category", "tp", "fp", "fn", "status"]
                if self.review is not None else ["slice", "side", "label", "kind", "detail", "status"])
        atomic_write_text(path, rows_to_csv(rows, cols) or ",".join(cols) + "\n")
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
    def measurements(self) -> list[dict]:
        """Per-slice area, signal and distance of the prediction (needs an image on the same grid)."""
        pred, image = self._layers[1], self._layer(self.image_combo.currentText())
        self.measurements_inputs(pred, image)
        return nerve_measurements(pred.data, image.data, pred.scale, self.axis)

    def show_measurements(self):
        """Compute the measurements and draw their plot in a worker, then open the window.

        Returns the worker (None when the inputs are not usable); the window is
        ``self._measure_window`` once it has opened.
        """
        pred = self._layers[1]
        image = self._layer(self.image_combo.currentText())
        try:
            self.measurements_inputs(pred, image)
        except ValueError as exc:
            show_info(f"napari-ian: {exc}")
            return None
        marker = self.marker_spin.value() if self.marker_spin.value() >= 0 else None
        # copies: the annotator may paint while the worker reads
        pdata, idata, sp, axis = np.asarray(pred.data).copy(), np.asarray(image.data), tuple(pred.scale), self.axis

        @thread_worker(ignore_errors=True)
        def work():
            # matplotlib's import (~0.5 s) and the drawing stay off the GUI thread
            from .trainer.review_plot import measurements_rgba

            rows = nerve_measurements(pdata, idata, sp, axis)
            rgba = measurements_rgba(rows, marker)
            # Qt's 32-bit RGB byte order (B, G, R, 255): the GUI thread then makes a pixmap with no
            # conversion. A conversion would be spread over Qt's global thread pool, whose threads
            # napari's workers occupy while they wait for the GIL the GUI thread holds: a deadlock.
            bgrx = np.ascontiguousarray(rgba[..., [2, 1, 0, 3]])
            bgrx[..., 3] = 255
            return rows, measurements_by_region(rows, marker), bgrx

        worker = work()
        worker.returned.connect(while_alive(self, lambda res: self._open_measurements(*res, marker)))
        worker.errored.connect(lambda exc: show_error(f"napari-ian: measurements failed: {exc}"))
        self.measure_btn.setEnabled(False)
        worker.finished.connect(while_alive(self, lambda: self.measure_btn.setEnabled(True)))
        self._measure_worker = worker
        worker.start()
        return worker

    def _open_measurements(self, rows, regions, bgrx, marker):
        if getattr(self, "_measure_window", None) is not None:
            self._measure_window.close()
        self._measure_window = MeasurementsWindow(rows, regions, marker, bgrx)
        self._measure_window.show()

    @staticmethod
    def measurements_inputs(pred, image):
        if pred is None:
            raise ValueError("press Review first")
        if image is None or image.data.shape != pred.data.shape:
            raise ValueError("choose the MR image the prediction belongs to (same grid) under 'Image (signal)'")


class MeasurementsWindow(QWidget):
    """Area and mean signal along the nerve (a picture drawn in the worker), region means, CSV export."""

    def __init__(self, rows, regions, marker, bgrx: np.ndarray):
        super().__init__()
        from qtpy.QtGui import QImage, QPixmap

        self.rows = rows
        self.setWindowTitle("napari-ian: nerve measurements")
        self._pixels = bgrx          # QImage borrows this buffer
        h, w = bgrx.shape[:2]
        pix = QPixmap.fromImage(QImage(bgrx.data, w, h, 4 * w, QImage.Format_RGB32))
        self.plot = QLabel()
        self.plot.setPixmap(pix)
        self.plot.setAlignment(Qt.AlignCenter)
        text = []
        for side, groups in regions.items():
            for name, g in groups.items():
                text.append(f"{side}, {name}: {g['slices']} slices, area {g['mean_area_mm2']:.2f} mm², "
                            f"signal {g['mean_signal']:.3g}")
        lines = text or ["No nerve in the prediction."]
        lines.append("<i>Areas are cut by the slices: where the nerve runs steeply through them (the ramus) "
                     "the cut is oblique and the area larger than the nerve's true cross-section.</i>")
        if marker is None:
            lines.append("<i>Set the loop-region slice to split the nerve into regions.</i>")
        info = QLabel("<br>".join(lines))
        info.setWordWrap(True)
        self.csv_btn = QPushButton("Save CSV...")
        self.csv_btn.clicked.connect(self._save_dialog)
        lay = QVBoxLayout(self)
        lay.addWidget(self.plot, 1)
        lay.addWidget(info)
        lay.addWidget(self.csv_btn)

    def save_csv(self, path) -> str:
        from .trainer.atomic import atomic_write_text

        atomic_write_text(path, rows_to_csv(self.rows))
        return str(path)

    def _save_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save measurements", "nerve_measurements.csv", "CSV (*.csv)")
        if path:
            try:
                self.save_csv(path)
            except OSError as exc:
                show_error(f"napari-ian: {path}: {exc.strerror or exc}")


__all__ = ["ReviewWidget", "MeasurementsWindow"]
