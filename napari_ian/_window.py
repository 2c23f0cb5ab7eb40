"""The napari window and its views: fill the screen, show three views fitted to the volume and on the nerve.

napari opens at about two thirds of the screen and frames a volume's middle slice. For labelling
the nerve, the window fills the screen, and the three synced views (napari-orthogonal-views) are
each fitted to the whole volume, their crosshair on the nerve (its first labels layer with one),
else on the volume's centre.
"""
from __future__ import annotations

import weakref

import numpy as np
from napari.layers import Points
from qtpy.QtCore import QTimer

from ._identity import unwrap


def _available(window):
    screen = window.screen() if hasattr(window, "screen") else None
    if screen is None:
        from qtpy.QtWidgets import QApplication

        screen = QApplication.primaryScreen()
    return screen.availableGeometry()


def fill_screen(window, grow: bool = True) -> None:
    """Make the main window fill the screen (``grow``), or only shrink it back onto the screen."""
    avail = _available(window)
    frame = window.frameGeometry()
    fits = frame.height() <= avail.height() and frame.width() <= avail.width()
    fills = frame.height() >= 0.97 * avail.height() and frame.width() >= 0.97 * avail.width()
    if fits and (fills or not grow):
        return
    extra_w, extra_h = frame.width() - window.width(), frame.height() - window.height()
    if grow:
        window.setGeometry(avail.x() + extra_w // 2, avail.y() + extra_h - extra_w // 2,
                           avail.width() - extra_w, avail.height() - extra_h)
        window.showMaximized()      # with a window manager; without one the geometry above stands
    elif not fits:
        window.setGeometry(max(window.x(), avail.x()), max(window.y(), avail.y()),
                           min(window.width(), avail.width() - extra_w), min(window.height(), avail.height() - extra_h))


def nerve_voxel(data) -> np.ndarray | None:
    """A voxel (AP, SI, RL) on the nerve: the right nerve (else any label) on a coronal slice of the
    mandibular body (a quarter along its course from the front, where it is a round cross-section)."""
    a = np.asarray(data)
    idx = np.argwhere(a == 1)
    if not len(idx):
        idx = np.argwhere(a > 0)
    if not len(idx):
        return None
    ap = int(np.percentile(idx[:, 0], 25, method="nearest"))
    on = idx[idx[:, 0] == ap]
    return np.array([ap, *np.round(on[:, 1:].mean(axis=0))], dtype=int)


def _labels_with_nerve(viewer):
    from napari.layers import Labels

    for layer in viewer.layers:
        if isinstance(layer, Labels) and layer.ndim == 3 and np.asarray(layer.data).any():
            return layer
    return None


