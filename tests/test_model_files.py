"""Model files: damage is found (checksum, NaN weights, malformed metadata), names never collide.

Real model files written with ``save_model``, damaged byte-wise or rewritten with ``torch.save``;
concurrency with real processes (two savers, a saver killed with SIGKILL mid-write).
"""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_ian.trainer.cli import main
from napari_ian.trainer.modelfile import (FORMAT, ModelExistsError, ModelFileError, load_model, read_metadata,
                                          save_model, weights_checksum)
from napari_ian.trainer.nets import build_network
from napari_ian.trainer.registry import list_models, resolve_model, user_model_path, user_models_dir

META = {"network": "unet", "network_config": {"base": 4, "depth": 2, "in_channels": 1},
        "preprocessing": {"size": [16, 24], "context": 1}, "trained_on": "test"}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _net():
    torch.manual_seed(0)
    return build_network("unet", in_channels=1, base=4, depth=2)


def _largest_tensor_offset(path) -> int:
    """Byte offset of the middle of the largest tensor's data inside a torch zip file."""
    raw = Path(path).read_bytes()
    info = max(zipfile.ZipFile(path).infolist(), key=lambda i: i.file_size)
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len + info.file_size // 2


def _rewrite(path, meta=None, state=None, **payload):
    """A model file with the given metadata/weights and a checksum that matches them."""
    text = json.dumps(meta) if not isinstance(meta, str) else meta
    state = _net().state_dict() if state is None else state
    body = {"format": FORMAT, "version": 1, "metadata": text, "state_dict": state}
    if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
        body["sha256"] = weights_checksum(text, state)
    body.update(payload)
    torch.save(body, path)
    return path


def test_one_flipped_byte_in_the_weights_is_found(tmp_path):
    path = save_model(tmp_path / "m.pt", _net(), META)
    load_model(path)
    raw = bytearray(path.read_bytes())
    raw[_largest_tensor_offset(path)] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="checksum does not match") as ei:
        load_model(path)
    assert str(path) in str(ei.value) and "\n" not in str(ei.value)


def test_a_file_without_a_checksum_is_still_read(tmp_path):
    # files written before checksums existed are accepted as they are
    path = _rewrite(tmp_path / "old.pt", META)
    body = torch.load(path, weights_only=True)
    del body["sha256"]
    torch.save(body, path)
    model, meta = load_model(path)
    assert meta["network"] == "unet"
    assert "sha256" in torch.load(resolve_model("ian-default"), weights_only=True)   # the bundled one has one
    load_model(resolve_model("ian-default"))


def test_non_finite_weights_are_refused_on_load_and_on_save(tmp_path):
    state = _net().state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[name][0] = float("nan")
    path = _rewrite(tmp_path / "nan.pt", META, state)
    with pytest.raises(ModelFileError, match=f"weights '{name}' hold NaN"):
        load_model(path)
    net = _net()
    with torch.no_grad():
        next(iter(net.parameters()))[0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        save_model(tmp_path / "inf.pt", net, META)
    assert not (tmp_path / "inf.pt").exists()


BAD_METADATA = {
    "network is a number": (dict(META, network=123), "network must be one of"),
    "unknown network": (dict(META, network="resnet9000"), "network must be one of"),
    "no preprocessing": ({k: v for k, v in META.items() if k != "preprocessing"}, "lacks 'preprocessing'"),
    "size 0 x 0": (dict(META, preprocessing={"size": [0, 0], "context": 1}), "preprocessing.size"),
    "size 1e5": (dict(META, preprocessing={"size": [100000, 100000], "context": 1}), "preprocessing.size"),
    "context even": (dict(META, preprocessing={"size": [16, 24], "context": 2}), "odd"),
    "context vs network": (dict(META, preprocessing={"size": [16, 24], "context": 3}), "does not match"),
    "huge network": (dict(META, network_config={"base": 100000, "depth": 2, "in_channels": 1}),
                     "network_config.base"),
    "metadata is a list": ([1, 2, 3], "must be a JSON object"),
    "metrics not numbers": (dict(META, metrics={"test_dsc_mean": "high"}), "test_dsc_mean"),
    "labels swapped": (dict(META, labels={"0": "background", "1": "left IAN", "2": "right IAN"}), "labels must say"),
}


@pytest.mark.parametrize("case", sorted(BAD_METADATA))
def test_malformed_metadata_is_one_line_not_a_traceback(tmp_path, case):
    meta, words = BAD_METADATA[case]
    path = _rewrite(tmp_path / "bad.pt", meta)
    with pytest.raises(ModelFileError) as ei:
        load_model(path)
    msg = str(ei.value)
    assert words in msg and str(path) in msg and "\n" not in msg


def test_malformed_payloads_are_refused(tmp_path):
    for meta, payload, words in ((META, {"state_dict": "x"}, "not a set of named tensors"),
                                 (META, {"version": "abc"}, "version 'abc' is not a number"),
                                 ("{not json", {}, "metadata is not valid")):
        path = _rewrite(tmp_path / "bad.pt", meta, **payload)
        with pytest.raises(ModelFileError, match=words):
            read_metadata(path)


def test_unknown_metadata_keys_pass_through(tmp_path):
    meta = dict(META, pipeline={"steps": ["n4", "crop"]}, spacing_mm=[0.4, 0.4, 0.8])
    path = save_model(tmp_path / "m.pt", _net(), meta)
    back = read_metadata(path)
    assert back["pipeline"] == {"steps": ["n4", "crop"]} and back["spacing_mm"] == [0.4, 0.4, 0.8]


def test_ian_models_lists_a_broken_model_as_broken(home, capsys):
    save_model(user_model_path("good"), _net(), META)
    _rewrite(user_model_path("bad"), dict(META, network=123))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith("user models")}
    assert set(lines) == {"ian-default", "good", "bad"}
    assert "BROKEN" in lines["bad"] and "network must be one of" in lines["bad"]
    assert "BROKEN" not in lines["good"]
    assert [e.name for e in list_models()] == ["ian-default", "good"]        # choosers skip it


