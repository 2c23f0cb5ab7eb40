"""Corrections store, fine-tuning, the versioned registry and `ian finetune` (no GUI)."""
from __future__ import annotations

import dataclasses

import errno
import json

import nibabel as nib
import numpy as np
import pytest

from napari_ian.sample_data.dataset import phantom_geometry
from napari_ian.trainer import corrections as store
from napari_ian.trainer.cli import main
from napari_ian.trainer.cli_args import parse_slices
from napari_ian.trainer.finetune import (FinetuneConfig, build_finetune_data, delete_model, finetune, holdout_block,
                                         next_model_name, rename_model, save_finetuned, training_crop)
from napari_ian.trainer.io import read_volume
from napari_ian.trainer.io_nifti import write_nifti
from napari_ian.trainer.modelfile import load_model, read_metadata
from napari_ian.trainer.predict import predict_volume
from napari_ian.trainer.registry import list_models, resolve_model, user_models_dir
from napari_ian.trainer.progress import Cancelled
from tiny_models import save_tiny25d, save_tiny3d, tiny3d


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _trusted(n, slices):
    t = np.zeros((2, n), bool)
    t[:, slices] = True
    return t


def _nerve_slices(labels, k):
    both = np.flatnonzero((labels == 1).any(axis=(1, 2)) & (labels == 2).any(axis=(1, 2)))
    return both[np.linspace(0, len(both) - 1, k).round().astype(int)]


# -- corrections store -------------------------------------------------------------------------
def test_store_adds_updates_and_never_duplicates(home, phantom):
    image, labels, sp, _ = phantom
    n = image.shape[0]
    e = store.save_corrections("case-a", image, labels, _trusted(n, [40, 41]), sp)
    assert e.slices == {"right": [40, 41], "left": [40, 41]}
    # a re-predicted layer (other labels) with other trusted slices: old corrections keep their labels
    other = np.zeros_like(labels)
    e2 = store.save_corrections("case-a", image, other, _trusted(n, [60]), sp)
    assert e2.path == e.path and len(store.list_corrections()) == 1
    assert e2.slices["right"] == [40, 41, 60]
    img2, lab2, trusted2, _ = store.load_corrections(e2)
    np.testing.assert_array_equal(lab2[40], labels[40])          # kept from the first save
    assert not lab2[60].any()                                    # the new labels of slice 60
    assert trusted2[:, [40, 41, 60]].all() and trusted2.sum() == 6
    np.testing.assert_array_equal(img2, image)
    # the entry's file name and metadata carry hashes only
    assert "case-a" not in e2.path.name and "case-a" not in json.dumps(e2.slices)
    store.delete_corrections(e2)
    assert store.list_corrections() == []


def test_store_refuses_another_image_and_nothing_to_store(home, phantom):
    image, labels, sp, _ = phantom
    n = image.shape[0]
    store.save_corrections("case-b", image, labels, _trusted(n, [50]), sp)
    changed = np.array(image, copy=True)
    changed[0, 0, 0] += 1
    with pytest.raises(store.CorrectionsMismatch, match="different image"):
        store.save_corrections("case-b", changed, labels, _trusted(n, [51]), sp)
    e = store.save_corrections("case-b", changed, labels, _trusted(n, [51]), sp, replace=True)
    assert e.slices["right"] == [51]                             # replaced, not merged with the old image's
    with pytest.raises(ValueError, match="no corrected or accepted slices"):
        store.save_corrections("case-b", image, labels, np.zeros((2, n), bool), sp)


def test_store_full_disk_keeps_the_previous_entry(home, phantom, monkeypatch):
    image, labels, sp, _ = phantom
    n = image.shape[0]
    before = store.save_corrections("case-c", image, labels, _trusted(n, [45]), sp)
    raw = before.path.read_bytes()

    def full(target, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "atomic_write_bytes", full)
    with pytest.raises(store.CorrectionsError, match="No space left.*previous entry is unchanged"):
        store.save_corrections("case-c", image, labels, _trusted(n, [46]), sp)
    assert before.path.read_bytes() == raw
    assert store.read_entry(before.path).slices["right"] == [45]


def test_a_damaged_store_file_is_reported_by_name(home, phantom):
    image, labels, sp, _ = phantom
    e = store.save_corrections("case-d", image, labels, _trusted(image.shape[0], [45]), sp)
    e.path.write_bytes(b"not a zip")
    with pytest.raises(store.CorrectionsError, match=e.path.name):
        store.read_entry(e.path)
    assert store.list_corrections() == []                        # skipped, not crashing the list
    with pytest.raises(store.CorrectionsMismatch, match="damaged"):
        store.save_corrections("case-d", image, labels, _trusted(image.shape[0], [46]), sp)
    e2 = store.save_corrections("case-d", image, labels, _trusted(image.shape[0], [46]), sp, replace=True)
    assert e2.slices["right"] == [46] and list(e2.path.parent.glob(e2.path.name + ".damaged-*"))


