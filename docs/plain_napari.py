"""The workflow in plain napari, as a user meets it, with a check of what stays on screen.

Starts napari itself (not ``make run``), opens the sample from File > Open Sample and docks the six
napari-ian panels from the Plugins menu, then goes through the workflow pressing the panels'
buttons and keys: three views, Predict, Review (accept all passing; four flagged slices
corrected and accepted with Shift+N, Shift+A), a two-epoch
Fine-tune and a new prediction with its model. At each step it records whether the window fits
the screen and whether each panel's main controls, progress and result are wholly visible (not
scrolled away, not cut), and with ``--shots DIR`` saves a screenshot of the window per step.

Run under a virtual screen of the size to check::

    xvfb-run -a -s "-screen 0 1366x768x24" .venv/bin/python docs/plain_napari.py --json out.json --shots docs/

(``make screenshot`` keeps the steps the README shows).

It prints (or writes) a JSON report; ``tests/test_layout.py`` runs it on 1366 x 768 and 1600 x 1000.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# what must be in view on each panel's tab: its main button, its progress and its result
MUST_SEE = {
    "Case": ["image_combo", "views_btn", "new_labels_btn", "restore_btn", "brush_box.brush_check"],
    "Predict": ["image_combo", "model_combo", "run_btn", "cancel_btn", "status"],
    "Interactive": ["image_combo", "labels_combo", "start_btn", "status"],
    "Review": ["ref_combo", "pred_combo", "run_btn", "strip", "legend", "next_btn", "accept_btn", "unreviewed_btn",
               "accept_pass_btn", "table", "summary_label"],
    "Fine-tune": ["slices_label", "run_btn", "cancel_btn", "progress", "status", "result_label"],
    "Phantom": ["seed", "go", "status"],
}
PANELS = list(MUST_SEE)


def pump(seconds=0.0):
    from napari_ian.__main__ import pump as pump_qt

    pump_qt(seconds)


def wait_for(condition, timeout: float = 300.0):
    t0 = time.perf_counter()
    while not condition():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("the GUI did not get there in time")
        pump(0.05)


def menu_action(menu, *path):
    """The QAction at ``path`` (menu texts without '&') under ``menu``."""
    for action in menu.actions():
        if action.text().replace("&", "") == path[0]:
            return action if len(path) == 1 else menu_action(action.menu(), *path[1:])
    raise LookupError(f"no menu entry {path[0]!r} in {[a.text() for a in menu.actions()]}")


def dock_from_menu(viewer, name: str):
    """Plugins > napari-ian IAN annotator > ``name``, as a user picks it; returns (dock, panel)."""
    menu_action(viewer.window.plugins_menu, "napari-ian IAN annotator", name).trigger()
    pump(0.1)
    panel = next(w for w in viewer.window.dock_widgets.values() if getattr(w, "TITLE", None) == name)
    return panel.parent(), panel


def attribute(obj, path: str):
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def pick(combo, text: str):
    """Choose ``text`` in a combo box, or stop: a walkthrough with another model than asked is no check."""
    combo.setCurrentText(text)
    if combo.currentText() != text:
        raise SystemExit(f"no {text!r} among {[combo.itemText(i) for i in range(combo.count())]}")


def fully_visible(widget) -> bool:
    """Shown, not scrolled out of view or covered by the window's edge."""
    r = widget.visibleRegion().boundingRect()
    return widget.isVisible() and r.width() >= widget.width() - 1 and r.height() >= widget.height() - 1


def cut_buttons(panel) -> list:
    """Visible buttons narrower than their text needs."""
    from qtpy.QtWidgets import QPushButton

    return [b.text() for b in panel.findChildren(QPushButton)
            if b.isVisible() and b.text() and b.width() < b.sizeHint().width() - 2]


