"""What every napari-ian panel shares: one tabbed column of docks, and nothing left running once it is gone.

Docked from the Plugins menu, each napari-ian panel joins the others as a tab of one dock
instead of being stacked under them (five stacked panels are taller than a laptop screen);
the first one docked makes the window fill the screen. A worker can outlive the panel that
started it (the panel or its viewer is closed while a prediction runs): its callbacks are
wrapped so that they do nothing once the panel's Qt object is deleted.
"""
from __future__ import annotations

import weakref

from qtpy.QtCore import QEvent, QTimer
from qtpy.QtWidgets import QDockWidget, QMainWindow, QTabWidget, QWidget

DOCK_WIDTH = 420     # px: the panels' text reads without cutting at this width (390 on small screens)


def alive(widget) -> bool:
    """False once ``widget``'s Qt object has been deleted (PyQt/PySide raise on any call then)."""
    try:
        widget.objectName()
    except RuntimeError:
        return False
    return True


def while_alive(widget, fn):
    """``fn`` wrapped to do nothing once ``widget`` is gone (held weakly: it keeps no panel alive)."""
    ref = weakref.ref(widget)

    def call(*args, **kwargs):
        w = ref()
        if w is not None and alive(w):
            return fn(*args, **kwargs)
        return None

    return call


class Panel(QWidget):
    """Base of the napari-ian dock panels (``napari_viewer`` is what napari hands a plugin: a proxy)."""

    TITLE = "napari-ian"      # the panel's name on its tab (the manifest's display name)

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self._docked = False

    def event(self, ev):
        if ev.type() == QEvent.ParentChange and not self._docked and isinstance(self.parentWidget(), QDockWidget):
            self._docked = True
            # napari adds the dock to its window after wrapping the panel in it: arrange once it has
            QTimer.singleShot(0, while_alive(self, lambda: arrange_dock(self.parentWidget())))
        return super().event(ev)


def napari_ian_docks(window: QMainWindow) -> list:
    """The window's docks that hold a napari-ian panel, in the order they were added."""
    return [d for d in window.findChildren(QDockWidget) if isinstance(d.widget(), Panel)]


def arrange_dock(dock) -> None:
    """Tab ``dock`` with the other napari-ian docks of its area; the first one makes the window fill the screen."""
    from ._window import fill_screen

    window = dock.parentWidget() if dock is not None else None
    if not isinstance(window, QMainWindow) or dock.isFloating():
        return
    area = window.dockWidgetArea(dock)
    # the tab shows the panel's own name ("Case"), not napari's "Case (napari-ian ...)" cut to "Case..."
    dock.setWindowTitle(dock.widget().TITLE)
    others = [d for d in napari_ian_docks(window)
              if d is not dock and not d.isFloating() and not d.isHidden() and window.dockWidgetArea(d) == area]
    if others:
        window.setTabPosition(area, QTabWidget.North)    # tabs above the panels, where one looks for them
        window.tabifyDockWidget(others[0], dock)
    else:
        fill_screen(window)
    dock.show()
    dock.raise_()
    fill_screen(window, grow=False)       # stacked before it was tabbed, the window may have outgrown the screen
    screen = window.screen().availableGeometry() if hasattr(window, "screen") else None
    width = DOCK_WIDTH if screen is None or screen.width() >= 1500 else DOCK_WIDTH - 30
    from qtpy.QtCore import Qt

    window.resizeDocks([dock], [width], Qt.Horizontal)
