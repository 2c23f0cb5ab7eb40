"""The Fine-tune panel in a real, shown viewer: correct slices, press the button, a new model appears."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui
# the bundled model's predictions and fine-tunes take minutes on a CPU without native bf16: a limit
# against hanging, not a speed goal (those are in bench/)
BUNDLED_MODEL_WAIT = 600_000


@pytest.fixture(scope="module")
def phantom_layer_data():
    """The sample patient cropped to its nerves and 5 mm around them, and to the middle 70 % of
    their front-to-back course (a third of the voxels): every prediction and fine-tune below then
    covers 27 network patches instead of 72."""
    from types import SimpleNamespace

    from napari_ian._layers import geometry_of, image_layer_data, labels_layer_data
    from napari_ian._sample_data import phantom_layers
    from napari_ian.sample_data.dataset import phantom_geometry

    (image, im_kw, _), (truth, truth_kw, _) = phantom_layers()
    spacing = np.asarray(im_kw["scale"], float)
    nz = np.argwhere(np.asarray(truth) > 0)
    pad = np.ceil(5.0 / spacing).astype(int)
    box = [slice(max(int(lo) - p, 0), min(int(hi) + p + 1, n))
           for lo, hi, p, n in zip(nz.min(0), nz.max(0), pad, image.shape)]
    cut = (box[0].stop - box[0].start) * 15 // 100
    box = (slice(box[0].start + cut, box[0].stop - cut), *box[1:])
    whole = geometry_of(SimpleNamespace(metadata=im_kw["metadata"]))
    # another image than the sample, so another case key (the corrections store keys on it)
    geometry = phantom_geometry(image[box].shape, spacing, source=whole.source, case_key=f"{whole.case_key}-crop")
    cropped_truth = labels_layer_data(np.ascontiguousarray(truth[box]), geometry, truth_kw["name"])
    cropped_truth[1]["colormap"] = truth_kw["colormap"]
    return [image_layer_data(np.ascontiguousarray(image[box]), geometry, im_kw["name"]), cropped_truth]


def _paint_with_the_mouse(viewer, layer, slice_index, label, centre, qtbot):
    """napari's own brush, a short left-drag of real mouse events across ``centre`` (SI, RL) on a coronal slice."""
    from gui_actions import canvas_point, drag

    viewer.dims.set_current_step(0, int(slice_index))
    viewer.layers.selection.active = layer
    layer.mode = "paint"
    layer.selected_label = label
    layer.brush_size = 6
    si, rl = centre
    drag(viewer, [canvas_point(viewer, layer, si, rl + d) for d in (-4, -2, 0, 2, 4)])


@pytest.fixture
def corrected(make_napari_viewer, tmp_path, monkeypatch, phantom_layer_data, qtbot):
    """A shown viewer: phantom, a damaged 'prediction', slices corrected by painting and accepted by key.

    The Review and Fine-tune panels are docked as from the Plugins menu; five slices are painted on
    with real mouse events (napari's brush) and must count as corrected in the Fine-tune panel.
    """
    yield from _corrected(make_napari_viewer, tmp_path, monkeypatch, phantom_layer_data, qtbot, mouse=True)


@pytest.fixture
def corrected_in_code(make_napari_viewer, tmp_path, monkeypatch, phantom_layer_data, qtbot):
    """:func:`corrected`, the five slices painted through ``Labels.data_setitem`` (as napari's brush
    writes) instead of mouse drags: for the tests of what the panel does around a run; mouse
    painting on a shown canvas takes about 5 s here, under Xvfb."""
    yield from _corrected(make_napari_viewer, tmp_path, monkeypatch, phantom_layer_data, qtbot, mouse=False)


