"""The Review panel's table: one row per slice and side, sortable, filtered, updated row by row.

With a reference the columns are slice, side, DSC, category, review status, IoU, precision and
recall (the ones read most first: the panel is narrow); without one, the label-free warnings.
An edit replaces only the rows of the slices it touched, so a long table stays quick.
"""
from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from .trainer.metrics import CATEGORY
from .trainer.review import FLAGGED

REFERENCE_COLUMNS = ["slice", "side", "dsc", "category", "status", "iou", "precision", "recall"]
WARNING_COLUMNS = ["slice", "side", "kind", "detail", "status"]


def filter_choices(reference: bool) -> list[str]:
    """The 'Show' choices: flagged rows, all rows, or one category (warning kind)."""
    if reference:
        return (["flagged (failures and false-positive slices)", "all slices with nerve"]
                + [c for c in CATEGORY if c != "true-negative slice"])
    from .trainer.review import WARNING_KINDS

    return ["all warnings"] + list(WARNING_KINDS)


def keeps(choice: str, row: dict) -> bool:
    """Whether the 'Show' ``choice`` shows ``row``."""
    if choice.startswith("flagged"):
        return CATEGORY.index(row["category"]) in FLAGGED
    if choice.startswith("all"):
        return True
    return row.get("category", row.get("kind")) == choice


class ReviewTable(QTableWidget):
    """Rows of the review; a click on a row emits ``row_clicked(slice, label)``."""

    row_clicked = Signal(int, int)

    def __init__(self):
        super().__init__(0, 0)
        self.columns = list(REFERENCE_COLUMNS)
        self._items = {}           # (slice, side) -> [row's items, ...] (for targeted updates)
        self.setSortingEnabled(True)
        self.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        # columns fit their contents once per fill; the table scrolls sideways, the panel never widens
        self.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        self.horizontalHeader().setStretchLastSection(True)
        self.cellClicked.connect(self._clicked)

    def fill(self, rows, keep, reference: bool) -> None:
        """Show the ``rows`` that ``keep(row)`` accepts, with the columns of the mode."""
        self.columns = list(REFERENCE_COLUMNS if reference else WARNING_COLUMNS)
        self.setSortingEnabled(False)
        self.clear()
        self.setColumnCount(len(self.columns))
        self.setHorizontalHeaderLabels(self.columns)
        self.setRowCount(0)
        self._items = {}
        for r in rows:
            if keep(r):
                self._append(r)
        self.resizeColumnsToContents()
        self.setSortingEnabled(True)

    def replace(self, slices, rows, keep) -> None:
        """Replace the rows of ``slices`` by those of ``rows`` that ``keep`` accepts."""
        slices = set(int(s) for s in slices)
        self.setSortingEnabled(False)
        for key in [k for k in self._items if k[0] in slices]:
            for items in self._items.pop(key):
                self.removeRow(self.row(items[0]))
        for r in rows:
            if keep(r):
                self._append(r)
        self.setSortingEnabled(True)

    def clear_rows(self) -> None:
        self.setRowCount(0)
        self._items = {}

    def item_for(self, slice_index: int, side: str, column: str):
        """The item showing ``column`` of the row of ``slice_index`` and ``side`` (None when not shown)."""
        rows = self._items.get((int(slice_index), side))
        return rows[0][self.columns.index(column)] if rows else None

    def _append(self, r) -> None:
        i = self.rowCount()
        self.insertRow(i)
        items = []
        for j, c in enumerate(self.columns):
            v = r.get(c, "")
            item = QTableWidgetItem()
            if isinstance(v, float):
                item.setData(Qt.DisplayRole, "" if np.isnan(v) else round(v, 3))
            elif isinstance(v, (int, np.integer)):
                item.setData(Qt.DisplayRole, int(v))
            else:
                item.setText(str(v))
            item.setData(Qt.UserRole, (int(r["slice"]), int(r["label"])))
            self.setItem(i, j, item)
            items.append(item)
        self._items.setdefault((int(r["slice"]), r["side"]), []).append(items)

    def _clicked(self, row, col):
        item = self.item(row, 0)
        if item is not None:
            self.row_clicked.emit(*item.data(Qt.UserRole))
