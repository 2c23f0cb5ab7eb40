"""`ian predict` / `ian evaluate` / `ian models` and the bundled model on unseen phantom patients."""
from __future__ import annotations

import dataclasses

import nibabel as nib
import numpy as np
import pytest

from napari_ian.sample_data.dataset import phantom_geometry
import napari_ian.trainer.predict as predict_module
from napari_ian.trainer.cli import main
from napari_ian.trainer.io import read_volume
from napari_ian.trainer.io_nifti import write_nifti
from napari_ian.trainer.metrics import slice_metrics
from napari_ian.trainer.modelfile import load_model
from napari_ian.trainer.pipeline import FAST_TILE, pipeline_for_model
from napari_ian.trainer.predict import predict_volume
from napari_ian.trainer.registry import resolve_model


@pytest.fixture(scope="module")
def bundled():
    return load_model(resolve_model("ian-default"))


def test_bundled_model_describes_itself(bundled):
    model, meta = bundled
    assert "synthetic only" in meta["trained_on"] and "not patient data" in meta["trained_on"]
    assert meta["labels"]["1"] == "right IAN" and meta["labels"]["2"] == "left IAN"
    assert meta["preprocessing"]["pipeline"] == "patch3d" and meta["network"] == "unet3d"
    assert meta["metrics"]["validation_dsc"] > 0.3 and "held-out phantom anatomies" in meta["metrics"]["note"]
    assert meta["parent"]                                # trained on from an earlier run, and says so


