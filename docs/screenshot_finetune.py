"""The README's Fine-tune picture: the phantom seen through another contrast, ten slices corrected, one run.

An annotator's work is simulated the way the tests do it: the ground truth of ten coronal slices is
painted into the prediction layer (the Review panel marks them corrected). Then the Fine-tune
panel's button is pressed and the window is saved once the new model has re-predicted the case.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshot_finetune.py OUT.png``
(part of ``make screenshot``). Uses a temporary ``NAPARI_IAN_HOME``.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np


def main(out: str) -> int:
    os.environ["NAPARI_IAN_HOME"] = tempfile.mkdtemp(prefix="ian-shot-")
    import napari
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    from napari_ian.__main__ import close_toasts
    from napari_ian._finetune_widget import FinetuneWidget
    from napari_ian._predict_widget import PredictWidget
    from napari_ian._review_widget import ReviewWidget
    from napari_ian._sample_data import phantom_layers

    def wait(cond, seconds):
        t0 = time.time()
        while not cond() and time.time() - t0 < seconds:
            QApplication.processEvents()
            time.sleep(0.02)

    viewer = napari.Viewer(title="napari-ian")
    (img_d, img_m, _), (lab_d, lab_m, _) = phantom_layers(100)
    x = np.clip(img_d, 0, None) / img_d.max()
    img_m = {**img_m, "name": "phantom 100, other contrast"}
    img_m.pop("contrast_limits", None)
    image = viewer.add_image((x ** 0.4).astype(np.float32), **img_m)   # the domain shift of bench_finetune.py
    viewer.dims.axis_labels = ("AP", "SI", "RL")
    truth = viewer.add_labels(lab_d, **{**lab_m, "visible": False})
    pw = PredictWidget(viewer)
    viewer.window.add_dock_widget(pw, name="Predict (napari-ian)")
    rv = ReviewWidget(viewer)
    viewer.window.add_dock_widget(rv, name="Review (napari-ian)", tabify=True)
    ft = FinetuneWidget(viewer)
    ft_dock = viewer.window.add_dock_widget(ft, name="Fine-tune (napari-ian)", tabify=True)
    pw.device_combo.setCurrentText("cpu")
    n = len(viewer.layers)
    pw.run_btn.click()
    wait(lambda: len(viewer.layers) > n, 120)
    pred = viewer.layers[-1]
    rv.ref_combo.setCurrentText(truth.name)
    rv.pred_combo.setCurrentText(pred.name)
    rv.run()
    t = np.asarray(truth.data)
    both = np.flatnonzero((t == 1).any(axis=(1, 2)) & (t == 2).any(axis=(1, 2)))
    for i in both[np.linspace(0, len(both) - 1, 10).round().astype(int)]:
        for lab in (1, 2):
            idx = np.nonzero(t[i] == lab)
            pred.data_setitem((np.full(idx[0].size, i), *idx), lab)
    QApplication.processEvents()
    ft.image_combo.setCurrentText(image.name)
    ft.labels_combo.setCurrentText(pred.name)
    ft.device_combo.setCurrentText("cpu")
    ft.refresh_slices()
    ft.run_btn.click()
    wait(lambda: ft.worker is None, 600)
    n = len(viewer.layers)
    ft.predict_btn.click()
    wait(lambda: len(viewer.layers) > n, 120)
    pred.visible = False
    viewer.dims.set_current_step(0, int(both[len(both) // 3]))
    viewer.window._qt_window.resize(1500, 950)
    ft_dock.raise_()
    viewer.window._qt_window.resizeDocks([ft_dock], [470], Qt.Horizontal)
    viewer.reset_view()
    close_toasts(viewer)
    for _ in range(10):
        QApplication.processEvents()
    viewer.screenshot(out, canvas_only=False)
    viewer.close()
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshot_finetune.png"))
