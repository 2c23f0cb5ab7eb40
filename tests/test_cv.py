"""Monte Carlo cross-validation reports: paired Wilcoxon on four metrics, Bonferroni, the paper's tables."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_ian.trainer.cli_args import parse_model_spec
from napari_ian.trainer.cv import PAPER_MODELS, run_cv, write_reports
from napari_ian.trainer.train import TrainConfig


def _rows(dsc, split=0, predicted=True):
    """Per-slice rows whose four metrics follow ``dsc`` (precision undefined where nothing was predicted)."""
    out = []
    for i, d in enumerate(dsc):
        out.append({"split": split, "case": "c", "side": "right", "slice": i, "dsc": d, "iou": d / (2 - d),
                    "precision": d if predicted else float("nan"), "recall": d, "tp": 1, "fn": 0, "fp": 0,
                    "category": ""})
    return out


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def four_models():
    rng = np.random.default_rng(0)
    good = np.clip(rng.normal(0.8, 0.1, 60), 0, 1)
    return {"a": _rows(good), "b": _rows(np.clip(good - 0.2, 0, 1)), "c": _rows(good),
            "d": _rows(np.clip(good - 0.05 + rng.normal(0, 0.05, 60), 0, 1))}


def test_reference_comparisons_for_all_four_metrics_with_bonferroni_over_them(tmp_path, four_models):
    rep = write_reports(four_models, tmp_path)
    comps = rep["comparisons"]
    # the reference (the first model) against each of the 3 others, for each of the 4 metrics
    assert [(c["metric"], c["model_a"], c["model_b"]) for c in comps[:3]] == [("DSC", "a", "b"), ("DSC", "a", "c"),
                                                                               ("DSC", "a", "d")]
    assert {c["metric"] for c in comps} == {"DSC", "IoU", "precision", "recall"} and len(comps) == 12
    for c in comps:
        assert c["bonferroni_factor"] == 3 and c["n_pairs"] == 60
        if c["p"] != "":
            assert c["p_bonferroni"] == pytest.approx(min(1.0, 3 * c["p"]), rel=1e-3)
    ab = {c["metric"]: c for c in comps if c["model_b"] == "b"}
    assert all(ab[m]["p"] < 1e-6 for m in ab)
    assert ab["DSC"]["median_difference_a_minus_b"] == pytest.approx(0.2, abs=0.01)
    same = next(c for c in comps if c["model_b"] == "c")
    assert same["p"] == 1.0 and same["note"] == "equal on every paired slice"
    # what is written is what is returned
    written = _csv(tmp_path / "comparisons.csv")
    assert [(r["metric"], r["model_a"], r["model_b"], r["bonferroni_factor"]) for r in written] == \
        [(c["metric"], c["model_a"], c["model_b"], str(c["bonferroni_factor"])) for c in comps]
    title = (tmp_path / "comparisons.md").read_text().split("\n")[0]
    assert "a against each other model" in title and "comparisons per metric (3)" in title


def test_the_reference_is_an_option_and_all_pairs_stay_available(tmp_path, four_models):
    rep = write_reports(four_models, tmp_path / "ref_d", reference="d")
    assert [(c["model_a"], c["model_b"]) for c in rep["comparisons"] if c["metric"] == "IoU"] == \
        [("d", "a"), ("d", "b"), ("d", "c")]
    rep = write_reports(four_models, tmp_path / "all", all_pairs=True)
    dsc = [c for c in rep["comparisons"] if c["metric"] == "DSC"]
    assert len(dsc) == 6 and all(c["bonferroni_factor"] == 6 for c in dsc)
    assert dsc[0]["p_bonferroni"] == pytest.approx(min(1.0, 6 * dsc[0]["p"]), rel=1e-3)
    with pytest.raises(ValueError, match="reference 'e' is none of the models"):
        write_reports(four_models, tmp_path / "bad", reference="e")


def test_a_model_that_never_predicts_gets_an_honest_line_not_nan(tmp_path, four_models):
    per = {"a": four_models["a"], "silent": _rows(np.zeros(60), predicted=False)}
    rep = write_reports(per, tmp_path)
    silent = rep["table1"][1]
    assert silent["precision"] == "undefined: no nerve predicted on any of the 60 slices"
    assert silent["DSC"] == "0.000 ± 0.000 (0.000)" and silent["slices with a prediction (precision)"] == 0
    prec = next(c for c in rep["comparisons"] if c["metric"] == "precision")
    assert prec["n_pairs"] == 0 and prec["p"] == "" and prec["p_bonferroni"] == ""
    assert prec["note"].startswith("no slice where both models have a precision")
    assert next(c for c in rep["comparisons"] if c["metric"] == "DSC")["p"] < 1e-6
    t2 = _csv(tmp_path / "table2.csv")
    assert t2[1]["complete failure (DSC = 0)"] == "100.0%"
    for f in ("table1.md", "table1.csv", "table2.md", "comparisons.md", "comparisons.csv"):
        assert "nan" not in (tmp_path / f).read_text().lower(), f


def test_box_plots_of_dsc_and_iou(tmp_path, four_models):
    from PIL import Image

    write_reports(four_models, tmp_path)
    dsc, iou = Image.open(tmp_path / "dsc_boxplot.png"), Image.open(tmp_path / "iou_boxplot.png")
    assert dsc.size == iou.size and dsc.size[0] > 400
    assert np.asarray(dsc.convert("L")).tolist() != np.asarray(iou.convert("L")).tolist()


def test_model_spec_parsing():
    base = TrainConfig()
    s = parse_model_spec('paper=iannet:{"context": 1, "size": [256, 256], "split_attention": true}', base)
    assert s.name == "paper" and s.config.network == "iannet" and s.config.context == 1
    assert s.config.size == (256, 256) and s.config.network_config == {"split_attention": True}
    assert parse_model_spec("unet", base).config.network_config == {"base": 16, "depth": 4}
    # with the paper's settings as defaults, the JSON still decides what it names
    s = parse_model_spec('small=deeplabv3plus:{"base": 16}', base, PAPER_MODELS)
    assert s.config.network_config == {"backbone": "resnet101", "pool_bn": True, "base": 16}
    with pytest.raises(ValueError, match="not JSON"):
        parse_model_spec("x=unet:{base: 4}", base)


def _stub_run_cv(monkeypatch):
    """Record what ``ian cv`` asks run_cv for (training the seven full networks is the GPU check's job)."""
    import napari_ian.trainer.cv as cv

    seen = {}

    def fake(data_dir, specs, out_dir, **kw):
        seen.update(specs=specs, **kw)
        return write_reports({s.name: _rows([0.5, 0.7, 0.9]) for s in specs}, out_dir,
                             reference=kw["reference"], all_pairs=kw["all_pairs"])

    monkeypatch.setattr(cv, "run_cv", fake)
    return seen


def test_cli_paper_is_the_published_protocol_in_one_flag(tmp_path, tiny_dataset, monkeypatch, capsys):
    from napari_ian.trainer.cli import main

    seen = _stub_run_cv(monkeypatch)
    assert main(["cv", "--data", str(tiny_dataset), "--out", str(tmp_path / "paper"), "--paper"]) == 0
    specs = seen["specs"]
    assert [s.name for s in specs] == ["IANNet", "CaraNet", "DS-TransUNet", "DUCK-Net", "DeepLabV3+", "HarDNet-MSEG",
                                       "MEGANet"]
    assert specs[0].config.network_config == {"init": "public"}
    assert specs[4].config.network_config == {"backbone": "resnet101", "pool_bn": True}
    for s in specs:
        c = s.config
        assert (c.size, c.context, c.epochs, c.batch_size, c.patience, c.lr, c.weight_decay, c.loss, c.augment) == \
            ((256, 256), 1, 50, 32, 25, 1e-3, 1e-4, "focal_tversky", False)
    assert seen["repeats"] == 10 and seen["fractions"] == pytest.approx((0.7, 0.15, 0.15))
    assert seen["postprocess"] is False and seen["reference"] is None and seen["all_pairs"] is False
    out = capsys.readouterr().out
    assert "the paper's protocol: IANNet, CaraNet" in out and "DSC IANNet vs MEGANet" in out
    assert (tmp_path / "paper/iou_boxplot.png").exists()


def test_cli_paper_options_override_one_part_each(tmp_path, tiny_dataset, monkeypatch):
    from napari_ian.trainer.cli import main

    seen = _stub_run_cv(monkeypatch)
    assert main(["cv", "--data", str(tiny_dataset), "--out", str(tmp_path / "small"), "--paper", "--epochs", "2",
                 "--size", "64x64", "--repeats", "1", "--augment", "--fractions", "50/25/25",
                 "--model", 'IANNet=iannet:{"stem": 16}', "--model", "meganet", "--reference", "meganet",
                 "--all-pairs"]) == 0
    ian, mega = seen["specs"]
    assert ian.config.network_config == {"init": "public", "stem": 16} and mega.name == "meganet"
    assert (ian.config.epochs, ian.config.size, ian.config.augment, ian.config.batch_size) == (2, (64, 64), True, 32)
    assert seen["repeats"] == 1 and seen["fractions"] == pytest.approx((0.5, 0.25, 0.25))
    assert seen["reference"] == "meganet" and seen["all_pairs"] is True
    # without --paper: the bundled model's defaults
    assert main(["cv", "--data", str(tiny_dataset), "--out", str(tmp_path / "plain")]) == 0
    (spec,) = seen["specs"]
    assert (spec.config.network, spec.config.size, spec.config.context, spec.config.augment) == \
        ("unet", (64, 160), 3, True)
    assert seen["postprocess"] is True


@pytest.mark.slow
def test_cv_end_to_end_with_deep_supervision_on_three_phantom_patients(tmp_path, tiny_dataset):
    base = TrainConfig(epochs=1, batch_size=8, size=(32, 80), context=1, device="cpu")
    specs = [parse_model_spec('cara=caranet:{"backbone": "res2net50", "stem": 16, "channel": 16}', base),
             parse_model_spec('u2d=unet:{"base": 4, "depth": 2}', base)]
    rep = run_cv(tiny_dataset, specs, tmp_path / "out", repeats=2, postprocess=False)
    assert [r["model"] for r in rep["table1"]] == ["cara", "u2d"]
    assert {c["metric"] for c in rep["comparisons"]} == {"DSC", "IoU", "precision", "recall"}
    assert rep["comparisons"][0]["n_pairs"] > 0     # the same test slices for both models
    for f in ("dsc_boxplot.png", "iou_boxplot.png", "timing.csv", "protocol.json", "table2.md"):
        assert (tmp_path / "out" / f).exists()
    timing = _csv(tmp_path / "out/timing.csv")
    assert [r["model"] for r in timing] == ["cara", "u2d"] and float(timing[0]["predict_s_per_slice"]) > 0


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
