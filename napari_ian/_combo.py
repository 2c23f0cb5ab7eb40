"""Refilling a combo box from the current layers or models without losing the user's choice.

Layer combos show layer names and keep each layer's stable id (:mod:`napari_ian._identity`) as the
item's data: the choice follows a layer through a rename, and two layers of one name stay apart.
"""
from __future__ import annotations

from ._identity import find_layer, layer_uid


def refill_combo(combo, names, fallback: str | None = None) -> None:
    """Replace ``combo``'s items by ``names``, keeping the current choice when it is still offered.

    Otherwise ``fallback`` is chosen when offered. No signals are emitted: callers refresh what
    depends on the choice themselves, once.
    """
    current = combo.currentText()
    combo.blockSignals(True)
    try:
        combo.clear()
        combo.addItems(list(names))
        if current in names:
            combo.setCurrentText(current)
        elif fallback is not None and fallback in names:
            combo.setCurrentText(fallback)
    finally:
        combo.blockSignals(False)


def refill_layer_combo(combo, layers, fallback=None, extra=()) -> None:
    """Replace ``combo``'s items by ``layers`` (names shown, ids kept) and the plain texts ``extra``.

    The current layer stays chosen (by id, whatever its name now), else ``fallback`` (a layer),
    else the first item. No signals are emitted.
    """
    current_id, current_text = combo.currentData(), combo.currentText()
    combo.blockSignals(True)
    try:
        combo.clear()
        for layer in layers:
            combo.addItem(layer.name, layer_uid(layer))
        for text in extra:
            combo.addItem(text, None)
        index = combo.findData(current_id) if current_id else combo.findText(current_text)
        if index < 0 and fallback is not None:
            index = combo.findData(layer_uid(fallback))
        combo.setCurrentIndex(max(index, 0) if combo.count() else -1)
    finally:
        combo.blockSignals(False)


def chosen_layer(viewer, combo):
    """The layer chosen in a combo filled by :func:`refill_layer_combo` (None for an ``extra`` text)."""
    return find_layer(viewer, combo.currentData())