def _corrected(make_napari_viewer, tmp_path, monkeypatch, phantom_layer_data, qtbot, mouse):
    from napari.layers import Layer
    from qtpy.QtCore import Qt

    from gui_actions import dock

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path / "home"))
    viewer = make_napari_viewer(show=True)
    image, truth = [viewer.add_layer(Layer.create(np.copy(d), dict(m), t)) for d, m, t in phantom_layer_data]
    t = np.asarray(truth.data)
    pred_data = t.copy()
    both = np.flatnonzero((t == 1).any(axis=(1, 2)) & (t == 2).any(axis=(1, 2)))
    chosen = both[np.linspace(0, len(both) - 1, 8).round().astype(int)]
    pred_data[chosen] = 0                                      # the model missed these slices
    pred = viewer.add_labels(pred_data, name="ian-default prediction", scale=truth.scale,
                             metadata=dict(truth.metadata))
    review = dock(viewer, "Review")
    w = dock(viewer, "Fine-tune")
    review.ref_combo.setCurrentText(truth.name)
    review.pred_combo.setCurrentText(pred.name)
    assert review.run()
    qtbot.waitUntil(lambda: viewer.dims.current_step[0] == chosen[0], timeout=2_000)   # the first flagged slice
    w.image_combo.setCurrentText(image.name)
    w.labels_combo.setCurrentText(pred.name)
    assert "no corrected or accepted slices" in w.slices_label.text()
    for i in chosen[:5]:                                       # the annotator paints on five slices ...
        for lab in (1, 2):
            if mouse:
                centre = np.argwhere(t[i] == lab).mean(axis=0)
                _paint_with_the_mouse(viewer, pred, i, lab, centre, qtbot)
            else:
                viewer.dims.set_current_step(0, int(i))
                some = np.argwhere(t[i] == lab)[:3]
                pred.data_setitem((np.full(len(some), i), *some.T), lab)
    qtbot.waitUntil(lambda: "5 right + 5 left coronal slices" in w.slices_label.text(), timeout=5_000)
    pred.mode = "pan_zoom"
    for i in chosen[:5]:                                       # ... (exactly, for the training below)
        for lab in (1, 2):
            idx = np.nonzero(t[i] == lab)
            pred.data_setitem((np.full(idx[0].size, i), *idx), lab)
    canvas = viewer.window._qt_viewer.canvas.native
    for i in chosen[5:]:                                       # ... repairs three more and accepts them by key
        pred.data[i] = t[i]
        viewer.dims.set_current_step(0, int(i))
        qtbot.keyClick(canvas, Qt.Key_A, Qt.ShiftModifier)
    assert (review.status[:, chosen] >= 1).all()
    qtbot.waitUntil(lambda: "8 right + 8 left coronal slices" in w.slices_label.text(), timeout=5_000)
    yield viewer, w, image, pred, chosen
    if w.worker is not None:           # a failed test's run must not go on into the next test's folders
        w.cancel_btn.click()
        qtbot.waitUntil(lambda: w.worker is None, timeout=BUNDLED_MODEL_WAIT)


def _start_from_a_tiny_model(w):
    """Fine-tune a tiny 3D network instead of the bundled model: for tests of what the panel does
    around the training (cancel, save, names, stored corrections), not of what it learns."""
    from tiny_models import save_tiny3d

    save_tiny3d("tiny3d")
    w.refresh_models()
    w.base_combo.setCurrentText("tiny3d")
    assert w.name_edit.text() == "tiny3d-ft1"


def _user_models():
    from napari_ian.trainer.registry import user_models_dir

    d = user_models_dir()
    return sorted(p.name for p in d.glob("*.pt")) if d.exists() else []


