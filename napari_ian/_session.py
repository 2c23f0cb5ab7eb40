"""One session per napari viewer: what the napari-ian panels share, and undoing what they changed.

The session holds what belongs to the viewer rather than to one panel (the autosaver) and keeps a
ledger of everything each panel connected to the viewer: event callbacks, mouse callbacks, key
bindings, signals. Closing a panel undoes its entries (callbacks removed, a key given back the
binding it had before); closing the last panel, or the viewer's window, ends the session (the
autosaver stops). Sessions are held in a WeakKeyDictionary keyed by the viewer itself (panels get
proxies of it); a session holds its viewer weakly, and ending it drops every reference its ledger
held, so a closed viewer is freed with its panels.
"""
from __future__ import annotations

import weakref

from qtpy.QtCore import QEvent, QObject, QTimer

from ._identity import unwrap

_SESSIONS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def session_for(viewer) -> "Session":
    """The viewer's session (started on first use)."""
    real = unwrap(viewer)
    if real not in _SESSIONS:
        _SESSIONS[real] = Session(real)
    return _SESSIONS[real]


def active_session(viewer) -> "Session | None":
    """The viewer's session if one is running (no panel open: None)."""
    return _SESSIONS.get(unwrap(viewer))


def _quietly(fn):
    try:
        fn()
    except (RuntimeError, ValueError, TypeError, KeyError, AttributeError):   # gone with its viewer or widget
        pass


class _WindowClosing(QObject):
    """Ends a session when its viewer's window closes (a programmatic close at once; a user's close
    once it has happened: napari may ask first, and the user may say no)."""

    def __init__(self, session):
        super().__init__()
        self._session = weakref.ref(session)

    def eventFilter(self, obj, event):
        if event.type() == QEvent.Close:
            session = self._session()
            if session is not None:
                if not event.spontaneous():
                    session.close()
                else:
                    window = weakref.ref(obj)
                    QTimer.singleShot(0, lambda: _closed(window()) and session.close())
        return False


def _closed(window) -> bool:
    try:
        return window is None or not window.isVisible()
    except RuntimeError:          # deleted
        return True


class Session:
    """The ledger of one viewer. Owners are tokens (a panel's ``id``), so a panel being deleted can be released."""

    def __init__(self, viewer):
        from ._threads import ensure_spare_pool_threads, wait_for_workers_at_exit

        ensure_spare_pool_threads()   # once per process (see _threads.py)
        wait_for_workers_at_exit()
        self._viewer = weakref.ref(viewer)   # the viewer itself (not a panel's proxy), held weakly
        self._undo: dict[int, list] = {}
        self._autosaver = None
        self._closing = _WindowClosing(self)
        # napari's main window has no public accessor; the viewer's own object is not a panel's proxy
        self._window = getattr(viewer.window, "_qt_window", None)
        if self._window is not None:
            self._window.installEventFilter(self._closing)

    @property
    def viewer(self):
        return self._viewer()

    # -- what panels register ---------------------------------------------------------------------
    def on_release(self, owner: int, undo) -> None:
        """Run ``undo()`` when ``owner`` is released (last registered, first undone)."""
        self._undo.setdefault(owner, []).append(undo)

    def connect(self, owner: int, emitter, callback):
        """``emitter.connect(callback)`` until ``owner`` is released (napari events, psygnal or Qt signals)."""
        emitter.connect(callback)
        self.on_release(owner, lambda: emitter.disconnect(callback))
        return callback

    def add_callback(self, owner: int, callbacks: list, callback):
        """Append to a napari callback list (``mouse_drag_callbacks``, ...) until ``owner`` is released."""
        callbacks.append(callback)
        self.on_release(owner, lambda: callback in callbacks and callbacks.remove(callback))
        return callback

    def bind_key(self, owner: int, key: str, func) -> None:
        """Bind a viewer key until ``owner`` is released; then the key gets back what it had before."""
        previous = self.viewer.bind_key(key, func, overwrite=True)

        def undo():
            now = self.viewer.bind_key(key, None)          # unbinds whatever is bound now
            if now is not None and now is not func:        # bound by someone else since: theirs stays
                self.viewer.bind_key(key, now, overwrite=True)
            elif previous is not None:
                self.viewer.bind_key(key, previous, overwrite=True)

        self.on_release(owner, undo)

    def join(self, owner: int) -> None:
        """Count ``owner`` among the session's panels (until released)."""
        self._undo.setdefault(owner, [])

    def release(self, owner: int) -> None:
        """Undo everything ``owner`` registered; the last owner out ends the session."""
        for undo in reversed(self._undo.pop(owner, [])):
            _quietly(undo)
        if not self._undo:
            self.close()

    # -- shared by the panels -----------------------------------------------------------------------
    @property
    def autosaver(self):
        """The viewer's :class:`~napari_ian._autosave.Autosaver` (started with the session's first use of it)."""
        if self._autosaver is None:
            from ._autosave import Autosaver

            self._autosaver = Autosaver(self.viewer)
        return self._autosaver

    def close(self) -> None:
        """End the session: undo every panel's entries, stop the autosaver (saving what is pending)."""
        for owner in list(self._undo):
            for undo in reversed(self._undo.pop(owner)):
                _quietly(undo)
        if self._autosaver is not None:
            saver, self._autosaver = self._autosaver, None
            _quietly(saver.flush)
            _quietly(saver.close)
        if self._window is not None:
            window, self._window = self._window, None
            _quietly(lambda: window.removeEventFilter(self._closing))
        viewer = self.viewer
        if viewer is not None and _SESSIONS.get(viewer) is self:
            del _SESSIONS[viewer]

    @property
    def owners(self) -> int:
        """How many panels (owners) the session serves."""
        return len(self._undo)
