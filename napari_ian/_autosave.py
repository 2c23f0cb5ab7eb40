"""Autosave: labels layers of a napari-ian image are saved to the workspace after each edit.

A save happens ``delay_ms`` after the last stroke (debounced), atomically, so killing napari
loses at most those few seconds and a failed write (full disk) keeps the previous autosave.
One autosaver runs per viewer while any napari-ian panel is open (the viewer's session owns it).
"""
from __future__ import annotations

from napari.layers import Labels
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, QTimer

from ._identity import layer_uid
from ._layers import geometry_of
from .trainer.workspace import save_labels

DELAY_MS = 2000


class Autosaver(QObject):
    """Watches every Labels layer that carries a case key; :meth:`close` lets go of them all."""

    def __init__(self, viewer, delay_ms: int = DELAY_MS):
        super().__init__()
        self.viewer = viewer
        self.delay_ms = delay_ms
        self._timers = {}
        self._connections = []   # (emitter, callback): undone by close()
        self.saved = []          # paths written, newest last (for the panel and tests)
        self.listeners = []      # callables run after each successful save
        self._connect(viewer.layers.events.inserted, self._inserted)
        for layer in viewer.layers:
            self._watch(layer, offer=False)

    def _connect(self, emitter, callback):
        emitter.connect(callback)
        self._connections.append((emitter, callback))

    @staticmethod
    def case_key(layer) -> str:
        geom = geometry_of(layer)
        return geom.case_key if geom is not None else ""

    def _inserted(self, event):
        self._watch(event.value)

    def _watch(self, layer, offer=True):
        if not isinstance(layer, Labels):
            if offer:
                self._offer_restore(layer)
            return
        if not self.case_key(layer):
            return
        for name in ("paint", "labels_update", "data"):
            ev = getattr(layer.events, name, None)
            if ev is not None:
                self._connect(ev, lambda e, ly=layer: self.schedule(ly))

    def _offer_restore(self, layer):
        from .trainer.workspace import list_autosaves

        key = self.case_key(layer)
        saves = list_autosaves(key) if key else []
        if saves:
            show_info(f"napari-ian: labels were autosaved for {layer.name} ({saves[0].describe()}"
                      f"{f' and {len(saves) - 1} more' if len(saves) > 1 else ''}); "
                      "restore them from the list in the Case panel")

    def schedule(self, layer):
        timer = self._timers.get(layer_uid(layer))
        if timer is None:
            timer = QTimer(self)
            timer.setSingleShot(True)
            timer.timeout.connect(lambda ly=layer: self.save(ly))
            self._timers[layer_uid(layer)] = timer
        timer.start(self.delay_ms)

    def save(self, layer):
        if layer not in self.viewer.layers:
            return None
        try:
            path = save_labels(self.case_key(layer), layer.name, layer.data)
        except OSError as exc:
            show_error(f"napari-ian: autosave of {layer.name} failed ({exc.strerror or exc}); "
                       "the previous autosave is kept")
            return None
        self.saved.append(path)
        for fn in list(self.listeners):
            fn()
        return path

    def flush(self):
        """Save every layer with a pending autosave now."""
        for key, timer in list(self._timers.items()):
            if timer.isActive():
                timer.stop()
                timer.timeout.emit()

    def close(self):
        """Stop watching: every connection made to the viewer and its layers is undone."""
        for timer in self._timers.values():
            timer.stop()
        for emitter, callback in self._connections:
            try:
                emitter.disconnect(callback)
            except (RuntimeError, ValueError, TypeError):
                pass
        self._connections, self._timers, self.listeners = [], {}, []
