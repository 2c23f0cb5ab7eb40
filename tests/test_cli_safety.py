"""The CLI never writes over what it reads, and says what is wrong before any work, in one line.

Every command that writes is called on real files with an output that is one of its inputs
(by the same name, a relative path, a symbolic link or a hard link) or another of its outputs;
each refusal must come before any work and leave every file as it was.
"""
from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest

from napari_ian.sample_data.dataset import phantom_geometry
from napari_ian.trainer.cli import main
from napari_ian.trainer.io import read_volume
from napari_ian.trainer.io_nifti import write_nifti

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _one_error(capsys, *words) -> str:
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("ian: "), err
    for w in words:
        assert w in err, err
    return err


@pytest.fixture
def small_case(tmp_path):
    """A small image and labels pair on one grid (NIfTI), in tmp_path."""
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 100, (40, 24, 30)).astype(np.float32)
    labels = np.zeros(image.shape, np.uint8)
    labels[5:30, 10:13, 5:8], labels[5:30, 10:13, 20:23] = 1, 2
    g = phantom_geometry(image.shape, (0.8, 0.8, 0.8))
    img, lab = tmp_path / "img.nii.gz", tmp_path / "lab.nii.gz"
    write_nifti(img, image, g, dtype=np.float32)
    write_nifti(lab, labels, g)
    return img, lab


def test_predict_never_writes_over_its_input_however_it_is_named(small_case, tmp_path, monkeypatch, capsys):
    img, _ = small_case
    before = _digest(img)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link.nii.gz").symlink_to(img)
    os.link(img, tmp_path / "hard.nii.gz")
    for prob in ("img.nii.gz", "./sub/../img.nii.gz", str(tmp_path / "link.nii.gz"), "hard.nii.gz"):
        assert main(["predict", str(img), "--out", "o.nii.gz", "--probability", prob, "--quiet"]) == 2
        _one_error(capsys, "--probability is the input image")
        assert _digest(img) == before and not (tmp_path / "o.nii.gz").exists()
    # the two outputs are one file: refused too
    (tmp_path / "p.nii.gz").write_bytes(b"earlier result")
    assert main(["predict", str(img), "--out", "p.nii.gz", "--probability", str(tmp_path / "p.nii.gz"),
                 "--quiet"]) == 2
    _one_error(capsys, "--out and --probability are the same file")
    assert (tmp_path / "p.nii.gz").read_bytes() == b"earlier result"
    assert not (tmp_path / "sub").exists()


def test_evaluate_never_writes_its_table_over_the_reference(small_case, tmp_path, capsys):
    _, lab = small_case
    before = _digest(lab)
    (tmp_path / "ref-link.nii.gz").symlink_to(lab)
    for csv in (lab, tmp_path / "ref-link.nii.gz"):
        assert main(["evaluate", "--reference", str(lab), "--prediction", str(lab), "--csv", str(csv)]) == 2
        _one_error(capsys, "--csv is the reference")
        assert _digest(lab) == before


def test_evaluate_keeps_an_existing_table_unless_told_to_overwrite(small_case, tmp_path, capsys):
    _, lab = small_case
    csv = tmp_path / "per_slice.csv"
    csv.write_text("someone's notes\n")
    args = ["evaluate", "--reference", str(lab), "--prediction", str(lab), "--csv", str(csv)]
    assert main(args) == 2
    _one_error(capsys, "--csv exists; pass --overwrite to replace it")
    assert csv.read_text() == "someone's notes\n"
    assert main(args + ["--overwrite"]) == 0
    from napari_ian.trainer.evaluation import ROW_FIELDS

    lines = csv.read_text().splitlines()
    assert lines[0] == ",".join(ROW_FIELDS) and len(lines) > 2


def test_train_never_saves_its_model_over_a_dataset_file(small_case, tmp_path, capsys):
    img, lab = small_case
    (tmp_path / "cases.csv").write_text("case_id,patient_id,image,labels\nc1,p1,img.nii.gz,lab.nii.gz\n")
    before = _digest(img)
    assert main(["train", "--data", str(tmp_path), "--out", str(img), "--epochs", "1", "--quiet"]) == 2
    _one_error(capsys, "--out is the image of case c1")
    assert _digest(img) == before


