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
def test_cv_end_to_end_on_three_phantom_patients(tmp_path, phantom_cache):
    from napari_ian.sample_data.dataset import phantom_geometry
    from napari_ian.trainer.io_nifti import write_nifti

    lines = ["case_id,patient_id,image,labels"]
    for seed in (5000, 5001, 5002):
        image, labels, spacing, _ = phantom_cache(seed)
        g = phantom_geometry(image.shape, spacing)
        write_nifti(tmp_path / f"d/{seed}_img.nii.gz", image, g, dtype=np.float32)
        write_nifti(tmp_path / f"d/{seed}_lab.nii.gz", labels, g)
        lines.append(f"c{seed},p{seed},{seed}_img.nii.gz,{seed}_lab.nii.gz")
    (tmp_path / "d/cases.csv").write_text("\n".join(lines) + "\n")
    base = TrainConfig(epochs=1, batch_size=8, size=(32, 80), device="cpu")
    specs = [parse_model_spec('u2d=unet:{"base": 4, "depth": 2, "context": 1}', base),
             parse_model_spec('u25d=unet:{"base": 4, "depth": 2}', base)]
    rep = run_cv(tmp_path / "d", specs, tmp_path / "out", repeats=2, log=lambda m: None)
    assert [r["model"] for r in rep["table1"]] == ["u2d", "u25d"]
    assert rep["comparisons"][0]["n_pairs"] > 0     # the same test slices for both models
    assert (tmp_path / "out/dsc_boxplot.png").exists()
