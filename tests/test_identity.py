"""Layers are told apart by a stable id, also through the viewer proxy napari hands to panels."""
from __future__ import annotations

import numpy as np


def test_a_layer_keeps_one_id_and_a_copy_of_its_metadata_gets_another():
    from napari.layers import Labels
    from napari.utils._proxies import PublicOnlyProxy

    from napari_ian._identity import find_layer, layer_uid, same_layer

    a = Labels(np.zeros((3, 4, 5), np.uint8), name="a")
    proxy = PublicOnlyProxy(a)
    assert proxy is not a and layer_uid(proxy) == layer_uid(a) and same_layer(proxy, a)
    a.name = "renamed"
    assert same_layer(proxy, a)                                   # a rename keeps the id
    b = Labels(np.zeros((3, 4, 5), np.uint8), name="a", metadata=dict(a.metadata))   # e.g. Duplicate Layer
    assert b.metadata["ian_layer_id"] == layer_uid(a)             # copied ...
    assert not same_layer(a, b) and layer_uid(b) != layer_uid(a)  # ... but told apart once asked
    assert layer_uid(a) == proxy.metadata["ian_layer_id"]         # the original keeps its id

    class Viewer:
        layers = [a, b]

    assert find_layer(Viewer, layer_uid(b)) is b and find_layer(Viewer, "nope") is None


def test_slice_watch_names_the_slices_that_changed():
    from napari_ian._slice_edits import SliceWatch

    data = np.zeros((6, 4, 5), np.uint8)
    for axis in range(3):
        watch = SliceWatch(data, axis)
        assert watch.changed(data).size == 0
        changed = data.copy()
        changed[2, 1, 3] = 1
        assert list(watch.changed(changed)) == [(2, 1, 3)[axis]]
        assert watch.changed(changed).size == 0                   # remembered
        again = changed.copy()
        again[4, 0, 0] = 2
        watch.seen(again, [(4, 0, 0)[axis]])                      # handled elsewhere (a paint event)
        assert watch.changed(again).size == 0
