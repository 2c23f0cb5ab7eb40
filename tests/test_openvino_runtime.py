"""The 3D network through OpenVINO: same outputs as PyTorch, cached conversion, no telemetry, and
``--backend`` in ``ian predict`` and the Python API."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_ian.sample_data.dataset import phantom_geometry
from napari_ian.trainer import openvino_runtime as ovr
from napari_ian.trainer.cli import main
from napari_ian.trainer.device import cpu_bf16_supported
from napari_ian.trainer.io import read_volume
from napari_ian.trainer.io_nifti import write_nifti
from napari_ian.trainer.modelfile import load_model
from napari_ian.trainer.pipeline import FAST_TILE
from napari_ian.trainer.predict import predict_volume
from napari_ian.trainer.registry import resolve_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_models import tiny3d  # noqa: E402


@pytest.fixture(scope="module")
def bundled():
    return load_model(resolve_model("ian-default"))


@pytest.fixture(scope="module")
def nerve_middle(phantom):
    """The test phantom's middle 60 coronal slices, which both nerves cross: the backends'
    agreement needs no whole case, and this predicts about three times faster."""
    image, labels, spacing, info = phantom
    assert labels[40:100].any(axis=(1, 2)).all()
    return image[40:100], labels[40:100], spacing, info


@pytest.fixture(scope="module")
def bundled_predictions(bundled, nerve_middle):
    """The bundled model's prediction of the middle of the test phantom by each backend, in
    ``--fast`` tiles."""
    image, _, spacing, _ = nerve_middle
    model, meta = bundled
    return {b: predict_volume(image, model, meta, spacing, device="cpu", backend=b, tile=FAST_TILE)
            for b in ("torch", "openvino", "openvino-int8")}


def _dsc(a, b):
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def test_the_compiled_network_computes_what_pytorch_computes(bundled):
    model, _ = bundled
    net = ovr.compile_for_cpu(model)
    torch.manual_seed(0)
    # a batch of two training-size patches, and one tile of another size than the trace's
    for shape in ((2, 1, 32, 96, 96), (1, 1, 40, 64, 120)):
        x = torch.randn(shape)
        with torch.no_grad():
            ref = model(x)
        got = net(x)
        assert got.shape == ref.shape and got.dtype == torch.float32
        assert float((got - ref).abs().max()) < 1e-2, shape
        assert float((torch.sigmoid(got) - torch.sigmoid(ref)).abs().max()) < 2e-3, shape
    assert net.config == model.config          # callers still read the network's depth


def test_a_network_converts_once_and_then_loads_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(ovr, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(ovr, "_COMPILED", {})
    model, _ = tiny3d()
    x = torch.randn(1, 1, 16, 32, 32)
    events = []
    first = ovr.compile_for_cpu(model, example_shape=(1, 1, 16, 32, 32), progress=events.append)(x)
    assert [(e.kind, e.message) for e in events] == [("stage", ovr.CONVERTING)]    # said before the wait
    key = ovr.network_key(model)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{key}.bin", f"{key}.xml"]
    events.clear()
    ovr.compile_for_cpu(model, example_shape=(1, 1, 16, 32, 32), progress=events.append)
    assert events == []                          # compiled in this process already: nothing to say

    def no_conversion(*a, **k):
        raise AssertionError("converted again")

    monkeypatch.setattr(ovr, "_convert", no_conversion)
    ovr._COMPILED.clear()                       # a new process: only the disk cache is left
    again = ovr.compile_for_cpu(model, example_shape=(1, 1, 16, 32, 32), progress=events.append)(x)
    assert torch.equal(first, again) and events == []

    # a damaged entry is converted again and replaced, not trusted
    monkeypatch.undo()
    monkeypatch.setattr(ovr, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(ovr, "_COMPILED", {})
    (tmp_path / f"{key}.xml").write_text("<net")
    repaired = ovr.compile_for_cpu(model, example_shape=(1, 1, 16, 32, 32))(x)
    assert torch.allclose(first, repaired, atol=1e-5)
    assert (tmp_path / f"{key}.xml").stat().st_size > 1000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temporary left behind


def test_other_weights_get_their_own_cache_entry():
    model, _ = tiny3d()
    key = ovr.network_key(model)
    with torch.no_grad():
        model.head.bias.add_(0.5)                  # a fine-tuned model: same network, new weights
    assert ovr.network_key(model) != key
    net = ovr.compile_for_cpu(model, example_shape=(1, 1, 16, 32, 32))
    x = torch.randn(1, 1, 16, 32, 32)
    with torch.no_grad():
        assert float((net(x) - model(x)).abs().max()) < 1e-4


def test_openvino_leaves_no_telemetry_client_in_the_home_folder(tmp_path):
    """OpenVINO's package records a client id under ~/intel and sends usage events on import and
    conversion unless declined; napari-ian declines for it and leaves the environment as it was."""
    home = tmp_path / "home"
    home.mkdir()
    code = (
        "import os, sys, torch\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "from tiny_models import tiny3d\n"
        "from napari_ian.trainer.openvino_runtime import compile_for_cpu\n"
        "m, _ = tiny3d()\n"
        "net = compile_for_cpu(m, example_shape=(1, 1, 16, 32, 32))\n"
        "net(torch.zeros(1, 1, 16, 32, 32))\n"
        "print('CI' in os.environ)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    env.update(HOME=str(home), NAPARI_IAN_HOME=str(tmp_path / "nih"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "False"        # CI restored (unset) afterwards
    assert list(home.iterdir()) == []                          # no ~/intel/openvino_ga_cid, no stats
    assert list((tmp_path / "nih" / "cache" / "openvino").glob("*.xml"))


def test_predict_volume_runs_the_network_where_asked_and_agrees_with_pytorch(bundled_predictions, nerve_middle):
    image, labels, spacing, _ = nerve_middle
    torch_pred, ov_pred = bundled_predictions["torch"], bundled_predictions["openvino"]
    assert torch_pred.backend == "torch" and "OpenVINO" not in torch_pred.ran_on
    assert ov_pred.backend == "openvino" and ov_pred.ran_on.startswith("cpu, OpenVINO") and not ov_pred.bf16
    assert np.abs(ov_pred.probability - torch_pred.probability).max() < 0.02
    for side in (1, 2):
        assert _dsc(ov_pred.labels == side, torch_pred.labels == side) > 0.98, side
    # auto: OpenVINO on a CPU without native bf16, PyTorch's bf16 where the CPU has it (any 3D patch model)
    auto = predict_volume(image, *tiny3d(), spacing, device="cpu", backend="auto")
    assert auto.backend == ("torch" if cpu_bf16_supported() else "openvino")


def test_backend_choices_that_cannot_work_say_so(bundled, phantom, monkeypatch):
    from napari_ian.trainer.pipeline import pipeline_from_dict

    image, _, spacing, _ = phantom
    model, meta = bundled
    with pytest.raises(ValueError, match="backend must be one of"):
        predict_volume(image, model, meta, spacing, device="cpu", backend="onnx")
    slices = {**meta, "preprocessing": {**pipeline_from_dict({"pipeline": "slices25d"}).to_dict()}}
    with pytest.raises(ValueError, match="3D patch models only"):
        predict_volume(image, model, slices, spacing, device="cpu", backend="openvino")
    # on a CPU where OpenVINO was never measured (ARM), auto keeps PyTorch; asked for, it runs
    with monkeypatch.context() as m:
        m.setattr(ovr, "x86_cpu", lambda: False)
        assert predict_volume(image, *tiny3d(), spacing, device="cpu", backend="auto").backend == "torch"
        assert predict_volume(image, *tiny3d(), spacing, device="cpu", backend="openvino").backend == "openvino"
    # without OpenVINO installed: auto runs PyTorch, an explicit request names the extra to install
    monkeypatch.setattr(ovr, "openvino_version", lambda: None)
    assert predict_volume(image, *tiny3d(), spacing, device="cpu", backend="auto").backend == "torch"
    with pytest.raises(ValueError, match=r"napari-ian\[openvino\]"):
        predict_volume(image, *tiny3d(), spacing, device="cpu", backend="openvino")


def test_cli_predict_backend(tmp_path, nerve_middle, bundled_predictions, capsys):
    """``--backend`` reaches the prediction: the CLI's ``--fast`` output is what ``predict_volume``
    gives with that backend (the fixture's, also ``--fast`` tiles), and its line says what ran."""
    image, labels, spacing, _ = nerve_middle
    img_p = tmp_path / "img.nii.gz"
    write_nifti(img_p, image, phantom_geometry(image.shape, spacing), dtype=np.float32)
    ran = {"openvino": "(cpu, OpenVINO, fast tiles,", "openvino-int8": "(cpu, OpenVINO int8, fast tiles,"}
    for backend, line in ran.items():
        out = tmp_path / f"{backend}.nii.gz"
        assert main(["predict", str(img_p), "--out", str(out), "--quiet", "--device", "cpu", "--fast",
                     "--backend", backend]) == 0
        said = capsys.readouterr().out
        assert line in said, said
        got = read_volume(out).data
        for side in (1, 2):
            assert _dsc(got == side, bundled_predictions[backend].labels == side) > 0.99, (backend, side)
    assert main(["predict", str(img_p), "--out", str(tmp_path / "x.nii.gz"), "--backend", "openvino",
                 "--device", "meta"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ian: ") and "CPU" in err and "\n" not in err


def test_the_cli_offers_the_backends_prediction_knows():
    from napari_ian.trainer.cli import BACKEND_CHOICES

    assert tuple(BACKEND_CHOICES) == ovr.BACKENDS


# -- the bundled model's int8 version (napari_ian/trainer/quantise_int8.py, bench/make_int8.py) ----------

def test_the_bundled_model_ships_an_int8_version_made_from_its_weights(bundled):
    import json

    model, _ = bundled
    xml = ovr.int8_model_path(model)
    assert xml is not None and xml.name == "ian-default.int8.xml" and xml.with_suffix(".bin").is_file()
    card = json.loads(xml.with_suffix(".json").read_text())
    assert card["weights_key"] == ovr.weights_key(model) and card["made_from"] == "ian-default.pt"
    # other weights (another network, or the bundled one fine-tuned a little) find none
    assert ovr.int8_model_path(tiny3d()[0]) is None
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.head.bias.add_(1e-3)
    assert ovr.int8_model_path(changed) is None


def test_int8_prediction_agrees_with_float32_and_auto_takes_it_for_the_bundled_model(bundled, bundled_predictions,
                                                                                     nerve_middle):
    image, labels, spacing, _ = nerve_middle
    model, meta = bundled
    f32, int8 = bundled_predictions["openvino"], bundled_predictions["openvino-int8"]
    assert f32.backend == "openvino" and int8.backend == "openvino-int8"
    assert int8.ran_on.startswith("cpu, OpenVINO int8") and "int8" not in f32.ran_on
    for side in (1, 2):
        truth = labels == side
        assert _dsc(int8.labels == side, f32.labels == side) > 0.9, side
        assert _dsc(int8.labels == side, truth) > _dsc(f32.labels == side, truth) - 0.03, side
    auto = predict_volume(image, model, meta, spacing, device="cpu", backend="auto", tile=FAST_TILE)
    assert auto.backend == ("torch" if cpu_bf16_supported() else "openvino-int8")


def test_int8_for_other_weights_says_so_and_auto_falls_back_to_float32(bundled, nerve_middle, monkeypatch, tmp_path,
                                                                       caplog):
    image, _, spacing, _ = nerve_middle
    with pytest.raises(ValueError, match="backend openvino-int8: no int8 version of this model"):
        predict_volume(image, *tiny3d(), spacing, device="cpu", backend="openvino-int8")
    if cpu_bf16_supported():
        return
    # an int8 model OpenVINO cannot read (say, from a newer OpenVINO): auto runs float32, and says why
    bad = tmp_path / "x.int8.xml"
    bad.write_text("<net>not a model")
    bad.with_suffix(".bin").write_bytes(b"")
    monkeypatch.setattr(ovr, "int8_model_path", lambda model, key=None: bad)
    monkeypatch.setattr(ovr, "_COMPILED", {})
    model, meta = bundled
    with caplog.at_level("WARNING"):
        pred = predict_volume(image, model, meta, spacing, device="cpu", backend="auto", tile=FAST_TILE)
    assert pred.backend == "openvino"
    assert any("in int8" in r.getMessage() and "trying float32" in r.getMessage() for r in caplog.records)


def test_quantise_makes_an_int8_model_that_finds_its_weights(tmp_path, monkeypatch):
    """The developer's tool end to end on a tiny network: calibrate, quantise, save beside the
    model file; the runtime then finds and runs it for exactly those weights."""
    from napari_ian.trainer import registry
    from napari_ian.trainer.modelfile import save_model
    from napari_ian.trainer.quantise_int8 import quantise, save_int8

    model, meta = tiny3d()
    rng = np.random.default_rng(0)
    patches = [rng.normal(size=(1, 1, 16, 32, 32)).astype(np.float32) for _ in range(8)]
    save_model(tmp_path / "tiny.pt", model, meta)
    xml = save_int8(quantise(model, patches), model, tmp_path / "tiny.pt", {"patches": 8})
    assert xml == tmp_path / "tiny.int8.xml"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.int8.bin", "tiny.int8.json", "tiny.int8.xml", "tiny.pt"]
    monkeypatch.setattr(registry, "BUNDLED_DIR", tmp_path)
    monkeypatch.setattr(ovr, "_COMPILED", {})
    assert ovr.int8_model_path(model) == xml
    net = ovr.compile_for_cpu(model, example_shape=(1, 1, 16, 32, 32), precision="int8")
    assert net.precision == "int8"
    x = torch.from_numpy(patches[0])
    with torch.no_grad():
        ref = model(x)
    got = net(x)
    assert got.shape == ref.shape
    # quantised, so not equal, but the same function: logits correlate closely
    assert np.corrcoef(got.numpy().ravel(), ref.numpy().ravel())[0, 1] > 0.95


def test_calibration_patches_are_training_size_normalised_renders(tmp_path):
    from napari_ian.trainer.pipeline import Patches3D
    from napari_ian.trainer.quantise_int8 import calibration_patches

    import shutil

    from napari_ian.sample_data.synth import SEED_BASE
    from napari_ian.trainer.rehearsal import ANATOMY_FILE

    # the first training anatomy ships (fine-tuning's rehearsal): put it where the tool's cache
    # looks, so that the test renders it without rasterising it again
    assert SEED_BASE["train"] == 100_000
    shutil.copyfile(ANATOMY_FILE, tmp_path / "anatomy_100000_0.8x0.5x0.5.npz")
    pipe = Patches3D(patch=(16, 32, 32))
    events = []
    patches = calibration_patches(pipe, n_anatomies=1, per_volume=3, anatomy_cache=tmp_path, progress=events.append)
    assert len(patches) == 6 and all(p.shape == (1, 1, 16, 32, 32) and p.dtype == np.float32 for p in patches)
    lo, hi = pipe.normalisation["clip"]
    assert all(np.isfinite(p).all() and p.min() >= lo and p.max() <= hi for p in patches)
    assert [e.done for e in events] == [1, 2]
    assert len({float(p.std()) for p in patches}) == 6           # six different places and looks
    assert sorted(q.name for q in tmp_path.iterdir()) == ["anatomy_100000_0.8x0.5x0.5.npz"]   # none rasterised
    with pytest.raises(ValueError, match="3D patch models"):
        from napari_ian.trainer.pipeline import pipeline_from_dict
        calibration_patches(pipeline_from_dict({"pipeline": "slices25d"}), n_anatomies=1)
