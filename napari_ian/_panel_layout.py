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


def fast_tiles_checkbox():
    """The box that asks for a 3D model's probability in a few large tiles (``--fast``; unticked:
    ``--patches``), ticked to begin with as the commands are for the bundled model (see
    :func:`fast_box_follows_model`)."""
    from qtpy.QtWidgets import QCheckBox

    from .trainer.cli import FAST_TILES_HELP     # (no torch: the command line's module imports it per command)

    box = QCheckBox("fast: a few large tiles")
    box.setToolTip(FAST_TILES_HELP + " (as the command line's --fast; unticked: --patches)")
    box.setChecked(True)
    return box


def fast_box_follows_model(box, combo, metadata: dict):
    """Tick ``box`` as the model chosen in ``combo`` predicts by default (large tiles; a fine-tuned
    model: patches, :func:`~napari_ian.trainer.model_metadata.large_tiles_by_default`) whenever
    the choice changes. ``metadata`` maps model names to their metadata; the panel fills it once
    torch has loaded (a model not in it leaves the box as it is). A click on the box wins until
    another model is chosen, even when the metadata arrives after it. Returns the function that
    applies it now (for the panel to call after refilling ``combo`` with its signals blocked)."""
    from .trainer.model_metadata import large_tiles_by_default

    state = {"model": None, "clicked": False}
    box.clicked.connect(lambda *_: state.update(clicked=True))     # a person's click, not setChecked

    def apply(*_):
        name = combo.currentText()
        if name != state["model"]:
            state.update(model=name, clicked=False)
        meta = metadata.get(name)
        if meta is not None and not state["clicked"]:
            box.setChecked(large_tiles_by_default(meta))

    combo.currentTextChanged.connect(apply)
    return apply