def test_finetune_button_makes_a_new_model_that_predicts_differently(corrected, qtbot):
    from gui_actions import dock
    from napari_ian.trainer.modelfile import read_metadata
    from napari_ian.trainer.registry import resolve_model

    viewer, w, image, pred, chosen = corrected
    assert "8 right + 8 left coronal slices" in w.slices_label.text()
    pw = dock(viewer, "Predict")                               # the model picker of another panel
    qtbot.waitUntil(lambda: w.device_note.text().startswith("Runs on: CPU"), timeout=60_000)   # torch loaded
    assert w.name_edit.text() == "ian-default-ft1"
    # the panel starts from the one set of fine-tuning defaults, the same as ``ian finetune``'s
    from napari_ian.trainer.cli import build_parser

    cli = build_parser().parse_args(["finetune", "--image", "i", "--labels", "l", "--slices", "1", "--name", "n"])
    assert (w.epochs_spin.value(), w.lr_spin.value(), w.holdout_spin.value() / 100) == (cli.epochs, cli.lr, cli.holdout)
    from napari_ian.trainer.finetune import FinetuneConfig

    assert (cli.epochs, cli.lr, cli.holdout) == (FinetuneConfig.epochs, FinetuneConfig.lr, FinetuneConfig.holdout)
    assert w.pseudo_check.isChecked() == (not cli.no_pseudo_labels) == FinetuneConfig.pseudo_labels
    assert w.rehearsal_check.isChecked() == (cli.rehearsal_share > 0) == (FinetuneConfig.rehearsal_share > 0)
    assert (not cli.train_first_block) == FinetuneConfig.freeze_first_block
    w.epochs_spin.setValue(2)
    w.device_combo.setCurrentText("cpu")
    assert w.device_note.text().startswith("Runs on: CPU")
    # the base model's prediction, to compare with the new model's
    pw.image_combo.setCurrentText(image.name)
    pw.model_combo.setCurrentText("ian-default")
    pw.prob_check.setChecked(True)
    n = len(viewer.layers)
    pw.run_btn.click()
    qtbot.waitUntil(lambda: len(viewer.layers) == n + 2, timeout=BUNDLED_MODEL_WAIT)
    base_prob = np.asarray(viewer.layers["ian-default probability"].data).copy()
    w.run_btn.click()
    assert w.worker is not None and not w.run_btn.isEnabled()
    qtbot.waitUntil(lambda: w.worker is None, timeout=BUNDLED_MODEL_WAIT)
    assert "saved" in w.result_label.text() and "Held-out corrected slices (4)" in w.result_label.text()
    assert w.progress.value() == 2 and len(w.curve.loss) == 2
    meta = read_metadata(resolve_model("ian-default-ft1"))
    assert meta["parent"] == "ian-default" and meta["finetune"]["train_slices"] == 12
    assert len(meta["finetune"]["cases"]) == 1 and meta["finetune"]["settings"]["epochs"] == 2
    # the slices between the corrected ones were pseudo-labelled (the checkbox's default)
    assert meta["finetune"]["settings"]["pseudo_labels"] and meta["finetune"]["pseudo_labelled_slices"] > 0
    # ... and phantoms the bundled model learnt from were mixed in (the other checkbox's default)
    assert meta["finetune"]["settings"]["rehearsal_share"] == FinetuneConfig.rehearsal_share > 0
    assert meta["finetune"]["settings"]["freeze_first_block"] == FinetuneConfig.freeze_first_block
    assert meta["finetune"]["rehearsal_volumes"] == 2
    # it is in the other panel's picker at once, and in this panel's list of the user's models
    assert "ian-default-ft1" in [pw.model_combo.itemText(i) for i in range(pw.model_combo.count())]
    assert w.library.models_list.count() == 1 and w.library.store_list.count() == 1
    assert w.name_edit.text() == "ian-default-ft2"
    # one click shows the new model's prediction of the case as a new layer (the corrected one is
    # untouched): the one the fine-tune made for its after-score, at once, without a second run ...
    before = np.asarray(pred.data).copy()
    n = len(viewer.layers)
    w.predict_btn.click()
    assert len(viewer.layers) == n + 2 and pw.worker is None
    assert "not run again" in pw.status.text()
    shown = viewer.layers["ian-default-ft1 prediction"]
    new_prob = np.asarray(viewer.layers["ian-default-ft1 probability"].data)
    assert np.abs(new_prob - base_prob).max() > 0.05                  # the new model predicts otherwise
    np.testing.assert_array_equal(np.asarray(pred.data), before)
    assert shown.metadata["ian_model"]["name"] == "ian-default-ft1"
    kept = w.last_result["prediction"]            # shown again by a second click: never the layer's own array
    assert not np.shares_memory(shown.data, kept.labels) and not np.shares_memory(new_prob, kept.probability)
    # ... which is what the Predict panel makes with that model
    pw.run_btn.click()
    qtbot.waitUntil(lambda: len(viewer.layers) == n + 4, timeout=BUNDLED_MODEL_WAIT)
    again = viewer.layers["ian-default-ft1 prediction (2)"]
    np.testing.assert_array_equal(np.asarray(again.data), np.asarray(shown.data))
    np.testing.assert_allclose(np.asarray(viewer.layers["ian-default-ft1 probability [1]"].data), new_prob, atol=1e-4)
    assert again.metadata["ian_model"] == shown.metadata["ian_model"]
    # asked otherwise than the fine-tune predicted (the fast box clicked), the Predict panel runs it
    pw.fast_check.click()
    w.predict_btn.click()
    assert pw.worker is not None
    qtbot.waitUntil(lambda: len(viewer.layers) == n + 6, timeout=BUNDLED_MODEL_WAIT)
    assert viewer.layers[-2].metadata["ian_model"]["fast_tiles"]
    pw.fast_check.click()
    assert w._prediction_fits(pw, image)
    image.data = np.asarray(image.data) + 1.0                          # nor for an image changed since
    assert not w._prediction_fits(pw, image)