# -- slices, hold-out ----------------------------------------------------------------------------
def test_parse_slices_and_holdout_block():
    np.testing.assert_array_equal(parse_slices("30:33,55, 31", 100), [30, 31, 32, 55])
    for bad, words in (("5:200", "outside"), ("a:b", "not a slice"), ("", "no slices")):
        with pytest.raises(ValueError, match=words):
            parse_slices(bad, 100)
    idx = np.array([3, 9, 10, 11, 20, 21, 40, 41])
    hold = holdout_block(idx, 0.25, seed=1)
    assert len(hold) == 2
    pos = np.searchsorted(idx, hold)
    assert pos[1] - pos[0] == 1                                   # neighbours in the trusted order
    assert holdout_block(idx[:3], 0.25).size == 0                 # too few to hold any out


def test_slice_numbers_follow_the_files_own_ap_axis(tmp_path):
    # a file stored with its AP axis running anterior (index grows towards A): canonical is reversed
    aff = np.array([[0.0, -0.5, 0, 0], [0.8, 0, 0, 0], [0, 0, 1.6, 0], [0, 0, 0, 1]])  # axes: A, L, S
    data = np.zeros((20, 30, 10), np.float32)
    data[3] = 1.0                                                 # native AP slice 3
    p = tmp_path / "a.nii.gz"
    nib.save(nib.Nifti1Image(data, aff), p)
    vol = read_volume(p)
    canon = vol.geometry.canonical_index(0, [3])
    assert vol.data[int(canon[0])].max() == 1.0 and vol.data.sum() == vol.data[int(canon[0])].sum()
    assert int(canon[0]) == 20 - 1 - 3


# -- fine-tuning -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base():
    return load_model(resolve_model("ian-default"))


def test_finetune_trains_on_trusted_slices_and_saves_a_new_versioned_model(home, phantom):
    # a tiny 3D network: what is tested is the flow around the training (the bundled model's own
    # fine-tune runs in tests/test_finetune_widget.py and bench/bench_finetune.py)
    image, labels, sp, _ = phantom
    save_tiny3d("tiny3d")
    model, meta = load_model(resolve_model("tiny3d"))
    chosen = _nerve_slices(labels, 8)
    cfg = FinetuneConfig(epochs=2, min_patches=4, device="cpu", lr=1e-3)
    data = build_finetune_data([("c1", image, labels, _trusted(image.shape[0], chosen), sp)], meta, cfg, base_model=model)
    assert data.n_train + data.n_held_out == 16 and data.n_held_out == 4
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    res = finetune(model, meta, data, cfg, parent="tiny3d")
    # the base model is untouched; the new one differs
    assert all((model.state_dict()[k] == v).all() for k, v in before_state.items())
    assert any((res.model.state_dict()[k] != v).any() for k, v in before_state.items() if v.is_floating_point())
    assert len(res.history) == 2 and not np.isnan(res.before["held_out_dsc"])
    name = next_model_name("tiny3d")
    assert name == "tiny3d-ft1"
    path = save_finetuned(res, name)
    assert path.parent == user_models_dir() and name in [e.name for e in list_models()]
    m = read_metadata(path)
    ft = m["finetune"]
    assert m["parent"] == "tiny3d" and ft["cases"] == ["c1"] and ft["train_slices"] == 12
    assert ft["settings"]["epochs"] == 2 and ft["settings"]["lr"] == cfg.lr and "date" in ft
    assert set(ft["before"]) == {"held_out_dsc", "train_dsc"} and "fine-tuned on 12" in m["trained_on"]
    assert next_model_name("tiny3d") == "tiny3d-ft2" == next_model_name(name)
    first = path.read_bytes()
    again = save_finetuned(res, name)                             # never overwritten: the next free name
    assert again.name == "tiny3d-ft2.pt" and path.read_bytes() == first
    assert read_metadata(again)["name"] == "tiny3d-ft2"
    again.unlink()
    with pytest.raises(ValueError, match="bundled"):
        save_finetuned(res, "ian-default")
    # predicting with it gives another output than the base model
    new_model, new_meta = load_model(resolve_model(name))
    base_pred = predict_volume(image, model, meta, sp, device="cpu")
    p0 = base_pred.probability
    p1 = predict_volume(image, new_model, new_meta, sp, device="cpu").probability
    assert np.abs(p1 - p0).max() > 0.05
    # the 'before' score came from the base model's one prediction made while preparing: the same labels
    assert data.base_model is model and np.array_equal(data.work[0].base_labels, base_pred.labels)
    # rename / delete, bundled refused
    rename_model(name, "site-a")
    assert {"site-a"} <= {e.name for e in list_models()} and name not in {e.name for e in list_models()}
    with pytest.raises(ValueError, match="bundled"):
        delete_model("ian-default")
    delete_model("site-a")
    assert sorted((e.source, e.name) for e in list_models()) == [("bundled", "ian-default"), ("user", "tiny3d")]