def check(viewer, docks, step, shots, only=()):
    """Record what is in view now, for the panel in front and for each panel when brought to the front."""
    from qtpy.QtWidgets import QApplication

    win = viewer.window._qt_window
    avail = QApplication.primaryScreen().availableGeometry()
    frame = win.frameGeometry()
    out = {"window": [win.width(), win.height()], "screen": [avail.width(), avail.height()],
           "fits_screen": frame.width() <= avail.width() and frame.height() <= avail.height(),
           "panels": {}}
    front = next((n for n, (d, _) in docks.items() if not d.visibleRegion().isEmpty()), None)
    for name, (dock, panel) in docks.items():
        dock.raise_()
        pump(0.1)
        out["panels"][name] = {"hidden": [a for a in MUST_SEE[name] if not fully_visible(attribute(panel, a))],
                               "cut_buttons": cut_buttons(panel),
                               "dock": [dock.width(), dock.height()]}
        if shots and name == step[1] and (not only or step[0] in only):
            from napari_ian.__main__ import close_toasts

            close_toasts(viewer)        # napari's own notices (e.g. about PyQt5) would cover the canvas
            pump(0.1)
            viewer.screenshot(str(Path(shots) / f"plain_{avail.width()}x{avail.height()}_{step[0]}.png"),
                              canvas_only=False)
    if front:
        docks[front][0].raise_()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the report here (else print it)")
    ap.add_argument("--shots", help="save a screenshot per step into this folder")
    ap.add_argument("--only", default="", help="with --shots: only these steps (comma-separated)")
    ap.add_argument("--model", default="ian-default",
                    help="the model to predict with and fine-tune (default: the bundled one; the layout test "
                         "passes a tiny test network, since what is on screen does not depend on the model)")
    args = ap.parse_args(argv)
    only = [x for x in args.only.split(",") if x]
    os.environ.setdefault("NAPARI_IAN_HOME", tempfile.mkdtemp(prefix="ian-plain-"))
    import napari
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    report = {"steps": {}}
    viewer = napari.Viewer()
    win = viewer.window._qt_window
    report["window_at_start"] = [win.width(), win.height()]
    menubar = win.menuBar()
    file_menu = next(a.menu() for a in menubar.actions() if a.text().replace("&", "") == "File")
    t0 = time.perf_counter()
    menu_action(file_menu, "Open Sample", "IAN MRN phantom (synthetic, with ground truth) (napari-ian IAN annotator)"
                ).trigger()
    report["open_sample_s"] = round(time.perf_counter() - t0, 2)
    report["axis_labels"] = list(viewer.dims.axis_labels)
    docks = {name: dock_from_menu(viewer, name) for name in PANELS}
    pump(0.5)
    report["steps"]["docked"] = check(viewer, docks, ("docked", "Case"), None)

    case = docks["Case"][1]
    docks["Case"][0].raise_()
    case.views_btn.click()
    pump(1.0)
    report["steps"]["three_views"] = check(viewer, docks, ("three_views", "Case"), args.shots, only)

    predict = docks["Predict"][1]
    docks["Predict"][0].raise_()
    pick(predict.model_combo, args.model)
    n = len(viewer.layers)
    predict.run_btn.click()
    wait_for(lambda: len(viewer.layers) > n and predict.run_btn.isEnabled())
    report["steps"]["predicted"] = check(viewer, docks, ("predicted", "Predict"), args.shots, only)

    review = docks["Review"][1]
    docks["Review"][0].raise_()
    truth = next(ly for ly in viewer.layers if ly.name.endswith("ground truth"))
    review.ref_combo.setCurrentText(truth.name)
    review.pred_combo.setCurrentText(viewer.layers[-1].name)
    review.run_btn.click()
    pump(1.5)
    review.accept_pass_btn.click()                     # the passing slices in one click
    canvas = viewer.window._qt_viewer.canvas.native
    labels = viewer.layers[-1]
    for _ in range(4):                                 # correct four flagged slices and accept them
        QTest.keyClick(canvas, Qt.Key_N, Qt.ShiftModifier)      # on to a flagged slice (Shift+N)
        pump(0.3)
        i = viewer.dims.current_step[0]
        # the correction: what a user would paint or erase, here to the phantom's own outline
        want = np.asarray(truth.data[i])
        wrong = np.asarray(labels.data[i]) != want
        for value in (0, 1, 2):
            idx = np.nonzero(wrong & (want == value))
            labels.data_setitem((np.full(idx[0].size, i), *idx), value)
        QTest.keyClick(canvas, Qt.Key_A, Qt.ShiftModifier)      # accept it (Shift+A)
        pump(0.3)
    QTest.keyClick(canvas, Qt.Key_N, Qt.ShiftModifier)  # on to the next flagged slice
    pump(1.5)
    report["steps"]["reviewed"] = check(viewer, docks, ("reviewed", "Review"), args.shots, only)

    ft = docks["Fine-tune"][1]
    docks["Fine-tune"][0].raise_()
    ft.labels_combo.setCurrentText(viewer.layers[-1].name)
    pick(ft.base_combo, args.model)
    ft.epochs_spin.setValue(2)
    ft.device_combo.setCurrentText("cpu")
    ft.run_btn.click()
    wait_for(lambda: ft.progress.value() >= 1 or ft.worker is None)
    report["steps"]["finetuning"] = check(viewer, docks, ("finetuning", "Fine-tune"), args.shots, only)
    wait_for(lambda: ft.worker is None)
    pump(0.3)
    report["finetune_result"] = ft.result_label.text()
    report["steps"]["finetuned"] = check(viewer, docks, ("finetuned", "Fine-tune"), args.shots, only)
    n = len(viewer.layers)
    ft.predict_btn.click()                              # re-predict with the new model, in the Predict panel
    wait_for(lambda: len(viewer.layers) > n and predict.run_btn.isEnabled())
    report["predict_panels"] = sum(getattr(w, "TITLE", "") == "Predict" for w in viewer.window.dock_widgets.values())
    report["repredicted_with"] = viewer.layers[-1].name
    viewer.close()
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
