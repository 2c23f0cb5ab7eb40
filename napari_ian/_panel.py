"""What every napari-ian panel shares: a tab in one dock, the viewer's session, nothing left behind.

Docked from the Plugins menu, each napari-ian panel joins the others as a tab of one dock
instead of being stacked under them (five stacked panels are taller than a laptop screen);
the first one docked makes the window fill the screen. Everything a panel connects to the
viewer goes through its session (:mod:`napari_ian._session`) and is undone when the panel is
closed (napari takes it out of its dock) or deleted. A worker can outlive the panel that
started it: its callbacks are wrapped so that they do nothing once the panel is gone.
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
    """``fn`` wrapped to do nothing once ``widget`` is gone (the widget is checked through a weak reference)."""
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
        from ._session import session_for

        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self._token = id(self)
        self.session.join(self._token)
        self._docked = False
        self._released = False
        session = weakref.ref(self.session)
        token = self._token
        # deleted without being closed first (its window closed): release by token, the panel is gone
        self.destroyed.connect(lambda *_: session() is not None and session().release(token))

    # -- connections that end with the panel ----------------------------------------------------------
    def listen(self, emitter, callback):
        """``emitter.connect(callback)`` for as long as the panel is open."""
        return self.session.connect(self._token, emitter, callback)

    def add_callback(self, callbacks: list, callback):
        """Append to a napari callback list for as long as the panel is open."""
        return self.session.add_callback(self._token, callbacks, callback)

    def bind_keys(self, shortcuts, target=None) -> None:
        """Bind ``(key, description, method name)`` viewer keys, calling ``target``'s methods (default:
        the panel's), for as long as the panel is open."""
        for key, _, method in shortcuts:
            self.session.bind_key(self._token, key, _key_action(target or self, method))

    def on_close(self, undo) -> None:
        """Run ``undo()`` when the panel closes."""
        self.session.on_release(self._token, undo)

    def closing(self) -> None:
        """Stop what the panel runs (workers); panels override it."""

    def release(self) -> None:
        """Undo what the panel connected to the viewer (closing it does this)."""
        if not self._released:
            self._released = True
            self.closing()
            self.session.release(self._token)

    def event(self, ev):
        if ev.type() == QEvent.ParentChange:
            parent = self.parentWidget()
            if isinstance(parent, QDockWidget) and not self._docked:
                self._docked = True
                # napari adds the dock to its window after wrapping the panel in it: arrange once it has
                QTimer.singleShot(0, while_alive(self, lambda: arrange_dock(self.parentWidget())))
            elif parent is None and self._docked:
                self.release()        # napari closes a dock by taking the panel out of it
        return super().event(ev)


def _key_action(target, method):
    ref = weakref.ref(target)

    def action(viewer):
        obj = ref()
        if obj is not None:
            getattr(obj, method)()
    action.__name__ = f"napari_ian_{type(target).__name__}_{method}"
    return action


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
