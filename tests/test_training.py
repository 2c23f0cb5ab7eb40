"""Training loop, model files and the registry, on tiny inputs (real code, real torch)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_ian.trainer.data import SideSlices, patient_split, side_slices
from napari_ian.trainer.modelfile import ModelFileError, load_model, read_metadata, save_model
from napari_ian.trainer.nets import build_network
from napari_ian.trainer.registry import list_models, resolve_model, user_model_path
from napari_ian.trainer.progress import Cancelled
from napari_ian.trainer.train import TrainConfig, train_model

TINY = dict(network="unet", network_config={"base": 4, "depth": 2}, context=1, size=(16, 24),
            batch_size=4, epochs=2, patience=5, augment=True, device="cpu")


def _blobs(n=12, seed=0):
    """Bright bars on noise: an easy stand-in for nerve slices."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, 16, 24)).astype(np.float16) * 0.3
    y = np.zeros((n, 16, 24), np.uint8)
    for i in range(n):
        if i % 4 == 3:
            continue                      # some slices without nerve
        r, c = rng.integers(3, 12), rng.integers(3, 18)
        y[i, r:r + 2, c:c + 4] = 1
        x[i, 0, r:r + 2, c:c + 4] = 1.0
    return SideSlices("c", "p", 1, x, y, y.any(axis=(1, 2)))


def test_training_runs_drops_short_batches_and_reports(tmp_path):
    events = {"step": [], "epoch": []}
    model, history, best = train_model([_blobs(11)], [_blobs(6, seed=1)], TrainConfig(**TINY),
                                       progress=lambda e: events[e.kind].append(e))
    assert [(e.done, e.total) for e in events["epoch"]] == [(1, 2), (2, 2)]
    assert [e.info["val_dsc"] for e in events["epoch"]] == [h["val_dsc"] for h in history]
    # 11 slices, 2 of them empty -> 9 positives + round(0.25*9)=2 empties = 11 per epoch; batches of 4, last short one dropped
    assert [(e.info["epoch"], e.done, e.total) for e in events["step"]] == [(1, 1, 2), (1, 2, 2), (2, 1, 2), (2, 2, 2)]
    assert {"loss", "val_dsc", "eta_s", "elapsed_s"} <= set(history[0])
    assert best["world_size"] == 1


def test_a_narrow_context_model_starts_a_wider_one_that_computes_the_same():
    from napari_ian.trainer.train import build_model

    narrow = build_model(TrainConfig(network="unet", network_config={"base": 4, "depth": 2}, context=3)).eval()
    wide = build_model(TrainConfig(network="unet", network_config={"base": 4, "depth": 2}, context=7),
                       init_state=narrow.state_dict()).eval()
    x = torch.randn(2, 7, 32, 32)
    with torch.no_grad():
        assert torch.allclose(wide(x), narrow(x[:, 2:5]), atol=1e-5)
    # the outer slices reach the output once their weights move off zero
    first = next(k for k, v in wide.state_dict().items() if v.ndim == 4 and v.shape[1] == 7)
    assert wide.state_dict()[first][:, [0, 1, 5, 6]].abs().max() == 0
    with pytest.raises(ValueError, match="do not fit this network"):
        build_model(TrainConfig(network="unet", network_config={"base": 8, "depth": 2}, context=7),
                    init_state=narrow.state_dict())


def test_cancel_stops_without_a_result():
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 1

    with pytest.raises(Cancelled):
        train_model([_blobs()], [_blobs(seed=1)], TrainConfig(**TINY), cancel=cancel)


