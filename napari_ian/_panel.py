"""What every napari-ian panel shares: nothing of it runs after it is gone.

A worker can outlive the panel that started it (the panel is closed, or its viewer is closed,
while a prediction or a 3D measurement runs). Its result then has nowhere to go: the callbacks
are wrapped so that they do nothing once the panel's Qt object is deleted.
"""
from __future__ import annotations

import weakref


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