def test_cancel_leaves_the_registry_and_layers_unchanged(corrected_in_code, qtbot):
    from qtpy.QtWidgets import QLabel

    viewer, w, image, pred, chosen = corrected_in_code
    _start_from_a_tiny_model(w)
    layers = [ly.name for ly in viewer.layers]
    w.epochs_spin.setValue(50)
    w.device_combo.setCurrentText("cpu")
    w.run_btn.click()
    qtbot.waitUntil(lambda: w.progress.value() >= 1, timeout=120_000)   # mid-run
    # the run is in napari's activity bar too (seen whichever panel tab is in front)
    assert any(label.text().startswith("Fine-tuning tiny3d → tiny3d-ft1")
               for label in viewer.window._qt_window.findChildren(QLabel))
    w.cancel_btn.click()
    qtbot.waitUntil(lambda: w.worker is None, timeout=60_000)
    assert "Cancelled" in w.status.text() and w.progress.value() < 50
    assert _user_models() == ["tiny3d.pt"] and [ly.name for ly in viewer.layers] == layers
    assert not w.predict_btn.isEnabled()


def test_bad_inputs_are_explained(corrected_in_code, qtbot, monkeypatch):
    from napari_ian import _finetune_widget as fw
    from napari_ian.trainer.registry import user_models_dir

    viewer, w, image, pred, chosen = corrected_in_code
    said = []
    monkeypatch.setattr(fw, "show_info", said.append)
    errors = []
    monkeypatch.setattr(fw, "show_error", errors.append)
    # labels nobody reviewed: no corrected slices yet
    viewer.add_labels(np.zeros(pred.data.shape, np.uint8), name="fresh", scale=pred.scale,
                      metadata=dict(pred.metadata))
    w.labels_combo.setCurrentText("fresh")
    assert w.run() is None and "no corrected or accepted slices" in said[-1]
    # a base model that was damaged after it was listed: one error line naming it, nothing saved
    import shutil

    from napari_ian.trainer.registry import resolve_model

    w.labels_combo.setCurrentText(pred.name)
    user_models_dir().mkdir(parents=True, exist_ok=True)
    shutil.copy(resolve_model("ian-default"), user_models_dir() / "site.pt")
    w.refresh_models()
    w.base_combo.setCurrentText("site")
    (user_models_dir() / "site.pt").write_bytes(b"garbage")
    w.name_edit.setText("from-site")
    assert w.run() is not None
    qtbot.waitUntil(lambda: w.worker is None, timeout=60_000)
    assert errors and "site.pt" in errors[-1] and len(errors[-1].splitlines()) == 1
    assert "No model was saved" in w.status.text() and _user_models() == ["site.pt"]
    # an existing name is refused before any work
    w.name_edit.setText("ian-default")
    assert w.run() is None and "bundled" in said[-1]
    # the failed run had stored this case: it can be held out whole, but only beside earlier cases
    w.refresh_store()
    assert w.library.store_list.count() == 1 and w.holdout_case_combo.count() == 2
    w.holdout_case_combo.setCurrentIndex(1)
    w.name_edit.setText("whole-case")
    assert w.run() is None and "needs the earlier cases" in said[-1]


