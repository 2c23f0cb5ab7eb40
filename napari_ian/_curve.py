"""The Fine-tune panel's live curve: training loss per epoch and held-out DSC where it was scored
(fine-tuning scores it every third epoch and after the last), cheap to redraw."""
from __future__ import annotations

import math

from qtpy.QtCore import QPointF
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QWidget


class CurveWidget(QWidget):
    """Loss (orange) per epoch and held-out DSC (blue) where scored (NaN: not that epoch); cheap
    to redraw after every epoch."""

    def __init__(self):
        super().__init__()
        self.loss, self.dsc = [], []
        self.epochs = 1
        self.setFixedHeight(64)
        self.setToolTip("Orange: training loss. Blue: DSC on the held-out corrected slices (0-1).")

    def reset(self, epochs):
        self.loss, self.dsc, self.epochs = [], [], max(int(epochs), 1)
        self.update()

    def add(self, loss, dsc):
        self.loss.append(float(loss))
        self.dsc.append(float(dsc))
        self.update()

    def paintEvent(self, event):
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#262930"))
        w, h = self.width() - 8, self.height() - 8
        top = max(self.loss + [1e-6])
        for values, colour, scale in ((self.loss, "#f08c28", top), (self.dsc, "#4aa3ff", 1.0)):
            pts = [QPointF(4 + w * i / max(self.epochs - 1, 1), 4 + h * (1 - v / scale))
                   for i, v in enumerate(values) if not math.isnan(v)]
            p.setPen(QPen(QColor(colour), 2))
            for a, b in zip(pts[:-1], pts[1:]):
                p.drawLine(a, b)
            for a in pts[-1:]:
                p.drawEllipse(a, 2, 2)