def test_a_3d_patch_model_fine_tunes_on_corrected_slices(home, phantom):
    """3D networks see many slices at once: they train on the corrected slices of each patch only
    (the rest is ignored by the loss), are scored on the held-out block, and save like any other."""
    image, labels, sp, _ = phantom
    save_tiny3d("tiny3d")
    model, meta = load_model(resolve_model("tiny3d"))
    chosen = _nerve_slices(labels, 8)
    cfg = FinetuneConfig(epochs=2, min_patches=4, device="cpu", lr=1e-3, pseudo_labels=True)
    data = build_finetune_data([("c1", image, labels, _trusted(image.shape[0], chosen))], meta, cfg, base_model=model)
    assert len(data.work) == 1 and data.n_train == 12 and data.n_held_out == 4
    # the slices between the corrected ones are labelled along the nerve (never the held-out ones)
    w = data.work[0]
    assert w.n_pseudo > 0 and w.pseudo_work.any() and not (w.pseudo_work & w.held_work).any()
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    res = finetune(model, meta, data, cfg, parent="tiny3d")
    changed = {k for k, v in before_state.items() if v.is_floating_point() and (res.model.state_dict()[k] != v).any()}
    # the first (full-resolution) encoder block is kept as it was by default, the rest is trained
    assert changed and not any(k.startswith("down.0.") for k in changed) and any(k.startswith("dec.") for k in changed)
    assert res.metadata["finetune"]["settings"]["freeze_first_block"]
    everything = finetune(model, meta, data, dataclasses.replace(cfg, freeze_first_block=False), parent="tiny3d")
    assert any((everything.model.state_dict()[k] != before_state[k]).any() for k in before_state
               if k.startswith("down.0.") and before_state[k].is_floating_point())
    assert len(res.history) == 2 and not np.isnan(res.history[-1]["val_dsc"])
    assert {"held_out_dsc", "train_dsc"} == set(res.before) == set(res.after)
    # the default crop is cut to the tiny model's own 16 x 32 x 32; a smaller one is trained on as given
    assert res.metadata["training"]["patch"] == [16, 32, 32]
    small = finetune(model, meta, data, dataclasses.replace(cfg, epochs=1, patch=(16, 16, 16)), parent="tiny3d")
    assert small.metadata["training"]["patch"] == [16, 16, 16]
    path = save_finetuned(res, next_model_name("tiny3d"))
    new_model, new_meta = load_model(path)
    assert new_meta["preprocessing"]["pipeline"] == "patch3d" and new_meta["finetune"]["train_slices"] == 12
    out = predict_volume(image, new_model, new_meta, sp, device="cpu")
    assert out.labels.shape == image.shape