def test_a_model_name_can_hold_no_newline(home, capsys):
    for bad in ("a\nb", "../x", ".hidden", "a/b", ""):
        with pytest.raises(ValueError, match="model name"):
            user_model_path(bad)
    assert main(["finetune", "--image", "x.nii.gz", "--labels", "y.nii.gz", "--slices", "1", "--name",
                 "fake\nian-default  bundled"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model name" in err
    # a file named with a newline (made by hand) adds no line to the listing
    user_models_dir().mkdir(parents=True)
    save_model(user_models_dir() / "x\nfake-line.pt", _net(), META)
    assert main(["models"]) == 0
    assert "fake-line" not in capsys.readouterr().out


SAVER = """
import sys, time
from pathlib import Path
import torch
from napari_ian.trainer.modelfile import save_model_unique
from napari_ian.trainer.nets import build_network
torch.manual_seed(int(sys.argv[2]))
net = build_network("unet", in_channels=1, base=4, depth=2)
meta = {"network": "unet", "network_config": {"base": 4, "depth": 2, "in_channels": 1},
        "preprocessing": {"size": [16, 24], "context": 1}, "name": "same", "trained_on": sys.argv[2]}
go = Path(sys.argv[1]) / "go"
while len(sys.argv) < 4 and not go.exists():    # a third argument: save at once
    time.sleep(0.001)
print(save_model_unique(Path(sys.argv[1]) / "same.pt", net, meta).name)
"""


@pytest.mark.slow
def test_two_processes_saving_one_name_never_replace_each_other(tmp_path):
    for trial in range(3):
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        procs = [subprocess.Popen([sys.executable, "-c", SAVER, str(folder), str(who)], stdout=subprocess.PIPE,
                                  text=True) for who in (1, 2)]
        time.sleep(3.0)                            # both imported torch and wait at the start line
        (folder / "go").touch()
        names = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
        assert names == ["same-2.pt", "same.pt"], names
        writers = sorted(read_metadata(folder / n)["trained_on"] for n in names)
        assert writers == ["1", "2"]                # each model kept, under its own name
        assert read_metadata(folder / "same-2.pt")["name"] == "same-2"


KILLED = """
import os, signal, sys
import torch
from napari_ian.trainer import modelfile
from napari_ian.trainer.nets import build_network

real = torch.save

def save_then_die(obj, f):
    real(obj, f)
    os.kill(os.getpid(), signal.SIGKILL)      # kill -9 after the data, before the rename

torch.save = save_then_die
meta = {"network": "unet", "network_config": {"base": 4, "depth": 2, "in_channels": 1},
        "preprocessing": {"size": [16, 24], "context": 1}}
modelfile.save_model(sys.argv[1], build_network("unet", in_channels=1, base=4, depth=2), meta)
"""


def test_a_save_killed_midway_leaves_nothing_that_looks_like_a_model(home, capsys):
    target = user_model_path("victim")
    target.parent.mkdir(parents=True)
    res = subprocess.run([sys.executable, "-c", KILLED, str(target)], timeout=120)
    assert res.returncode == -signal.SIGKILL
    temps = [p for p in target.parent.iterdir() if p.name.startswith(".")]
    assert len(temps) == 1 and temps[0].stat().st_size > 10_000        # the full-size temporary file
    assert not list(target.parent.glob("*.pt")) and not target.exists()
    assert main(["models"]) == 0 and "victim" not in capsys.readouterr().out
    for name in (temps[0].name, temps[0].name.removesuffix(".pt")):
        with pytest.raises(ModelFileError, match="no such model"):
            resolve_model(name)
    list_models()
    assert temps[0].exists()                       # young: it may be another process's save in progress
    old = time.time() - 2 * 3600
    os.utime(temps[0], (old, old))
    list_models()
    assert not temps[0].exists()                   # stale: cleaned up


def test_save_model_is_exclusive_unless_asked_to_replace(tmp_path):
    path = save_model(tmp_path / "m.pt", _net(), META)
    first = path.read_bytes()
    with pytest.raises(ModelExistsError):
        save_model(path, _net(), dict(META, trained_on="other"))
    assert path.read_bytes() == first and [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    save_model(path, _net(), dict(META, trained_on="other"), overwrite=True)
    assert read_metadata(path)["trained_on"] == "other"


def _then_another_run_saves(work, name):
    """``work``, after which another process (the other run, finishing first) saves a model ``name``."""
    def wrapped(*a, **k):
        result = work(*a, **k)
        subprocess.run([sys.executable, "-c", SAVER, str(user_models_dir()), "7", "now"], check=True, timeout=120,
                       capture_output=True)
        os.replace(user_models_dir() / "same.pt", user_model_path(name))
        return result

    return wrapped


@pytest.mark.slow
def test_cli_finetune_whose_name_is_taken_meanwhile_saves_under_a_free_name(home, tmp_path, phantom, capsys,
                                                                           monkeypatch):
    """``ian finetune --name X`` while another run saves X: both models kept, the loser told where."""
    from napari_ian.sample_data.dataset import phantom_geometry
    from napari_ian.trainer import finetune as ft_mod
    from napari_ian.trainer.io import read_volume
    from napari_ian.trainer.io_nifti import write_nifti
    from tiny_models import save_tiny3d

    image, labels, sp, _ = phantom
    g = phantom_geometry(image.shape, sp)
    img_p, lab_p = tmp_path / "img.nii.gz", tmp_path / "lab.nii.gz"
    write_nifti(img_p, image, g, dtype=np.float32)
    write_nifti(lab_p, labels, g)
    nerve = np.flatnonzero((labels == 1).any(axis=(1, 2)) & (labels == 2).any(axis=(1, 2)))
    chosen = nerve[np.linspace(0, len(nerve) - 1, 6).astype(int)]
    native = sorted(int(i) for i in read_volume(img_p).geometry.canonical_index(0, chosen))
    save_tiny3d("tiny3d")                      # what is saved where is under test, not what it learnt
    monkeypatch.setattr(ft_mod, "finetune", _then_another_run_saves(ft_mod.finetune, "site"))
    rc = main(["finetune", "--image", str(img_p), "--labels", str(lab_p), "--slices", ",".join(map(str, native)),
               "--name", "site", "--base", "tiny3d", "--epochs", "1", "--quiet", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "another run saved a model called 'site' meanwhile; this one is saved as 'site-2'" in err
    assert "ian predict --model site-2" in out
    assert read_metadata(user_model_path("site"))["trained_on"] == "7"          # the other run's, untouched
    assert "fine-tuned" in read_metadata(user_model_path("site-2"))["trained_on"]



@pytest.mark.slow
def test_cli_train_whose_name_is_taken_during_training_keeps_both(home, tiny_dataset, capsys, monkeypatch):
    """``ian train --name X`` while ``ian finetune --name X`` finishes: both models kept, no silent replace."""
    from napari_ian.trainer import train as train_module

    monkeypatch.setattr(train_module, "train_model", _then_another_run_saves(train_module.train_model, "tiny"))
    rc = main(["train", "--data", str(tiny_dataset), "--name", "tiny", "--epochs", "1", "--batch-size", "8",
               "--size", "32x80", "--network-config", '{"base": 4, "depth": 2}', "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "another run saved a model under this name during training; this one is saved as tiny-2" in out
    assert f"saved {user_model_path('tiny-2')}" in out
    assert read_metadata(user_model_path("tiny"))["trained_on"] == "7"                 # the other run's
    assert read_metadata(user_model_path("tiny-2"))["preprocessing"]["size"] == [32, 80]


def test_averaged_weights_are_the_mean_and_other_networks_are_refused(tmp_path):
    """bench/average_models.py's function: the mean of each weight, the files it came from named
    in the metadata, and a one-line refusal for a network of another shape or grid."""
    import torch

    from napari_ian.trainer.modelfile import load_model, save_model
    from napari_ian.trainer.soup import average_models
    from tiny_models import tiny3d

    model, meta = tiny3d()
    a = save_model(tmp_path / "a.pt", model, meta)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    b = save_model(tmp_path / "b.pt", model, meta)
    mean, mean_meta = average_models([a, b])
    sa, sb = load_model(a)[0].state_dict(), load_model(b)[0].state_dict()
    for key, value in mean.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, (sa[key] + sb[key]) / 2)
    assert [f["file"] for f in mean_meta["training"]["weights_averaged_from"]] == ["a.pt", "b.pt"]
    assert mean_meta["parent"] == "a"
    save_model(tmp_path / "mean.pt", mean, mean_meta)          # a valid model file again
    body = torch.load(b, weights_only=True)                    # a file saved before checksums existed
    del body["sha256"]
    torch.save(body, tmp_path / "old.pt")
    _, old_meta = average_models([a, tmp_path / "old.pt"])
    assert [f["sha256"] is None for f in old_meta["training"]["weights_averaged_from"]] == [False, True]
    other = dict(meta, preprocessing={**meta["preprocessing"], "spacing_mm": [1.0, 1.0, 1.0]})
    c = save_model(tmp_path / "c.pt", model, other)
    with pytest.raises(ValueError, match=r"c\.pt: its preprocessing differs"):
        average_models([a, c])
    with pytest.raises(ValueError, match="at least two"):
        average_models([a])
