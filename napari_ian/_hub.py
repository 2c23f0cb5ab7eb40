"""Plugin-wide signals between panels (no Qt objects; panels subscribe with :func:`subscribe`)."""
from __future__ import annotations

import weakref

from psygnal import Signal


class _Hub:
    models_changed = Signal()   # a model was added, renamed or deleted in the user registry
    status_changed = Signal()   # a review status (accepted / corrected slices) was saved


hub = _Hub()


def subscribe(signal, widget, method: str):
    """Call ``widget.<method>()`` after every emit of ``signal``, for as long as the widget lives.

    Held weakly; a panel whose Qt widget was deleted (its viewer closed) is dropped instead of
    raising in every later emit. Returns the connected callable (to disconnect it earlier).
    """
    ref = weakref.ref(widget)

    def call():
        w = ref()
        try:
            if w is None:
                raise RuntimeError("panel gone")
            getattr(w, method)()
        except RuntimeError as exc:  # PyQt: "wrapped C/C++ object ... has been deleted"
            if w is not None and "deleted" not in str(exc):
                raise
            signal.disconnect(call)

    signal.connect(call)
    return call


def on_models_changed(widget, method: str):
    """Call ``widget.<method>()`` after every change of the user's models (see :func:`subscribe`)."""
    return subscribe(hub.models_changed, widget, method)
