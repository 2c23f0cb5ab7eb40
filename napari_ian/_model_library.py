"""The Fine-tune panel's lists: the user's own models (rename, delete) and the corrections store (remove).

Bundled models are never listed here, so never renamed or deleted. A change to the models is
announced on the plugin hub, so every panel's model picker follows at once.
"""
from __future__ import annotations

import math

from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (QFormLayout, QGroupBox, QHBoxLayout, QInputDialog, QListWidget, QMessageBox,
                            QPushButton, QVBoxLayout, QWidget)


class ModelLibrary(QWidget):
    """"Your models" and "Corrections store" boxes; ``on_store_changed()`` runs after the store changes."""

    def __init__(self, on_store_changed):
        super().__init__()
        self.on_store_changed = on_store_changed
        self.models_list, self.store_list = QListWidget(), QListWidget()
        self.models_list.setMaximumHeight(110)
        self.store_list.setMaximumHeight(90)
        self.rename_btn, self.delete_btn = QPushButton("Rename..."), QPushButton("Delete...")
        self.store_delete_btn = QPushButton("Remove case from the store...")
        models = QGroupBox("Your models")
        ml = QFormLayout(models)
        ml.addRow(self.models_list)
        row = QHBoxLayout()
        row.addWidget(self.rename_btn)
        row.addWidget(self.delete_btn)
        ml.addRow(row)
        store = QGroupBox("Corrections store")
        sl = QFormLayout(store)
        sl.addRow(self.store_list)
        sl.addRow(self.store_delete_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(models)
        lay.addWidget(store)
        self.rename_btn.clicked.connect(self.rename_selected)
        self.delete_btn.clicked.connect(self.delete_selected)
        self.store_delete_btn.clicked.connect(self.delete_store_entry)

    def show_models(self, entries) -> None:
        """List the user's models among ``entries`` (``(name, source, metadata or None)``)."""
        self.models_list.clear()
        for name, source, meta in entries:
            if source != "user":
                continue
            ft = (meta or {}).get("finetune") or {}
            after = ft.get("after", {}).get("held_out_dsc")
            extra = (f" — from {ft.get('parent')}, held-out DSC {after:.3f}"
                     if after is not None and not math.isnan(after) else "")
            self.models_list.addItem(f"{name}{extra}")
            self.models_list.item(self.models_list.count() - 1).setData(Qt.UserRole, name)

    def show_store(self) -> list:
        """List the corrections store; returns its entries."""
        from .trainer.corrections import list_corrections

        entries = list_corrections()
        self.store_list.clear()
        for e in entries:
            self.store_list.addItem(e.describe())
            self.store_list.item(self.store_list.count() - 1).setData(Qt.UserRole, str(e.path))
        return entries

    def _selected_model(self):
        item = self.models_list.currentItem()
        return item.data(Qt.UserRole) if item is not None else None

    @staticmethod
    def _models_changed():
        from ._hub import hub

        hub.models_changed.emit()

    def rename_selected(self):
        from .trainer.finetune import rename_model

        old = self._selected_model()
        if not old:
            show_info("napari-ian: select one of your models first")
            return
        new, ok = QInputDialog.getText(self, "Rename model", f"New name for {old}:", text=old)
        if not ok or not new.strip() or new.strip() == old:
            return
        try:
            rename_model(old, new.strip())
        except (ValueError, OSError) as exc:
            show_error(f"napari-ian: {exc}")
            return
        self._models_changed()

    def delete_selected(self, confirm: bool = True):
        from .trainer.finetune import delete_model

        name = self._selected_model()
        if not name:
            show_info("napari-ian: select one of your models first")
            return
        if confirm and QMessageBox.question(self, "Delete model", f"Delete the model {name}? This cannot be "
                                            "undone.") != QMessageBox.Yes:
            return
        try:
            delete_model(name)
        except (ValueError, OSError) as exc:
            show_error(f"napari-ian: {exc}")
            return
        self._models_changed()

    def delete_store_entry(self, confirm: bool = True):
        from .trainer.corrections import CorrectionsError, delete_corrections, read_entry

        item = self.store_list.currentItem()
        if item is None:
            show_info("napari-ian: select a case in the corrections store first")
            return
        if confirm and QMessageBox.question(self, "Corrections store", f"Remove {item.text()} from the "
                                            "corrections store? Its corrected slices will no longer be "
                                            "trained on.") != QMessageBox.Yes:
            return
        try:
            delete_corrections(read_entry(item.data(Qt.UserRole)))
        except CorrectionsError as exc:
            show_error(f"napari-ian: {exc}")
        self.on_store_changed()
