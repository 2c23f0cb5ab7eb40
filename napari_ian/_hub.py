"""Plugin-wide signals between panels (no Qt objects; panels subscribe with :func:`on_models_changed`)."""
from __future__ import annotations

import weakref

from psygnal import Signal


class _Hub:
    models_changed = Signal()   # a model was added, renamed or deleted in the user registry


hub = _Hub()


def on_models_changed(widget, method: str) -> None:
    """Call ``widget.<method>()`` after every change of the user's models, for as long as the widget lives.

    Held weakly; a panel whose Qt widget was deleted (its viewer closed) is dropped instead of
    raising in every later emit.
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
            hub.models_changed.disconnect(call)

    hub.models_changed.connect(call)
