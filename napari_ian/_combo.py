"""Refilling a combo box from the current layers or models without losing the user's choice."""
from __future__ import annotations


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