def test_a_deleted_panel_does_not_break_the_model_list_signal(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    import shutil

    from qtpy.QtCore import QCoreApplication, QEvent

    from gui_actions import dock
    from napari_ian._hub import hub
    from napari_ian.trainer.registry import resolve_model, user_models_dir

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    gone, kept = (dock(make_napari_viewer(show=True), "Predict") for _ in range(2))
    gone.deleteLater()                                     # its window closed
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    with pytest.raises(RuntimeError, match="deleted"):
        gone.isVisible()                                   # its Qt side is gone, the Python object is not
    user_models_dir().mkdir(parents=True)
    shutil.copy(resolve_model("ian-default"), user_models_dir() / "site.pt")
    hub.models_changed.emit()                              # no error from the deleted panel ...
    hub.models_changed.emit()
    assert "site" in [kept.model_combo.itemText(i) for i in range(kept.model_combo.count())]   # ... the live one follows


def test_stored_corrections_of_another_image_are_replaced_only_after_asking(corrected_in_code, qtbot):
    from napari_ian._layers import geometry_of
    from napari_ian.trainer.corrections import find_corrections, image_digest, save_corrections

    viewer, w, image, pred, chosen = corrected_in_code
    key = geometry_of(image).case_key
    other = np.asarray(image.data, dtype=np.float32) + 1.0          # same case key, other voxels
    trusted = np.zeros((2, other.shape[0]), bool)
    trusted[:, chosen[:2]] = True
    save_corrections(key, other, np.asarray(pred.data), trusted, image.scale)
    asked = []
    w.ask_replace = lambda exc: asked.append(str(exc)) or len(asked) > 1   # "No" first, then "Yes"
    _start_from_a_tiny_model(w)
    w.epochs_spin.setValue(1)
    w.device_combo.setCurrentText("cpu")
    w.run()
    qtbot.waitUntil(lambda: w.worker is None, timeout=60_000)
    assert len(asked) == 1 and "different image" in asked[0] and "kept" in w.status.text()
    assert find_corrections(key).image_digest == image_digest(other)      # untouched after "No"
    w.run()
    qtbot.waitUntil(lambda: w.last_result is not None, timeout=120_000)
    assert len(asked) == 2 and find_corrections(key).image_digest == image_digest(np.asarray(image.data))


def test_a_new_prediction_never_takes_over_an_earlier_layers_review_status(corrected_in_code, qtbot):
    from gui_actions import dock

    viewer, w, image, pred, chosen = corrected_in_code
    viewer.layers.remove(pred)                 # the corrected layer is gone (closed, or napari restarted)
    pw = dock(viewer, "Predict")
    pw.image_combo.setCurrentText(image.name)
    pw.model_combo.setCurrentText("ian-default")
    pw.run_btn.click()
    qtbot.waitUntil(lambda: any("prediction" in ly.name for ly in viewer.layers), timeout=BUNDLED_MODEL_WAIT)
    new = [ly for ly in viewer.layers if "prediction" in ly.name][0]
    assert new.name == "ian-default prediction (2)"             # its status file belongs to the old layer
    w.labels_combo.setCurrentText(new.name)
    w.refresh_slices()
    assert "no corrected or accepted slices" in w.slices_label.text()


def test_qt_thread_pool_is_roomy_and_sized_once(make_napari_viewer):
    """Qt's own image conversions share the global pool with napari's workers: it is made roomy once,
    when the first panel is docked, and left alone afterwards (another plugin may size it too)."""
    from qtpy.QtCore import QThread, QThreadPool

    from gui_actions import dock

    viewer = make_napari_viewer(show=True)
    pool = QThreadPool.globalInstance()
    dock(viewer, "Review")
    assert pool.maxThreadCount() >= QThread.idealThreadCount() + 4
    pool.setMaxThreadCount(QThread.idealThreadCount() + 20)   # someone else's choice
    for panel in ("Fine-tune", "Predict", "Phantom", "Case"):
        dock(viewer, panel)
        assert pool.maxThreadCount() == QThread.idealThreadCount() + 20, panel


TAKE_NAME = """
import sys, time
from pathlib import Path
import torch
from napari_ian.trainer.modelfile import save_model
from napari_ian.trainer.nets import build_network
meta = {"network": "unet", "network_config": {"base": 4, "depth": 2, "in_channels": 1},
        "preprocessing": {"size": [16, 24], "context": 1}, "trained_on": "the other run"}
net = build_network("unet", in_channels=1, base=4, depth=2)
Path(sys.argv[2]).with_name("ready").touch()
while not Path(sys.argv[2]).exists():
    time.sleep(0.005)
save_model(sys.argv[1], net, meta)
"""


def _notes(severity):
    from napari.utils.notifications import notification_manager

    return [n.message for n in notification_manager.records if n.severity == severity]


def test_a_default_name_taken_during_the_run_gets_the_next_free_name(corrected_in_code, qtbot):
    """Another process saves the suggested name while this panel trains: both models are kept."""
    import subprocess
    import sys

    from napari_ian.trainer.modelfile import read_metadata
    from napari_ian.trainer.registry import user_model_path

    viewer, w, image, pred, chosen = corrected_in_code
    _start_from_a_tiny_model(w)
    go = user_model_path("x").parent.parent / "go"
    other = subprocess.Popen([sys.executable, "-c", TAKE_NAME, str(user_model_path("tiny3d-ft1")), str(go)])
    qtbot.waitUntil(go.with_name("ready").exists, timeout=60_000)       # the other run has started
    w.epochs_spin.setValue(3)
    w.device_combo.setCurrentText("cpu")
    w.pseudo_check.setChecked(False)              # (and the unticked box reaches the run)
    w.rehearsal_check.setChecked(False)           # (this one too)
    warned = len(_notes("warning"))
    w.run_btn.click()
    qtbot.waitUntil(lambda: w.progress.value() >= 1, timeout=120_000)     # training: the name was checked
    go.touch()                                                            # the other run saves that name now
    qtbot.waitUntil(lambda: other.poll() is not None, timeout=60_000)
    assert other.returncode == 0 and w.worker is not None                 # ... before this run saves
    qtbot.waitUntil(lambda: w.worker is None, timeout=120_000)
    said = [m for m in _notes("warning")[warned:] if "meanwhile" in m]
    assert said == ["napari-ian: another run saved a model called tiny3d-ft1 meanwhile; this one is saved "
                    "as tiny3d-ft2 (nothing was replaced)"]
    assert read_metadata(user_model_path("tiny3d-ft1"))["trained_on"] == "the other run"
    meta = read_metadata(user_model_path("tiny3d-ft2"))
    assert meta["parent"] == "tiny3d"
    assert not meta["finetune"]["settings"]["pseudo_labels"] and meta["finetune"]["pseudo_labelled_slices"] == 0
    assert meta["finetune"]["settings"]["rehearsal_share"] == 0
    assert "tiny3d-ft2" in w.result_label.text()


def test_a_failed_save_gives_one_notification_and_loses_nothing(corrected_in_code, qtbot, tmp_path):
    from napari_ian.trainer.corrections import list_corrections
    from napari_ian.trainer.registry import user_models_dir

    viewer, w, image, pred, chosen = corrected_in_code
    _start_from_a_tiny_model(w)
    before = np.asarray(pred.data).copy()
    w.epochs_spin.setValue(4)            # (the tiny network's epoch takes about two seconds: time to move the folder)
    w.device_combo.setCurrentText("cpu")
    errors = len(_notes("error"))
    w.run_btn.click()
    # once training runs (the base model is loaded), the model folder becomes a file: the save must fail
    qtbot.waitUntil(lambda: w.progress.value() >= 1, timeout=60_000)
    user_models_dir().rename(tmp_path / "models_moved_away")
    user_models_dir().write_text("a file where the model folder should be")
    qtbot.waitUntil(lambda: w.worker is None, timeout=120_000)
    said = _notes("error")[errors:]
    assert len(said) == 1 and "fine-tuning failed" in said[0] and str(user_models_dir()) in said[0]
    assert "No model was saved" in w.status.text()
    np.testing.assert_array_equal(np.asarray(pred.data), before)          # the corrected layer is as it was
    entries = list_corrections()                                          # and its corrections are stored
    assert len(entries) == 1 and set(entries[0].slices["right"]) == set(int(i) for i in chosen)
    assert user_models_dir().read_text().startswith("a file")


def test_a_non_finite_image_is_said_once_when_fine_tuning_starts(corrected_in_code, qtbot):
    viewer, w, image, pred, chosen = corrected_in_code
    _start_from_a_tiny_model(w)
    image.data[0, 0, 0] = np.nan
    w.epochs_spin.setValue(50)
    w.device_combo.setCurrentText("cpu")
    warned = len(_notes("warning"))
    w.run_btn.click()
    w.cancel_btn.click()
    qtbot.waitUntil(lambda: w.worker is None, timeout=120_000)
    said = [m for m in _notes("warning")[warned:] if "non-finite" in m]
    assert said == [f"napari-ian: {image.name}: 1 non-finite voxels (NaN/Inf) ignored"]
