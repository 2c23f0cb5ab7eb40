"""Panel layout: a body that scrolls in a short dock, and a footer that always stays in view.

A dock shares the screen with napari's own; on a 1366 x 768 laptop a panel gets about 600 px.
The body (settings, tables) scrolls rather than squashing its rows; the footer (the run button,
Cancel, progress, status and result) never scrolls away.
"""
from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget


class _ContentScroll(QScrollArea):
    """A scroll area that asks for its content's full height (Qt's own caps it at 24 lines)."""

    def sizeHint(self):
        hint = super().sizeHint()
        if self.widget() is not None:
            hint.setHeight(self.widget().sizeHint().height() + 2 * self.frameWidth())
        return hint


def panel_layout(panel: QWidget, min_body_height: int = 90, grow_body: bool = False
                 ) -> tuple[QVBoxLayout, QVBoxLayout]:
    """Give ``panel`` a scrolling body and a footer under it; returns their two layouts.

    The footer follows the body; in a dock too short for both, the body scrolls and the footer
    stays whole. ``grow_body``: the body takes any spare height (a table), else the footer sits
    right under it.
    """
    inner = QWidget()
    body = QVBoxLayout(inner)
    body.setContentsMargins(6, 4, 6, 4)
    scroll = _ContentScroll()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.NoFrame)
    scroll.setWidget(inner)
    scroll.setMinimumHeight(min_body_height)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    scroll.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Expanding if grow_body else QSizePolicy.Preferred)
    footer_widget = QWidget()
    footer = QVBoxLayout(footer_widget)
    footer.setContentsMargins(6, 2, 6, 4)
    outer = QVBoxLayout(panel)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.setSpacing(0)
    outer.addWidget(scroll, 1 if grow_body else 0)
    outer.addWidget(footer_widget)
    if not grow_body:
        outer.addStretch(1)
    return body, footer


def wrapping_label(text: str = "") -> QLabel:
    """A label whose text wraps at the panel's width instead of being cut."""

    label = QLabel(text)
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
    return label


def compact(combo, chars: int = 10) -> None:
    """A combo box that fits a narrow panel (long layer names are cut in the box, shown whole in its list)."""
    from qtpy.QtWidgets import QComboBox

    combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)


def fast_tiles_checkbox(checked: bool = False):
    """The box that asks for a 3D model's probability in a few large tiles (``ian predict --fast``),
    ticked or not to begin with as the command it stands for is by default."""
    from qtpy.QtWidgets import QCheckBox

    from .trainer.cli import FAST_TILES_HELP     # (no torch: the command line's module imports it per command)

    box = QCheckBox("fast: a few large tiles")
    box.setToolTip(FAST_TILES_HELP + " (as the command line's --fast)")
    box.setChecked(checked)
    return box
