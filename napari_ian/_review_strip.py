"""The Review panel's colour strip along the slice axis, and its legend; a click goes to a slice.

Three rows of cells, one cell per slice: the right nerve's category, the left nerve's, and the
review status (accepted or corrected on either side). Without a reference the nerve rows show
where the prediction has nerve and where a warning was raised.
"""
from __future__ import annotations

import numpy as np
from qtpy.QtCore import QRectF, Signal
from qtpy.QtGui import QColor, QPainter
from qtpy.QtWidgets import QWidget

CATEGORY_COLOURS = {
    "true-negative slice": "#3a3f4b", "false-positive slice": "#b05cd6", "complete failure": "#e0303a",
    "tracking failure": "#f08c28", "boundary failure": "#f2d230", "pass": "#38b54a"}
WARNING_COLOUR, NERVE_COLOUR = "#f08c28", "#38b54a"
STATUS_COLOURS = {"unreviewed": "#3a3f4b", "accepted": "#4aa3ff", "corrected": "#ff5fd2"}


def _swatch(colour, text):
    return f"<span style='color:{colour}'>■</span>&nbsp;{text}"


def legend_html(reference: bool) -> str:
    """What the strip's colours mean, on two short lines."""
    if reference:
        kinds = [("pass", "pass"), ("boundary failure", "boundary"), ("tracking failure", "tracking"),
                 ("complete failure", "complete"), ("false-positive slice", "FP slice")]
        first = " ".join(_swatch(CATEGORY_COLOURS[k], t) for k, t in kinds)
    else:
        first = f"{_swatch(NERVE_COLOUR, 'nerve')} {_swatch(WARNING_COLOUR, 'warning')}"
    status = " ".join(_swatch(STATUS_COLOURS[s], s) for s in ("accepted", "corrected"))
    return f"<small>{first}<br>rows: right, left, status ({status})</small>"


class ReviewStrip(QWidget):
    """Rows of coloured cells along the slice axis (right, left, review status); click to go."""

    clicked = Signal(int)

    def __init__(self):
        super().__init__()
        self.colours = np.zeros((0, 0), object)   # (rows, n) colour names
        self.current = -1
        self.setMinimumHeight(40)
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