def test_cli_predict_writes_on_the_input_grid_and_evaluate_reads_it(tmp_path, phantom, capsys):
    """The bundled model through ``ian predict`` on a phantom patient it never saw (seed 5000: not
    among the training seeds) finds both nerves, on their own sides, on the input's grid."""
    image, labels, spacing, _ = phantom
    g = phantom_geometry(image.shape, spacing)
    img_p, ref_p = tmp_path / "img.nii.gz", tmp_path / "ref.nii.gz"
    write_nifti(img_p, image, g, dtype=np.float32)
    write_nifti(ref_p, labels, g)
    out = tmp_path / "pred.nii.gz"
    assert main(["predict", str(img_p), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    src, res = nib.load(img_p), nib.load(out)
    assert res.shape == src.shape and np.array_equal(res.affine, src.affine)
    assert set(np.unique(np.asarray(res.dataobj))) <= {0, 1, 2}
    got = read_volume(out).data
    np.testing.assert_array_equal(read_volume(ref_p).data, labels)     # read back as the phantom's array
    for side in (1, 2):
        sm = slice_metrics(labels, got, side)
        d = sm.dsc[sm.reference_positive]
        assert d.mean() > 0.6, (side, d.mean())
    # labels never cross sides: right predictions lie on the patient's right (lower RL index) of the left ones
    assert np.argwhere(got == 1)[:, 2].max() < np.argwhere(got == 2)[:, 2].min()
    csv_p = tmp_path / "rows.csv"
    assert main(["evaluate", "--reference", str(ref_p), "--prediction", str(out), "--csv", str(csv_p)]) == 0
    text = capsys.readouterr().out
    assert "right IAN" in text and "HD95" in text and "failures" in text
    assert csv_p.read_text().splitlines()[0].startswith("side,slice,tp,fp,fn,dsc")


def test_cli_refuses_bad_input_with_one_line(tmp_path, capsys, phantom):
    image, labels, spacing, _ = phantom
    g = phantom_geometry(image.shape, spacing)
    ref = tmp_path / "ref.nii.gz"
    write_nifti(ref, labels, g)
    bad = tmp_path / "bad.nii.gz"
    write_nifti(bad, (labels > 0).astype(np.uint8) * 7, g)
    assert main(["evaluate", "--reference", str(ref), "--prediction", str(bad)]) == 2
    assert "label values [7]" in capsys.readouterr().err
    other = phantom_geometry((10, 10, 10), (1, 1, 1))
    small = tmp_path / "small.nii.gz"
    write_nifti(small, np.zeros((10, 10, 10), np.uint8), other)
    assert main(["evaluate", "--reference", str(ref), "--prediction", str(small)]) == 2
    assert "not on the reference's grid" in capsys.readouterr().err
    corrupt = tmp_path / "m.pt"
    corrupt.write_bytes(b"garbage")
    out = tmp_path / "never.nii.gz"
    assert main(["predict", str(ref), "--out", str(out), "--model", str(corrupt), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a readable napari-ian model file" in err
    assert not out.exists()
    assert main(["predict", str(ref), "--out", str(ref), "--quiet"]) == 2      # never over the input
    assert "is the input image" in capsys.readouterr().err
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    assert main(["predict", str(ref), "--out", str(blocker / "x.nii.gz"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "x.nii.gz" in err
    assert blocker.read_text().startswith("a file")


def test_models_lists_the_bundled_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "ian-default" in out and "bundled" in out


def test_roi_restricts_the_prediction(bundled, phantom):
    from napari_ian.trainer.cli_args import parse_roi

    image, labels, spacing, _ = phantom
    model, meta = bundled
    roi = parse_roi(f"0:{image.shape[0] // 2},:,:", image.shape)
    pred = predict_volume(image, model, meta, spacing=spacing, roi=roi, tile=FAST_TILE, backend="auto")   # as ian predict
    assert pred.labels[image.shape[0] // 2:].max() == 0
    assert pred.labels[: image.shape[0] // 2].max() > 0
    with pytest.raises(ValueError, match="outside"):
        parse_roi("0:9999,:,:", image.shape)


def test_cli_predict_runs_few_large_tiles_by_default_and_patches_on_request(tmp_path, phantom, capsys, monkeypatch):
    """Large tiles are the default (``--fast`` says the same; ``--patches`` asks for the training-size
    patches, as does ``--no-postprocess`` without ``--fast``), and the default still finds both
    nerves."""
    image, labels, spacing, _ = phantom
    g = phantom_geometry(image.shape, spacing)
    img_p = tmp_path / "img.nii.gz"
    write_nifti(img_p, image, g, dtype=np.float32)
    runs = []                                    # (tile asked for, network tiles run) per prediction
    real = predict_module.predict_volume

    def counting(*args, progress=None, tile=None, **kwargs):
        seen = []

        def spy(event):
            if event.kind == "infer":
                seen.append(event.total)
        try:
            return real(*args, progress=spy, tile=tile, **kwargs)
        finally:
            runs.append((tile, seen[-1] if seen else None))

    monkeypatch.setattr(predict_module, "predict_volume", counting)
    out = tmp_path / "default.nii.gz"
    assert main(["predict", str(img_p), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    assert "fast tiles" in capsys.readouterr().out
    res = read_volume(out).data.astype(np.uint8)             # back on the canonical grid
    for side in (1, 2):
        sm = slice_metrics(labels, res, side)
        assert sm.dsc[sm.reference_positive].mean() > 0.6, side
    model, meta = load_model(resolve_model("ian-default"))
    pipe = pipeline_for_model(meta)
    work = pipe.prepare(image, spacing).volume.shape
    patches = np.prod([len(s) for s in pipe.tiling(work)[1]])
    fast = np.prod([len(s) for s in dataclasses.replace(pipe, tile=FAST_TILE).tiling(work)[1]])
    assert runs == [(FAST_TILE, fast)] and fast < patches / 4
    # the flags, on a box of a few slices so that they cost little; the raw threshold
    # (--no-postprocess) in patches unless --fast is given: the large tiles leave stray blobs that
    # only the post-processing removes
    for i, (flags, tile) in enumerate(((["--patches"], None), (["--fast"], FAST_TILE), (["--no-postprocess"], None),
                                       (["--no-postprocess", "--fast"], FAST_TILE))):
        assert main(["predict", str(img_p), "--out", str(tmp_path / f"{i}.nii.gz"), "--quiet",
                     "--device", "cpu", "--roi", "40:60,:,:", *flags]) == 0
        assert runs[-1][0] == tile and ("fast tiles" in capsys.readouterr().out) == (tile is not None)
    with pytest.raises(SystemExit):                         # not both
        main(["predict", str(img_p), "--out", str(tmp_path / "x.nii.gz"), "--fast", "--patches"])
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("short_of_memory, expected", [
    ({"tiles"}, [("gpu", FAST_TILE), ("gpu", None)]),
    ({"tiles", "patches"}, [("gpu", FAST_TILE), ("gpu", None), ("cpu", FAST_TILE)]),
])
def test_a_gpu_short_of_memory_tries_patches_there_before_the_cpu(tmp_path, monkeypatch, short_of_memory, expected):
    """Large tiles need the most memory: a GPU that runs out on them predicts in patches, and only a
    GPU that runs out on those too hands the work to the CPU; the note says which happened."""
    import torch

    from tiny_models import save_tiny3d
    from napari_ian.trainer import device as device_mod
    from napari_ian.trainer.workflows import predict_case

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path))
    save_tiny3d("tiny3d")
    # as on a machine with a GPU: "auto" picks CUDA; the runs said to be on it only raise its error
    monkeypatch.setattr(device_mod, "pick_device",
                        lambda device="auto": torch.device("cpu" if device == "cpu" else "cuda"))
    calls, real = [], predict_module.predict_volume

    def predict_volume(image, model, meta, spacing, device="auto", *args, tile=None, **kwargs):
        calls.append(("cpu" if device == "cpu" else "gpu", tile))
        if device != "cpu" and ("tiles" if tile else "patches") in short_of_memory:
            raise RuntimeError("CUDA out of memory. Tried to allocate 3.2 GiB")
        return real(image, model, meta, spacing, "cpu", *args, tile=tile, **kwargs)

    monkeypatch.setattr(predict_module, "predict_volume", predict_volume)
    image = np.random.default_rng(0).random((40, 48, 64)).astype(np.float32)
    res = predict_case(image, (1.0, 1.0, 1.0), "tiny3d")
    assert calls == expected and res.prediction.labels.shape == image.shape
    assert res.note == ("CUDA ran out of memory on large tiles; predicted in patches instead" if len(expected) == 2
                        else "CUDA ran out of memory; predicted on the CPU instead")

    def broken(*args, **kwargs):
        calls.append("broken")
        raise RuntimeError("weights do not match")

    calls.clear()                                # other errors are not hidden behind a fallback
    monkeypatch.setattr(predict_module, "predict_volume", broken)
    with pytest.raises(RuntimeError, match="weights do not match"):
        predict_case(image, (1.0, 1.0, 1.0), "tiny3d")
    assert calls == ["broken"]