def test_the_live_validation_predicts_a_box_around_each_sides_held_out_nerve_and_scores_that_side_only():
    """The per-epoch held-out curve predicts a box of at least one training patch around each side's
    held-out nerve (not whole slices: a quarter of a fine-tune's time), and a side's score never
    counts the other nerve that lies in its box."""
    from types import SimpleNamespace

    from napari_ian.trainer.finetune import VALIDATION_MARGIN_MM, _work_validator, held_out_views
    from napari_ian.trainer.pipeline import Patches3D

    shape, mid = (40, 120, 200), 100
    lab = np.zeros(shape, np.uint8)
    lab[[10, 12], 50:55, 90:96] = 1                    # the right nerve just right of the midline ...
    lab[[10, 12], 50:55, 104:110] = 2                  # ... the left one just beyond it (in the right's box)
    lab[20, 60:64, 150:155] = 2
    held = np.zeros((2, shape[0]), bool)
    held[0, [10, 12]] = True
    held[1, [20, 30]] = True                           # slice 30 has no left nerve: nothing to score there
    w = SimpleNamespace(prepared=SimpleNamespace(volume=np.zeros(shape, np.float32)), labels_work=lab,
                        held_work=held, midline_work=mid)
    pipe = Patches3D(spacing_mm=(0.8, 0.5, 0.5), patch=(16, 48, 48))
    views = held_out_views(pipe, w)
    margin = int(np.ceil(VALIDATION_MARGIN_MM / 0.5))
    (s1, idx1, (r1, c1)), (s2, idx2, (r2, c2)) = views
    assert (s1, idx1.tolist(), s2, idx2.tolist()) == (1, [10, 12], 2, [20])
    assert (r1, c1) == (slice(50 - margin, 55 + margin), slice(90 - margin, 96 + margin))
    assert c1.start < mid < c1.stop                    # the box crosses the midline; scoring must not
    # a small nerve still gets one whole training patch in-plane, and boxes stay inside the volume
    assert r2.stop - r2.start >= 48 and c2.stop - c2.start >= 48 and c2.stop <= shape[2]
    assert r2.start <= 60 and r2.stop >= 64 and c2.start <= 150 and c2.stop >= 155

    seen = []

    def perfect(vol, centres, *args):                  # a model that outlines both nerves exactly
        seen.append(vol.shape)
        rows, cols = next((r, c) for _, i, (r, c) in views if np.array_equal(i[:len(centres)], centres))
        return (lab[centres][:, rows, cols] > 0).astype(np.float32)

    pipe.infer_slices = perfect
    model = SimpleNamespace(eval=lambda: None)
    assert _work_validator(pipe, [w])(model, "cpu", False, False) == 1.0
    assert seen == [(40, r1.stop - r1.start, c1.stop - c1.start), (40, r2.stop - r2.start, c2.stop - c2.start)]


def test_the_fine_tuning_crop_fits_the_3d_network_and_never_exceeds_its_own(base):
    _, meta = base                                     # the bundled 3D U-Net: 32 x 96 x 96, depth 3
    assert training_crop(FinetuneConfig(), meta) == FinetuneConfig.patch == (32, 48, 48)
    assert training_crop(FinetuneConfig(patch=(64, 128, 40)), meta) == (32, 96, 40)
    assert training_crop(FinetuneConfig(patch=None), meta) == (32, 96, 96)
    with pytest.raises(ValueError, match=r"multiple of 8 .*\(32, 96, 96\)"):
        training_crop(FinetuneConfig(patch=(32, 44, 48)), meta)
    with pytest.raises(ValueError, match="three sides"):
        training_crop(FinetuneConfig(patch=(32, 48)), meta)
    with pytest.raises(ValueError, match="at least 16"):
        training_crop(FinetuneConfig(patch=(8, 48, 48)), meta)
    # a fine-tuned model trained on smaller crops still predicts with, and is cut to, its 32 x 96 x 96
    child = {**meta, "training": {**meta["training"], "patch": [32, 48, 48]}}
    assert training_crop(FinetuneConfig(patch=None), child) == (32, 96, 96)
    assert training_crop(FinetuneConfig(patch=(32, 64, 128)), child) == (32, 64, 96)
    # whole-slice (2.5D) models keep their own crop
    flat = {"network": "unet", "training": {"patch": [128, 128]}}
    assert training_crop(FinetuneConfig(), flat) == (128, 128)


def test_a_child_model_is_never_scored_on_what_its_parent_trained_on(phantom):
    image, labels, sp, _ = phantom
    model, meta = tiny3d()
    first = _nerve_slices(labels, 8)
    cfg = FinetuneConfig(epochs=1, min_patches=2, device="cpu")
    d1 = build_finetune_data([("c1", image, labels, _trusted(image.shape[0], first), sp)], meta, cfg)
    r1 = finetune(model, meta, d1, cfg, parent="tiny3d")
    parent_trained = r1.metadata["finetune"]["trained_slices"]["c1"]
    assert len(parent_trained["right"]) == 6 and not r1.metadata["metrics"].get("test_dsc_mean")
    # more slices corrected later; the child's held-out block avoids the parent's training slices
    both = np.flatnonzero((labels == 1).any(axis=(1, 2)) & (labels == 2).any(axis=(1, 2)))
    more = np.union1d(first, both[::3])
    d2 = build_finetune_data([("c1", image, labels, _trusted(image.shape[0], more), sp)], r1.metadata, cfg)
    held_right = set(more.tolist()) - set(d2.trained["c1"]["right"])
    assert held_right and not held_right & set(parent_trained["right"])
    with pytest.raises(ValueError, match="already fine-tuned on case c1"):
        build_finetune_data([("c1", image, labels, _trusted(image.shape[0], more))], r1.metadata,
                            FinetuneConfig(holdout_case="c1"))