def test_finetune_and_phantom_and_cv_refuse_before_any_work(small_case, tmp_path, monkeypatch, capsys):
    img, lab = small_case
    home = tmp_path / "home"
    monkeypatch.setenv("NAPARI_IAN_HOME", str(home))
    target = home / "models" / "site.pt"
    target.parent.mkdir(parents=True)
    os.link(lab, target)          # labels that are the new model's own file (a hard link into the model folder)
    target_was = _digest(target)
    assert main(["finetune", "--image", str(img), "--labels", str(target), "--slices", "5:9",
                 "--name", "site", "--quiet"]) == 2
    _one_error(capsys, "exists already")
    assert _digest(target) == target_was
    # a rehearsal share outside [0, 1): one line, nothing trained or written
    for share in ("1", "-0.1"):
        assert main(["finetune", "--image", str(img), "--labels", str(lab), "--slices", "5:9",
                     "--name", "site2", "--rehearsal-share", share, "--quiet"]) == 2
        _one_error(capsys, "--rehearsal-share must be at least 0 and below 1")
    assert not (home / "models" / "site2.pt").exists()
    # a file where the phantom folder should go
    blocker = tmp_path / "blocker"
    blocker.write_text("mine")
    assert main(["phantom", "--out", str(blocker), "--patients", "1", "--quiet"]) == 2
    _one_error(capsys, "is an existing file, not a folder")
    assert blocker.read_text() == "mine"
    # cross-validation reports into the dataset folder itself
    (tmp_path / "cases.csv").write_text("case_id,patient_id,image,labels\nc1,p1,img.nii.gz,lab.nii.gz\n")
    listing = sorted(os.listdir(tmp_path))
    assert main(["cv", "--data", str(tmp_path), "--out", str(tmp_path), "--epochs", "1"]) == 2
    _one_error(capsys, "--out is the data folder")
    assert sorted(os.listdir(tmp_path)) == listing


def test_predict_keeps_existing_outputs_unless_told_to_overwrite(small_case, tmp_path, monkeypatch, capsys):
    from tiny_models import save_tiny3d

    img, _ = small_case
    mine = tmp_path / "my_corrected_labels.nii.gz"
    mine.write_bytes(b"a person's work")
    # refused before any work: even a missing input is not read first
    for flag in ("--out", "--probability"):
        outs = {"--out": tmp_path / "o.nii.gz", "--probability": tmp_path / "p.nii.gz", flag: mine}
        assert main(["predict", str(tmp_path / "missing.nii.gz"), "--out", str(outs["--out"]),
                     "--probability", str(outs["--probability"]), "--quiet"]) == 2
        _one_error(capsys, str(mine), f"{flag} exists; pass --overwrite")
        assert mine.read_bytes() == b"a person's work"
        assert not (tmp_path / "o.nii.gz").exists() and not (tmp_path / "p.nii.gz").exists()
    # asked to: replaced (a tiny network, so that the run is short)
    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path / "home"))
    save_tiny3d("tiny3d")
    assert main(["predict", str(img), "--out", str(mine), "--model", "tiny3d", "--quiet", "--overwrite"]) == 0
    assert read_volume(mine).data.shape == read_volume(img).data.shape


def test_predict_checks_every_argument_before_the_work(small_case, tmp_path, capsys):
    img, _ = small_case
    out = tmp_path / "o.nii.gz"
    # --probability with the wrong suffix: refused before --out is written
    assert main(["predict", str(img), "--out", str(out), "--probability", str(tmp_path / "p.txt"), "--quiet"]) == 2
    _one_error(capsys, "--probability", "p.txt", ".nii")
    assert not out.exists()
    # --out an existing folder: refused at once, not after the prediction
    (tmp_path / "folder.nii.gz").mkdir()
    assert main(["predict", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "folder.nii.gz"),
                 "--quiet"]) == 2
    _one_error(capsys, "folder.nii.gz", "existing folder")
    # a missing input: no output folder is created for the run
    assert main(["predict", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "new/deeper/o.nii.gz"),
                 "--quiet"]) == 2
    _one_error(capsys, "missing.nii.gz", "no such file")
    assert not (tmp_path / "new").exists()
    # a malformed box: one line saying which part
    assert main(["predict", str(img), "--out", str(out), "--roi", "a:b,:,:", "--quiet"]) == 2
    err = _one_error(capsys, "--roi", "'a:b' is not a range")
    assert "invalid literal" not in err and not out.exists()


def test_an_image_given_as_the_reference_gets_a_short_line(small_case, capsys):
    img, lab = small_case
    assert main(["evaluate", "--reference", str(img), "--prediction", str(lab)]) == 2
    err = _one_error(capsys, "img.nii.gz", "an image rather than labels")
    assert len(err) < 300


def test_a_full_disk_on_csv_names_the_file(small_case, tmp_path):
    """Writing --csv runs into the file-size limit (EFBIG, as a full disk gives ENOSPC): the line names it."""
    _, lab = small_case
    csv = tmp_path / "rows.csv"

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)     # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (1500, 1500))

    res = subprocess.run([sys.executable, "-m", "napari_ian.trainer.cli", "evaluate", "--reference", str(lab),
                          "--prediction", str(lab), "--csv", str(csv)], preexec_fn=limit, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == f"ian: {csv}: File too large"
    assert not csv.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".rows")]
