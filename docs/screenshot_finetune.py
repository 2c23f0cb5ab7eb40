"""The README's Fine-tune picture, in plain napari: the phantom seen through another contrast, ten slices corrected, one run.

napari is started as a user starts it and the panels are docked from the Plugins menu. An
annotator's work is simulated the way the tests do it: the ground truth of ten coronal slices is
painted into the prediction layer (the Review panel marks them corrected). Then the Fine-tune
panel's button is pressed and the window is saved once the new model has re-predicted the case.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshot_finetune.py OUT.png``
(part of ``make screenshot``). Uses a temporary ``NAPARI_IAN_HOME``.
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

from plain_napari import dock_from_menu, pump, wait_for   # docs/plain_napari.py, next to this script


def main(out: str) -> int:
    os.environ["NAPARI_IAN_HOME"] = tempfile.mkdtemp(prefix="ian-shot-")
    import napari

    from napari_ian.__main__ import close_toasts
    from napari_ian._sample_data import phantom_layers

    viewer = napari.Viewer()
    (img_d, img_m, _), (lab_d, lab_m, _) = phantom_layers(100)
    x = np.clip(img_d, 0, None) / img_d.max()
    img_m = {**img_m, "name": "phantom 100, other contrast"}
    img_m.pop("contrast_limits", None)
    image = viewer.add_image((x ** 0.4).astype(np.float32), **img_m)   # the domain shift of bench_finetune.py
    truth = viewer.add_labels(lab_d, **{**lab_m, "visible": False})
    docks = {name: dock_from_menu(viewer, name) for name in ("Predict", "Review", "Fine-tune")}
    (_, pw), (_, rv), (ft_dock, ft) = docks["Predict"], docks["Review"], docks["Fine-tune"]
    pw.device_combo.setCurrentText("cpu")
    n = len(viewer.layers)
    pw.run_btn.click()
    wait_for(lambda: len(viewer.layers) > n and pw.run_btn.isEnabled(), 120)
    pred = viewer.layers[-1]
    rv.ref_combo.setCurrentText(truth.name)
    rv.pred_combo.setCurrentText(pred.name)
    rv.run_btn.click()
    t = np.asarray(truth.data)
    both = np.flatnonzero((t == 1).any(axis=(1, 2)) & (t == 2).any(axis=(1, 2)))
    for i in both[np.linspace(0, len(both) - 1, 10).round().astype(int)]:
        idx = np.nonzero(np.asarray(pred.data[i]) != t[i])        # the slice made equal to the truth
        if idx[0].size:
            pred.data_setitem((np.full(idx[0].size, i), *idx), t[i][idx])
    pump(0.5)
    ft_dock.raise_()
    ft.image_combo.setCurrentText(image.name)
    ft.labels_combo.setCurrentText(pred.name)
    wait_for(lambda: ft.device_note.text().startswith("Runs on"), 120)   # torch loads in the background
    ft.device_combo.setCurrentText("cpu")
    ft.run_btn.click()
    wait_for(lambda: ft.worker is None, 600)
    n = len(viewer.layers)
    ft.predict_btn.click()
    wait_for(lambda: len(viewer.layers) > n, 120)
    pred.visible = False
    ft_dock.raise_()
    viewer.dims.set_current_step(0, int(both[len(both) // 3]))
    viewer.reset_view()
    close_toasts(viewer)
    pump(0.5)
    viewer.screenshot(out, canvas_only=False)
    viewer.close()
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshot_finetune.png"))
