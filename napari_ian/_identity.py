"""Which layer is which: a stable id kept in each layer's metadata.

napari hands a docked panel a proxy of the viewer, so the layers a panel looks up are proxies
while the events it receives carry the layers themselves: ``is`` and ``id()`` never match between
the two. A name does not identify a layer either (it can be renamed, or reused after a layer is
removed). So panels compare layers by the id stored here, under ``metadata["ian_layer_id"]``.

A layer made with a copy of another layer's metadata (napari's Duplicate Layer, or
``metadata=dict(other.metadata)``) carries the other's id; the first time such a copy is asked
for its id while the original is alive it gets a new one, so two live layers never share an id.
"""
from __future__ import annotations

import uuid
import weakref

KEY = "ian_layer_id"
_OWNERS: "weakref.WeakValueDictionary[str, object]" = weakref.WeakValueDictionary()


def unwrap(obj):
    """The napari object behind a panel's proxy (the object itself when it is none)."""
    return getattr(obj, "__wrapped__", obj)


def layer_uid(layer) -> str:
    """The layer's stable id (given on first use, unique among live layers)."""
    real = unwrap(layer)
    meta = real.metadata
    uid = meta.get(KEY)
    owner = _OWNERS.get(uid) if uid else None
    if not uid or (owner is not None and owner is not real):
        uid = uuid.uuid4().hex
        meta[KEY] = uid      # in place: the layer emits nothing, and no other layer shares this dict
    _OWNERS[uid] = real
    return uid


def same_layer(a, b) -> bool:
    """True when ``a`` and ``b`` are the same layer (either may be a proxy, or None)."""
    return a is not None and b is not None and layer_uid(a) == layer_uid(b)


def find_layer(viewer, uid: str | None):
    """The viewer's layer with id ``uid``, or None."""
    if not uid:
        return None
    for layer in viewer.layers:
        if layer_uid(layer) == uid:
            return layer
    return None