def test_cancel_and_no_nerve_leave_the_registry_unchanged(home, phantom):
    image, labels, sp, _ = phantom
    model, meta = tiny3d()
    cfg = FinetuneConfig(epochs=3, min_patches=2, device="cpu")
    data = build_finetune_data([("c1", image, labels, _trusted(image.shape[0], _nerve_slices(labels, 6)), sp)], meta,
                               cfg, base_model=model)
    with pytest.raises(Cancelled):
        finetune(model, meta, data, cfg, parent="tiny3d", cancel=lambda: True)
    assert not user_models_dir().exists() or not list(user_models_dir().glob("*.pt"))
    empty = np.flatnonzero(~(labels > 0).any(axis=(1, 2)))[:6]
    with pytest.raises(ValueError, match="no nerve"):
        build_finetune_data([("c1", image, labels, _trusted(image.shape[0], empty))], meta, cfg)


def test_a_whole_case_can_be_held_out(phantom, phantom_cache, base):
    model, meta = base
    a_img, a_lab, _, _ = phantom
    b_img, b_lab, _, _ = phantom_cache(5001)
    cases = [("a", a_img, a_lab, _trusted(a_img.shape[0], _nerve_slices(a_lab, 6))),
             ("b", b_img, b_lab, _trusted(b_img.shape[0], _nerve_slices(b_lab, 4)))]
    data = build_finetune_data(cases, meta, FinetuneConfig(holdout_case="b"))
    assert (data.n_train, data.n_held_out) == (12, 8)
    # half-slice models keep slice sets, working-grid models one WorkCase per case
    trained = {s.case_id for s in data.train} | {w.case for w in data.work if w.train_native.any()}
    held = {s.case_id for s in data.held_out} | {w.case for w in data.work if w.held_native.any()}
    assert trained == {"a"} and held == {"b"} and set(data.trained) == {"a"}
    with pytest.raises(ValueError, match="not among"):
        build_finetune_data(cases, meta, FinetuneConfig(holdout_case="zz"))


