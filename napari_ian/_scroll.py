"""Tall panels scroll inside their dock instead of squashing their rows."""
from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget


def scrolling_layout(panel: QWidget, min_height: int = 320) -> QVBoxLayout:
    """Give ``panel`` a vertical scroll area and return the layout to fill inside it."""
    inner = QWidget()
    lay = QVBoxLayout(inner)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.NoFrame)
    scroll.setWidget(inner)
    scroll.setMinimumHeight(min_height)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    outer = QVBoxLayout(panel)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    return lay