def test_model_file_round_trip_and_refusals(tmp_path):
    net = build_network("unet", in_channels=1, base=4, depth=2)
    meta = {"network": "unet", "network_config": {"base": 4, "depth": 2, "in_channels": 1},
            "preprocessing": {"size": [16, 24], "context": 1}, "trained_on": "test"}
    p = save_model(tmp_path / "m.pt", net, meta)
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask      # not mkstemp's private 0600
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]   # no temp file left
    model, m2 = load_model(p)
    assert m2["labels"] == {"0": "background", "1": "right IAN", "2": "left IAN"}
    x = torch.randn(1, 1, 16, 24)
    torch.testing.assert_close(model(x), net.eval()(x))
    # a file whose weights belong to another architecture
    other = dict(meta, network_config={"base": 8, "depth": 2, "in_channels": 1})
    torch.save({"format": "napari-ian-model", "version": 1, "metadata": json.dumps(other),
                "state_dict": net.state_dict()}, tmp_path / "wrong.pt")
    with pytest.raises(ModelFileError, match="do not match"):
        load_model(tmp_path / "wrong.pt")
    # corrupt bytes, and a pickle that would run code: both refused, nothing executed
    (tmp_path / "corrupt.pt").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a readable"):
        load_model(tmp_path / "corrupt.pt")
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"format": "napari-ian-model", "evil": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ModelFileError):
        read_metadata(tmp_path / "evil.pt")
    assert not marker.exists()


