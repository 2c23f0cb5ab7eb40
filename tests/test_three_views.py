"""Synced axial/sagittal/coronal views (napari-orthogonal-views) over the napari-ian layers."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def test_three_views_share_labels_and_follow_the_slice(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari_orthogonal_views.ortho_view_manager import _get_manager

    from gui_actions import dock

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-ian", "phantom")
    w = dock(viewer, "Case")
    labels = w.new_labels()
    w.views_btn.click()
    m = _get_manager(viewer)
    qtbot.waitUntil(m.is_shown, timeout=5_000)
    side_models = [wd.vm_container.viewer_model for wd in (m.right_widget, m.bottom_widget)]
    # each side view shows another pair of axes than the main (coronal) view
    shown = {tuple(vm.dims.displayed) for vm in side_models}
    assert tuple(viewer.dims.displayed) == (1, 2) and len(shown) == 2 and (1, 2) not in shown
    # painting in the main view shows in the side views (the labels are shared)
    w.brush.paint(labels, [[60, 30, 100]])
    for vm in side_models:
        twin = vm.layers[labels.name]
        qtbot.waitUntil(lambda t=twin: (np.asarray(t.data) == 1).any(), timeout=5_000)
        np.testing.assert_array_equal(np.asarray(twin.data), np.asarray(labels.data))
        np.testing.assert_allclose(twin.scale, labels.scale)
    # moving the coronal slice moves the side views' crosshair slice with it
    viewer.dims.current_step = (77, 30, 100)
    qtbot.waitUntil(lambda: all(vm.dims.current_step[0] == 77 for vm in side_models), timeout=5_000)
    m.cleanup()