# -- CLI -------------------------------------------------------------------------------------------
def test_cli_finetune_then_predict_with_the_new_model(home, tmp_path, phantom, capsys, monkeypatch):
    """``ian finetune`` then ``ian predict --model NEW``; the fine-tune's before and after are
    predicted as ``ian predict`` predicts with each model (its tiles and backend), so they are what
    the user sees."""
    import napari_ian.trainer.predict as predict_module

    calls, real = [], predict_module.predict_volume

    def spy(*args, tile=None, backend="torch", **kwargs):
        calls.append((tile, backend))
        return real(*args, tile=tile, backend=backend, **kwargs)

    monkeypatch.setattr(predict_module, "predict_volume", spy)
    image, labels, sp, _ = phantom
    g = phantom_geometry(image.shape, sp)
    img_p, lab_p = tmp_path / "img.nii.gz", tmp_path / "lab.nii.gz"
    write_nifti(img_p, image, g, dtype=np.float32)
    write_nifti(lab_p, labels, g)
    # --slices counts along the file's own AP voxel axis (the phantom's NIfTI is stored RAS, so
    # anterior first: its numbers run opposite to the canonical ones; the map is its own inverse)
    vol = read_volume(img_p)
    chosen = _nerve_slices(labels, 6)
    native = sorted(int(i) for i in vol.geometry.canonical_index(0, chosen))  # the map is its own inverse
    spec = ",".join(str(i) for i in native)
    save_tiny3d("tiny3d")        # the command line's path and messages are under test, not what is learnt
    shown = tmp_path / "after.nii.gz"
    assert main(["finetune", "--image", str(img_p), "--labels", str(lab_p), "--slices", spec, "--name", "cli-ft",
                 "--base", "tiny3d", "--epochs", "1", "--quiet", "--device", "cpu", "--out", str(shown)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {shown}: cli-ft's prediction of {img_p}" in out
    finetune_calls, calls[:] = list(calls), []
    m = read_metadata(resolve_model("cli-ft"))
    n_pseudo = m["finetune"]["pseudo_labelled_slices"]
    assert n_pseudo > 0 and m["finetune"]["settings"]["pseudo_labels"]
    assert (f"6 coronal slices -> 8 slice sides trained on (8 with nerve), 4 held out, {n_pseudo} in between "
            "pseudo-labelled") in out and "saved" in out and "ian predict --model cli-ft" in out
    assert m["finetune"]["train_slices"] + m["finetune"]["held_out_slices"] == 12
    # --no-pseudo-labels: the corrected slices only
    assert main(["finetune", "--image", str(img_p), "--labels", str(lab_p), "--slices", spec, "--name", "cli-ft-only",
                 "--base", "tiny3d", "--epochs", "1", "--quiet", "--device", "cpu", "--no-pseudo-labels"]) == 0
    out = capsys.readouterr().out
    assert "4 held out\n" in out and "pseudo-labelled" not in out
    m = read_metadata(resolve_model("cli-ft-only"))
    assert m["finetune"]["pseudo_labelled_slices"] == 0 and not m["finetune"]["settings"]["pseudo_labels"]
    pred_p = tmp_path / "pred.nii.gz"
    calls.clear()
    assert main(["predict", str(img_p), "--out", str(pred_p), "--model", "cli-ft", "--quiet", "--device", "cpu"]) == 0
    assert nib.load(pred_p).shape == nib.load(img_p).shape
    # --out wrote what `ian predict --model NEW` writes, from the fine-tune's own after-prediction
    np.testing.assert_array_equal(np.asarray(nib.load(shown).dataobj), np.asarray(nib.load(pred_p).dataobj))
    np.testing.assert_array_equal(nib.load(shown).affine, nib.load(pred_p).affine)
    # the base model's prediction (pseudo-labels, 'before') and the new model's ('after'), each as
    # ian predict predicts with that model: the base in large tiles, the fine-tuned one in patches
    from napari_ian.trainer.pipeline import FAST_TILE

    assert finetune_calls == [(FAST_TILE, "auto"), (None, "auto")] and calls == finetune_calls[1:]
    calls.clear()
    assert main(["predict", str(img_p), "--out", str(tmp_path / "base.nii.gz"), "--model", "tiny3d", "--quiet",
                 "--device", "cpu"]) == 0
    assert calls == finetune_calls[:1]
    # bad input: one line each, exit 2, registry unchanged
    (user_models_dir() / "broken.pt").write_bytes(b"garbage")
    for argv, words in (
            (["--slices", spec, "--name", "cli-ft"], "exists already"),
            (["--slices", "9999", "--name", "x1"], "outside"),
            (["--slices", spec, "--name", "x2", "--base", "broken"], "not a readable napari-ian model"),
            (["--slices", spec, "--name", "x3", "--base", "nope"], "no such model"),
            (["--slices", spec, "--name", "x4", "--out", str(tmp_path / "a.png")], "must end in .nii"),
            (["--slices", spec, "--name", "x5", "--out", str(shown)], "exists")):
        assert main(["finetune", "--image", str(img_p), "--labels", str(lab_p), "--quiet", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
    assert sorted(p.stem for p in user_models_dir().glob("*.pt")) == ["broken", "cli-ft", "cli-ft-only", "tiny3d"]


def _thin_nerve(radius_mm=0.7, sp=(0.8, 0.5, 0.5), shape=(60, 40, 40), si_stretch=1.0):
    """A thin bright nerve running along AP with a bend in SI, in a noisy volume; its labels and
    the voxels' distance to its centreline (mm; SI distances divided by ``si_stretch``, so a
    stretch of 2 makes its cross-section an ellipse twice as tall as wide)."""
    from scipy.spatial import cKDTree

    ap = np.linspace(2, shape[0] - 3, 200)
    centre = np.stack([ap, 20 + 6 * np.sin(ap / shape[0] * np.pi), np.full_like(ap, 20.0)], 1)
    scale = np.asarray(sp) / [1.0, si_stretch, 1.0]
    grid = np.stack(np.indices(shape), -1).reshape(-1, 3) * scale
    dist = cKDTree(centre * scale).query(grid)[0].reshape(shape)
    image = np.random.default_rng(0).normal(100, 10, shape).astype(np.float32)
    image[dist <= radius_mm] = 400
    return image, (dist <= radius_mm).astype(np.uint8), dist, sp


def _corrected_every_8th(truth):
    n = truth.shape[0]
    train = np.zeros((2, n), bool)
    train[0, np.arange(4, n - 4, 8)] = True
    return train, np.where(train[0][:, None, None], truth, 0).astype(np.uint8)


def test_pseudo_labels_take_the_corrections_width_where_the_model_overdraws_the_nerve():
    """Between corrected slices the pseudo-labels follow the nerve the corrections pin, as wide as
    the corrections draw it: a model that outlines a thin nerve three times too wide is trimmed
    to the corrected width."""
    from napari_ian.trainer.finetune import _fit, pseudo_label
    from napari_ian.trainer.interactive import InteractiveSession

    image, truth, dist, sp = _thin_nerve()
    train, corrected = _corrected_every_8th(truth)
    fat = (dist <= 2.2).astype(np.float32) * 0.9
    pseudo, out = pseudo_label(image, corrected, sp, train, np.zeros_like(train), fat)
    rows = np.flatnonzero(pseudo[0])
    assert len(rows) > 30 and not pseudo[1].any() and not (pseudo[0] & train[0]).any()
    assert _fit(truth == 1, out == 1, rows) > 0.6
    # the overdrawn model's own outline, as the clicks give it, is what the fit replaced
    session = InteractiveSession(image, sp, fat)
    session.set_clicks([(np.array([i, *np.argwhere(truth[i]).mean(axis=0)]), 1) for i in np.flatnonzero(train[0])])
    assert _fit(truth == 1, session.side_mask(1), rows) < 0.45


def test_pseudo_labels_keep_a_model_outline_that_fits_and_none_when_nothing_fits():
    """A model that outlines a nerve of elliptic cross-section exactly keeps its outline (no round
    tube fits it as well); corrections the clicked course cannot reproduce give no pseudo-labels."""
    from napari_ian.trainer.finetune import _fit, fitted_nerve, pseudo_label
    from napari_ian.trainer.interactive import InteractiveSession

    image, truth, dist, sp = _thin_nerve(radius_mm=0.8, si_stretch=2.5)
    train, corrected = _corrected_every_8th(truth)
    pseudo, out = pseudo_label(image, corrected, sp, train, np.zeros_like(train), truth.astype(np.float32))
    rows = np.flatnonzero(pseudo[0])
    assert len(rows) > 30 and _fit(truth == 1, out == 1, rows) > 0.9
    session = InteractiveSession(image, sp, truth.astype(np.float32))
    clicked = np.flatnonzero(train[0])
    session.set_clicks([(np.array([i, *np.argwhere(truth[i]).mean(axis=0)]), 1) for i in clicked])
    assert max(_fit(truth == 1, session.tube(1, r), clicked) for r in (0.5, 0.9, 1.3, 1.8)) < 0.85
    elsewhere = np.roll(truth == 1, 15, axis=2)        # "corrections" 7 mm beside the clicked course
    assert fitted_nerve(session, 1, elsewhere, clicked) is None


def test_rehearsal_renders_the_shipped_training_anatomy_for_models_trained_on_renders():
    from napari_ian.trainer.pipeline import pipeline_for_model
    from napari_ian.trainer.rehearsal import rehearsal_volumes

    meta = read_metadata(resolve_model("ian-default"))
    pipe = pipeline_for_model(meta)
    vols = rehearsal_volumes(pipe, meta, n=2, seed=3)
    assert len(vols) == 2
    for volume, mask in vols:
        assert volume.shape == mask.shape and volume.dtype == np.float32 and np.isfinite(volume).all()
        assert set(np.unique(mask)) == {0, 1}
    assert not np.array_equal(vols[0][0], vols[1][0])          # two different looks
    # a second fine-tune reuses the renders (they cost seconds) and cannot change them for the next
    again = rehearsal_volumes(pipe, meta, n=2, seed=3)
    assert all(a[0] is b[0] and a[1] is b[1] for a, b in zip(again, vols))
    with pytest.raises(ValueError):
        again[0][0][0, 0, 0] = 1.0
    other = rehearsal_volumes(pipe, meta, n=1, seed=4)          # another seed: other looks
    assert len(other) == 1 and not np.array_equal(other[0][0], vols[0][0])
    # a model trained on a labelled dataset, or on another grid, gets none
    assert rehearsal_volumes(pipe, {**meta, "training": {**meta["training"], "data": "dataset"}}) == []
    assert rehearsal_volumes(pipeline_for_model(tiny3d()[1]), {**tiny3d()[1], "training": {"data": "synthetic"}}) == []


def test_fine_tuning_batches_mix_in_rehearsal_crops_at_their_share(phantom):
    from napari_ian.trainer.finetune import _WorkSampler
    from napari_ian.trainer.pipeline import pipeline_for_model

    image, labels, sp, _ = phantom
    model, meta = tiny3d()
    cfg = FinetuneConfig(epochs=1, device="cpu", pseudo_labels=False)
    data = build_finetune_data([("c1", image, labels, _trusted(image.shape[0], _nerve_slices(labels, 8)))], meta, cfg,
                               base_model=model)
    pipe = pipeline_for_model(meta)
    old = np.full((40, 60, 60), 7.0, np.float32)             # a volume no case crop can look like
    old_mask = np.zeros(old.shape, np.uint8)
    old_mask[20, 30, 10:50] = 1
    counts = {}
    for share in (0.0, 0.25):
        sampler = _WorkSampler(data.work, pipe, batch=4, steps=200, patch=(16, 32, 32),
                               rehearsal=[(old, old_mask)], rehearsal_share=share)
        n_old = []
        for x, y in sampler.batches(np.random.default_rng(0)):
            is_old = (x == 7.0).reshape(len(x), -1).all(axis=1)
            assert (~is_old).any()                           # the case's own crops in every batch
            assert set(np.unique(y[is_old])) <= {0, 1}       # rehearsal targets: the whole crop counts
            n_old.append(is_old.sum())
        counts[share] = np.sum(n_old) / (4 * 200)
    assert counts[0.0] == 0
    assert 0.18 < counts[0.25] < 0.3


def test_the_flow_keeps_its_prediction_of_this_case_only_and_never_takes_its_stored_copy_for_another(home, phantom):
    """``finetune_case`` hands back the new model's prediction of this case (made for the
    after-score: what ``ian predict --model NEW`` makes, and nothing of the other cases); with
    ``store=False`` and ``earlier``, this case's copy in the store is not trained on as another case."""
    from napari_ian.trainer.workflows import finetune_case, predict_loaded

    image, labels, sp, _ = phantom
    image, labels = image[40:100], labels[40:100]       # both nerves cross these slices
    save_tiny3d("tiny3d")
    cfg = FinetuneConfig(epochs=1, min_patches=4, device="cpu", rehearsal_share=0.0)
    chosen = _nerve_slices(labels, 8)
    trusted = _trusted(image.shape[0], chosen)
    other_image = image + 1.0                           # this case stored earlier, from other voxels
    store.save_corrections("case-a", other_image, labels, trusted, sp)
    store.save_corrections("case-b", image[::-1].copy(), labels[::-1].copy(), trusted[:, ::-1].copy(), sp)
    out = finetune_case("case-a", image, labels, trusted, sp, base="tiny3d", name="flow-ft", cfg=cfg, earlier=True,
                        store=False)
    assert out.cases == 2                               # this case and case-b, not case-a's stored copy too
    new, meta = load_model(out.path)
    again, _ = predict_loaded(image, sp, new, meta, device="cpu")
    np.testing.assert_array_equal(out.prediction.labels, again.labels)
    assert out.result.after_prediction is out.prediction


def test_cli_finetune_out_of_a_2d_slice_model_predicts_the_case_once_and_writes_what_ian_predict_writes(
        home, tmp_path, phantom, capsys, monkeypatch):
    """A 2.5D model's fine-tune scores slices, not the whole case, so ``--out`` predicts the image
    with the new model itself; the file is the same as ``ian predict --model NEW``'s."""
    image, labels, sp, _ = phantom
    image, labels = image[40:100], labels[40:100]       # both nerves cross these slices
    g = phantom_geometry(image.shape, sp)
    img_p, lab_p, out_p, pred_p = (tmp_path / f"{n}.nii.gz" for n in ("img", "lab", "out", "pred"))
    write_nifti(img_p, image, g, dtype=np.float32)
    write_nifti(lab_p, labels, g)
    save_tiny25d("tiny25d")
    import napari_ian.trainer.predict as predict_module

    made, real = [], predict_module.predict_volume

    def spy(image, model, metadata, *args, **kwargs):
        made.append(metadata.get("parent"))
        return real(image, model, metadata, *args, **kwargs)

    monkeypatch.setattr(predict_module, "predict_volume", spy)
    assert main(["finetune", "--image", str(img_p), "--labels", str(lab_p), "--slices", "10:50", "--name", "t25-ft",
                 "--base", "tiny25d", "--epochs", "1", "--quiet", "--device", "cpu", "--out", str(out_p)]) == 0
    assert f"wrote {out_p}: t25-ft's prediction of {img_p}" in capsys.readouterr().out
    assert made == ["tiny25d"]                          # predicted once, by the new model (its parent: tiny25d)
    assert main(["predict", str(img_p), "--out", str(pred_p), "--model", "t25-ft", "--quiet", "--device", "cpu"]) == 0
    np.testing.assert_array_equal(np.asarray(nib.load(out_p).dataobj), np.asarray(nib.load(pred_p).dataobj))
    assert nib.load(out_p).shape == nib.load(img_p).shape