def test_registry_lists_bundled_and_user_models(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    net = build_network("unet", in_channels=1, base=4, depth=2)
    meta = {"network": "unet", "network_config": {"base": 4, "depth": 2, "in_channels": 1},
            "preprocessing": {"size": [16, 24], "context": 1}}
    path = user_model_path("mine")
    save_model(path, net, meta)
    names = {(e.name, e.source) for e in list_models()}
    assert ("mine", "user") in names and ("ian-default", "bundled") in names
    assert resolve_model("mine") == path
    with pytest.raises(ValueError, match="bundled"):
        user_model_path("ian-default")
    with pytest.raises(ModelFileError, match="no such model"):
        resolve_model("nope")


def test_patient_split_is_by_patient_and_refuses_tiny_sets():
    ids = [f"p{i // 2}" for i in range(20)]       # two cases per patient
    tr, va, te = patient_split(ids, seed=3)
    assert not (set(tr) & set(va) or set(tr) & set(te) or set(va) & set(te))
    assert len(tr) + len(va) + len(te) == 10
    with pytest.raises(ValueError, match="at least 3"):
        patient_split(["a", "a", "b"])


def test_side_slices_mirror_the_left_nerve(phantom):
    image, labels, spacing, info = phantom
    sides = side_slices(image, labels, (64, 160), 3)
    assert [s.side for s in sides] == [1, 2]
    for s in sides:
        assert s.x.shape[1:] == (3, 64, 160) and s.positive.sum() > 20
        # lateral-first in both halves: the nerve sits in the left half of the network input
        cols = np.argwhere(s.y > 0)[:, 2]
        assert np.median(cols) < 80
    # side 1's mask is label 1 (the patient's right = low axis-2 columns), side 2's is label 2
    mid = __import__("napari_ian.trainer.preprocess", fromlist=["x"]).find_midline(image)
    assert sides[0].positive.sum() == (labels[:, :, :mid] == 1).any(axis=(1, 2)).sum()
    assert sides[1].positive.sum() == (labels[:, :, mid:] == 2).any(axis=(1, 2)).sum()


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    """The same training code under torchrun --nproc_per_node 2 (DDP over gloo)."""
    script = tmp_path / "ddp_train.py"
    script.write_text(
        "import os, json, numpy as np, torch\n"
        "from napari_ian.trainer.train import TrainConfig, train_model\n"
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_training import _blobs, TINY\n"
        "model, hist, best = train_model([_blobs(24)], [_blobs(8, seed=1)], TrainConfig(**TINY))\n"
        "w = sum(float(p.sum()) for p in model.parameters())\n"
        "open(os.environ['OUT'] + f\"/rank{os.environ['RANK']}.json\", 'w').write(json.dumps("
        "{'w': w, 'world': best['world_size'], 'epochs': len(hist), 'batches': hist[0]['batches']}))\n")
    env = dict(os.environ, OUT=str(tmp_path), OMP_NUM_THREADS="1")
    torchrun = Path(sys.executable).with_name("torchrun")
    r = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29517", str(script)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert all(x["world"] == 2 and x["epochs"] == 2 for x in res)
    assert res[0]["w"] == pytest.approx(res[1]["w"], rel=1e-6)      # DDP keeps the replicas identical
    # each process takes half of the epoch: 22 sampled slices, batches of 4, 2 per process (5 alone)
    assert res[0]["batches"] == res[1]["batches"] == 2


def test_empty_labels_and_mismatched_label_geometry_are_refused(tmp_path, phantom):
    from napari_ian.sample_data.dataset import phantom_geometry
    from napari_ian.trainer.data import Case, load_case
    from napari_ian.trainer.errors import VolumeReadError
    from napari_ian.trainer.io_nifti import write_nifti

    empty = _blobs()
    empty.y[:] = 0
    empty.positive[:] = False
    with pytest.raises(ValueError, match="no nerve label"):
        train_model([empty], [_blobs(seed=1)], TrainConfig(**TINY))
    image, labels, spacing, _ = phantom
    g = phantom_geometry(image.shape, spacing)
    write_nifti(tmp_path / "img.nii.gz", image, g, dtype=np.float32)
    shifted = phantom_geometry(image.shape, (spacing[0], spacing[1], spacing[2] * 2))
    write_nifti(tmp_path / "lab.nii.gz", labels, shifted)
    with pytest.raises(VolumeReadError, match="geometry"):
        load_case(Case("c", "p", tmp_path / "img.nii.gz", tmp_path / "lab.nii.gz"))


@pytest.mark.parametrize("network,config", [("iannet", {"stem": 8}), ("iannet", {"stem": 8, "split_attention": True}),
                                            ("deeplabv3plus", {"base": 8, "aspp": 16}),
                                            ("unet", {"base": 4, "depth": 2})])
def test_every_network_trains_with_bf16_autocast(network, config):
    cfg = TrainConfig(**{**TINY, "network": network, "network_config": config, "bf16": True, "epochs": 1})
    model, history, best = train_model([_blobs(12)], [_blobs(6, seed=1)], cfg)
    assert best["bf16"] is True and np.isfinite(history[0]["loss"])
    assert type(model).__name__.lower().startswith(network[:4])


@pytest.mark.parametrize("loss", ["focal_tversky", "dice", "bce"])
def test_each_loss_trains_through_the_config(loss):
    model, history, _ = train_model([_blobs()], [_blobs(seed=1)], TrainConfig(**{**TINY, "loss": loss, "epochs": 1}))
    assert np.isfinite(history[0]["loss"])


def test_validation_without_nerve_keeps_the_trained_weights():
    empty_val = _blobs(seed=1)
    empty_val.y[:] = 0
    empty_val.positive[:] = False
    torch.manual_seed(0)
    start = build_network("unet", in_channels=1, base=4, depth=2).state_dict()
    model, history, best = train_model([_blobs()], [empty_val], TrainConfig(**TINY))
    assert np.isnan(history[-1]["val_dsc"]) and best["epoch"] == -1
    changed = any(not torch.equal(start[k], v) for k, v in model.state_dict().items() if v.dtype.is_floating_point)
    assert changed      # not the untrained start


def test_synthetic_training_makes_a_3d_model_from_randomised_renders(tmp_path, phantom):
    """The path that made the bundled model (``ian train --synthetic``), on a coarse grid: anatomies
    rasterised and cached, a rendered pool, validation on anatomies never trained on, a model file
    that says what it was trained on and predicts, and no checkpoint left behind."""
    from napari_ian.sample_data.synth import SEED_BASE
    from napari_ian.trainer.experiment import run_synthetic_training
    from napari_ian.trainer.pipeline import Patches3D
    from napari_ian.trainer.predict import predict_volume

    pipe = Patches3D(patch=(16, 32, 32), spacing_mm=(1.6, 1.0, 1.0))
    cfg = TrainConfig(network="unet3d", network_config={"base": 4, "depth": 2}, loss="dice_ce", epochs=2,
                      batch_size=2, steps_per_epoch=2, patch=(16, 32, 32), pipeline=pipe.to_dict(), device="cpu",
                      patience=5)
    out = tmp_path / "synthetic.pt"
    events = []
    meta = run_synthetic_training(cfg, out, n_anatomies=1, cache_dir=tmp_path / "anatomy", pool_size=2,
                                  refresh_every=1, validation_anatomies=1, trained_on="a test", progress=events.append,
                                  family="random")
    assert out.exists() and not list(tmp_path.glob("*.checkpoint.pt"))
    # --style-family random: every training volume drawn from that look, and the model file says so
    assert meta["training"]["style_family"] == "random"
    assert meta["training"]["families_rendered"] == {"random": meta["training"]["volumes_rendered"]}
    assert len(list((tmp_path / "anatomy").iterdir())) >= 2          # one training and one validation anatomy, cached
    t = meta["training"]
    assert t["epochs_run"] == 2 and t["volumes_rendered"] >= 2 and t["render_failures"] == 0
    assert t["anatomy_seeds"] == [SEED_BASE["train"]] * 2 and t["validation_seeds"] == [SEED_BASE["validation"]]
    assert not set(t["validation_seeds"]) & set(range(t["anatomy_seeds"][0], t["anatomy_seeds"][1] + 1))
    assert [e.kind for e in events].count("epoch") == 2
    model, m = load_model(out)
    assert m["trained_on"] == "a test" and m["preprocessing"]["pipeline"] == "patch3d"
    image, _, sp, _ = phantom
    assert predict_volume(image, model, m, sp, device="cpu").probability.shape == image.shape


@pytest.mark.parametrize("keep, kept_epoch", [("best", 1), ("last", 2)])
def test_keep_chooses_the_best_or_the_last_epochs_weights(keep, kept_epoch):
    """``--keep best`` returns the weights of the epoch validation scored highest (here the first),
    ``--keep last`` those of the last epoch, even though validation scored it lower."""
    import copy

    from napari_ian.trainer.train import fit

    b = _blobs(4)

    class OneBatch:
        def batches(self, rng, rank, world):
            return [(b.x.astype(np.float32), b.y)]

    seen, scores = [], iter([0.9, 0.1])

    def validate(model, device, bf16, channels_last):
        seen.append(copy.deepcopy(model.state_dict()))
        return next(scores)

    model = build_network("unet", in_channels=1, base=4, depth=2)
    cfg = TrainConfig(**{**TINY, "augment": False, "select": keep})
    out, history, best = fit(model, OneBatch(), validate, cfg)
    assert len(seen) == 2 and best["epoch"] == kept_epoch            # the reported epoch is the kept one
    assert best["val_dsc"] == [0.9, 0.1][kept_epoch - 1]
    assert any(not torch.equal(seen[0][k], seen[1][k]) for k in seen[0])   # the epochs differ
    kept = out.state_dict()
    assert all(torch.equal(kept[k].cpu().contiguous(), seen[kept_epoch - 1][k].cpu().contiguous()) for k in kept)


def test_ian_train_keep_and_validation_flags_reach_the_training_run(monkeypatch, tmp_path, capsys):
    """``ian train --keep last`` trains with ``select="last"`` (default ``best``);
    ``--validation-anatomies N`` validates on N held-out anatomies (default 2); 0 is one clear line;
    ``--style-family random`` renders that look only (default both); ``--skeleton-weight W`` weighs
    the skeleton recall term of ``--loss dice_ce_skeleton`` (the model file keeps it) and is one
    clear line with any other loss."""
    import napari_ian.trainer.experiment as experiment
    from napari_ian.trainer.cli import main

    got = []

    def fake_run(cfg, out, **kw):
        got.append((cfg.select, kw["validation_anatomies"], kw["family"], cfg.loss, cfg.to_dict()["loss_params"]))
        raise SystemExit(0)

    monkeypatch.setattr(experiment, "run_synthetic_training", fake_run)
    out = str(tmp_path / "m.pt")
    for extra, want in (([], ("best", 2, None, "dice_ce", None)),
                        (["--keep", "last", "--validation-anatomies", "8", "--style-family", "random"],
                         ("last", 8, "random", "dice_ce", None)),
                        (["--loss", "dice_ce_skeleton", "--skeleton-weight", "0.3"],
                         ("best", 2, None, "dice_ce_skeleton", {"skeleton_weight": 0.3}))):
        with pytest.raises(SystemExit):
            main(["train", "--synthetic", "1", "--out", out, *extra])
        assert got[-1] == want
    capsys.readouterr()
    assert main(["train", "--synthetic", "1", "--out", out, "--validation-anatomies", "0"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(got) == 3 and len(err) == 1 and "--validation-anatomies must be at least 1" in err[0]
    assert main(["train", "--synthetic", "1", "--out", out, "--skeleton-weight", "0.3"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(got) == 3 and len(err) == 1 and "--skeleton-weight goes with --loss dice_ce_skeleton" in err[0]