def go_to_nerve(viewer, labels=None) -> bool:
    """Put the slices (and so the three views' crosshair) through the nerve; else the volume's centre.

    Returns True when a nerve was found.
    """
    labels = labels if labels is not None else _labels_with_nerve(viewer)
    vox = nerve_voxel(labels.data) if labels is not None else None
    offset = viewer.dims.ndim - 3
    if vox is not None:
        world = np.asarray(labels.data_to_world(vox), dtype=float)[-3:]
        for axis in range(3):
            viewer.dims.set_point(offset + axis, float(world[axis]))
        return True
    step = list(viewer.dims.current_step)
    for axis in range(3):
        step[offset + axis] = int((viewer.dims.nsteps[offset + axis] - 1) // 2)
    viewer.dims.current_step = tuple(step)
    return False


def orthoviews(viewer):
    """napari-orthogonal-views' manager of the viewer's three views (one per viewer, made on first use)."""
    # the plugin's own accessor is module-private; its manager's methods are its public API
    from napari_orthogonal_views.ortho_view_manager import _get_manager

    return _get_manager(unwrap(viewer))


def shown_orthoviews(viewer):
    """The viewer's views' manager if the three views are shown, else None.

    Makes no manager where there is none: after napari-orthogonal-views' own clean-up (its
    "Remove Orthogonal Views", the window's close), a new one would bring its splitter back.
    """
    from napari_orthogonal_views.ortho_view_manager import _VIEWER_MANAGERS

    m = _VIEWER_MANAGERS.get(unwrap(viewer))
    return m if m is not None and m.is_shown() else None


def side_viewer_models(viewer) -> list:
    """The viewer models of the two side views (empty when they are not shown)."""
    m = shown_orthoviews(viewer)
    if m is None:
        return []
    return [w.vm_container.viewer_model for w in (m.right_widget, m.bottom_widget)]


_BATCHES_SHARED: weakref.WeakSet = weakref.WeakSet()


def share_layer_batches(viewer) -> None:
    """Batch the side views' layer removals whenever the main viewer batches its own (once per viewer).

    napari cleans a canvas's scene graph after each layer it removes, with a full garbage
    collection each time, unless the viewer's layer list is in a batch (as ``layers.clear()``,
    and so ``viewer.close()``, and deleting the selected layers are). The side views' viewers copy
    the main viewer's removals one by one, outside any batch: with eight layers,
    ``viewer.close()`` spent seconds collecting garbage. The side viewers are looked up at each
    batch, so the views may be hidden and shown again in any way (this panel,
    napari-orthogonal-views' own menu) in between.
    """
    viewer = unwrap(viewer)
    if viewer in _BATCHES_SHARED:
        return
    _BATCHES_SHARED.add(viewer)
    ref = weakref.ref(viewer)       # the viewer's own events hold these callbacks
    begun: list = []

    def begin(event=None):
        models = side_viewer_models(ref()) if ref() is not None else []
        for model in models:
            model.layers.events.begin_batch()
        begun.append(models)

    def end(event=None):
        for model in (begun.pop() if begun else []):
            model.layers.events.end_batch()

    viewer.layers.events.begin_batch.connect(begin)
    viewer.layers.events.end_batch.connect(end)


def show_three_views(viewer, labels=None, hooks=()):
    """Show the synced axial, sagittal and coronal views, fitted to the volume, crosshair on the nerve.

    ``hooks`` are ``(layer_type, hook)`` pairs registered with napari-orthogonal-views before its
    views copy the layers (the sphere brush paints in the side views through one). The views
    appear once control returns to Qt: the views' container must be laid out before they are put
    in it, or they stay collapsed. Returns napari-orthogonal-views' manager of the viewer.
    """
    m = orthoviews(viewer)
    share_layer_batches(viewer)
    if not m.is_shown():
        # points keep their look from the main view: syncing colours and sizes back from a side
        # view's copy (made before it had points, so in napari's defaults) whitened them
        back = {f"{current}{name}" for current in ("", "current_")
                for name in ("face_color", "border_color", "size", "symbol", "border_width")}
        m.set_sync_filters({**(m.sync_filters or {}), Points: {"reverse_exclude": back}})
    for layer_type, hook in hooks:
        m.register_layer_hook(layer_type, hook, name=hook.__name__)

    def fit(models):
        for model in models:
            model.reset_view()

    def show():
        if not m.is_shown():
            m.show()     # centres the crosshair on the middle of the data: the nerve comes after
        m.set_cross_hairs(True)       # the crosshair marks the point all three views go through
        go_to_nerve(viewer, labels)
        models = [viewer] + side_viewer_models(viewer)
        fit(models)
        # the side canvases get their size when the splitter is laid out: fit again once they have
        QTimer.singleShot(200, lambda: fit(models))

    QTimer.singleShot(0, show)
    return m


def forget_view_settings(m, hooks) -> None:
    """Switch off the ``hooks`` that :func:`show_three_views` gave the views' manager ``m``."""
    for _, hook in hooks:
        if hook.__name__ in m.layer_hooks:
            m.set_layer_hook(hook.__name__, None)


def hide_three_views(viewer) -> None:
    m = shown_orthoviews(viewer)
    if m is not None:
        m.hide()


def three_views_shown(viewer) -> bool:
    return shown_orthoviews(viewer) is not None
