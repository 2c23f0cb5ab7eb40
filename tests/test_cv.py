"""Monte Carlo cross-validation reports: paired Wilcoxon, Bonferroni, the paper's tables."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_ian.trainer.cv import parse_model_spec, run_cv, write_reports
from napari_ian.trainer.train import TrainConfig


def _rows(dsc, split=0):
    return [{"split": split, "case": "c", "side": "right", "slice": i, "dsc": d, "iou": d / (2 - d) if d < 2 else 1,
             "precision": d, "recall": d, "tp": 1, "fn": 0, "fp": 0, "category": ""} for i, d in enumerate(dsc)]


def test_reports_pair_slices_and_correct_for_multiple_comparisons(tmp_path):
    rng = np.random.default_rng(0)
    good = np.clip(rng.normal(0.8, 0.1, 60), 0, 1)
    per = {"a": _rows(good), "b": _rows(np.clip(good - 0.2, 0, 1)), "c": _rows(good)}
    rep = write_reports(per, tmp_path, log=lambda m: None)
    comps = {(c["model_a"], c["model_b"]): c for c in rep["comparisons"]}
    assert comps[("a", "b")]["n_pairs"] == 60
    assert comps[("a", "b")]["p"] < 1e-6
    assert comps[("a", "b")]["p_bonferroni"] == pytest.approx(min(1, 3 * comps[("a", "b")]["p"]))
    assert comps[("a", "c")]["p"] == 1.0          # identical: no difference to test
    for f in ("table1.md", "table1.csv", "table2.md", "table2.csv", "comparisons.csv", "per_slice.csv",
              "dsc_boxplot.png"):
        assert (tmp_path / f).stat().st_size > 0
    t2 = list(csv.DictReader(open(tmp_path / "table2.csv")))
    assert [r["model"] for r in t2] == ["a", "b", "c"]


def test_model_spec_parsing():
    base = TrainConfig()
    s = parse_model_spec('paper=iannet:{"context": 1, "size": [256, 256], "split_attention": true}', base)
    assert s.name == "paper" and s.config.network == "iannet" and s.config.context == 1
    assert s.config.size == (256, 256) and s.config.network_config == {"split_attention": True}
    assert parse_model_spec("unet", base).config.network_config == {"base": 16, "depth": 4}


@pytest.mark.slow
def test_cv_end_to_end_on_three_phantom_patients(tmp_path, tiny_dataset):
    base = TrainConfig(epochs=1, batch_size=8, size=(32, 80), device="cpu")
    specs = [parse_model_spec('u2d=unet:{"base": 4, "depth": 2, "context": 1}', base),
             parse_model_spec('u25d=unet:{"base": 4, "depth": 2}', base)]
    rep = run_cv(tiny_dataset, specs, tmp_path / "out", repeats=2, log=lambda m: None)
    assert [r["model"] for r in rep["table1"]] == ["u2d", "u25d"]
    assert rep["comparisons"][0]["n_pairs"] > 0     # the same test slices for both models
    assert (tmp_path / "out/dsc_boxplot.png").exists()


def test_nnunet_layout_without_a_cases_table(tmp_path, tiny_dataset):
    import shutil

    from napari_ian.trainer.data import read_cases

    shutil.copytree(tiny_dataset / "imagesTr", tmp_path / "imagesTr")
    shutil.copytree(tiny_dataset / "labelsTr", tmp_path / "labelsTr")
    cases = read_cases(tmp_path)
    assert [c.case_id for c in cases] == ["c5000", "c5001", "c5002"]
    assert all(c.patient_id == c.case_id for c in cases)
    (tmp_path / "labelsTr/c5001.nii.gz").unlink()
    with pytest.raises(Exception, match="no labels for case c5001"):
        read_cases(tmp_path)


@pytest.mark.slow
def test_cli_train_saves_a_model_with_metadata(tmp_path, tiny_dataset, monkeypatch, capsys):
    from napari_ian.trainer.cli import main
    from napari_ian.trainer.modelfile import read_metadata

    monkeypatch.setenv("NAPARI_IAN_HOME", str(tmp_path / "home"))
    rc = main(["train", "--data", str(tiny_dataset), "--name", "tiny", "--epochs", "1", "--batch-size", "8",
               "--size", "32x80", "--network-config", '{"base": 4, "depth": 2}', "--quiet",
               "--trained-on", "three phantom patients"])
    assert rc == 0
    meta = read_metadata(tmp_path / "home/models/tiny.pt")
    assert meta["trained_on"] == "three phantom patients"
    assert meta["network_config"]["in_channels"] == 3 and meta["preprocessing"]["size"] == [32, 80]
    assert len(meta["training"]["test_cases"]) == 1 and "test_dsc_mean" in meta["metrics"]
    # a second run with the same name is refused, the first model kept
    assert main(["train", "--data", str(tiny_dataset), "--name", "tiny", "--epochs", "1"]) == 2
    assert "exists" in capsys.readouterr().err
