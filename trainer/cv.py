"""Patient-level Monte Carlo cross-validation of several models on the same splits (the paper's protocol).

For each of ``repeats`` random patient splits (default 10 x 70/15/15), every model is trained on
the training patients, early-stopped on the validation patients and tested on the test
patients. Per-slice DSC, IoU, precision and recall (reference-positive coronal slices of every
test nerve) are pooled per model; models are compared on the same slices with the paired
Wilcoxon signed-rank test, Bonferroni-corrected over the comparisons made: the reference
model against each other one (the paper's "ours vs. other" tests), or every pair.

Outputs in ``out_dir``: ``table1.md/.csv`` (mean ± SD (median) of the four metrics),
``table2.md/.csv`` (cumulative failure rates), ``comparisons.md/.csv`` (one row per metric and
pair), ``dsc_boxplot.png`` and ``iou_boxplot.png`` (like the paper's Fig. 4), ``timing.csv``
(training time and inference time per slice, like its Table S1), ``per_slice.csv`` and
``protocol.json`` (every setting used). A metric with no value to summarise (the precision of a
model that never predicts) gets a sentence saying why, never ``nan ± nan``.

:data:`PAPER_PROTOCOL` and :data:`PAPER_MODELS` are the published protocol (``ian cv --paper``).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes, atomic_write_text
from .data import load_case, patient_split, read_cases
from .metrics import failure_rates, summarize
from .progress import STAGE, ProgressCallback, report
from .train import TrainConfig
from .workflows import train_and_test

METRICS = ("dsc", "iou", "precision", "recall")
METRIC_NAMES = {"dsc": "DSC", "iou": "IoU", "precision": "precision", "recall": "recall"}

# The source study's protocol (Methods, "Training process"): IANNet in 2D at 256 x 256 against six
# comparators, AdamW (lr 1e-3, weight decay 1e-4), cosine annealing, 50 epochs, batch 32, Focal
# Tversky loss (gamma 2), early stopping with patience 25, 10 x 70/15/15 patient-level splits.
# It mentions no augmentation and no post-processing of the thresholded output.
PAPER_PROTOCOL = {"size": (256, 256), "context": 1, "epochs": 50, "batch_size": 32, "patience": 25,
                  "lr": 1e-3, "weight_decay": 1e-4, "loss": "focal_tversky", "augment": False,
                  "repeats": 10, "fractions": (0.7, 0.15, 0.15), "postprocess": False}
# each network's settings in the paper's comparison: its published configuration
PAPER_MODELS = {"iannet": {"init": "public"}, "caranet": {}, "ds-transunet": {}, "duck-net": {},
                "deeplabv3plus": {"backbone": "resnet101", "pool_bn": True}, "hardnet-mseg": {}, "meganet": {}}
# names as the paper's tables print them
PAPER_TITLES = {"iannet": "IANNet", "caranet": "CaraNet", "ds-transunet": "DS-TransUNet",
                "duck-net": "DUCK-Net", "deeplabv3plus": "DeepLabV3+", "hardnet-mseg": "HarDNet-MSEG",
                "meganet": "MEGANet"}


@dataclasses.dataclass
class ModelSpec:
    """A model to compare: a display name and its training settings."""

    name: str
    config: TrainConfig


def paper_specs(base: TrainConfig) -> list[ModelSpec]:
    """The paper's seven models (IANNet first, the reference) with ``base``'s training settings."""
    return [ModelSpec(PAPER_TITLES[n], dataclasses.replace(base, network=n, network_config=dict(cfg)))
            for n, cfg in PAPER_MODELS.items()]


def run_cv(data_dir, specs, out_dir, repeats: int = 10, fractions=(0.7, 0.15, 0.15), seed: int = 0,
           progress: ProgressCallback | None = None, cancel=None, reference: str | None = None, all_pairs: bool = False,
           postprocess: bool = True) -> dict:
    """Run the protocol; write the tables, comparisons and figures into ``out_dir``; return them.

    Parameters
    ----------
    data_dir : path
        A dataset folder (:func:`napari_ian.trainer.data.read_cases`).
    specs : list of ModelSpec
    out_dir : path
    repeats, fractions, seed
        Monte Carlo splits: ``repeats`` patient-level splits, split ``r`` drawn with ``seed + r``.
    reference : str, optional
        The model the others are compared with (default: the first).
    all_pairs : bool
        Compare every pair instead (Bonferroni over all of them).
    postprocess : bool
        Clean up each prediction (one continuous nerve per side) before scoring; the paper
        scored the thresholded network output (``False``).
    progress, cancel : callable, optional
        A ``stage`` event per split and per model trained (:mod:`napari_ian.trainer.progress`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = read_cases(data_dir)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must differ: {names}")
    if reference is not None and reference not in names:
        raise ValueError(f"the reference model {reference!r} is none of the models ({', '.join(names)})")
    _write_protocol(out_dir / "protocol.json", specs, repeats, fractions, seed, reference or names[0], all_pairs,
                    postprocess)
    per_slice = {n: [] for n in names}      # list of (split, case, side, slice, metrics...)
    timing = {n: {"train_s": [], "predict_s": 0.0, "slices": 0, "epochs": []} for n in names}
    for rep in range(repeats):
        tr_ids, va_ids, te_ids = patient_split([c.patient_id for c in cases], fractions, seed + rep)
        pick = lambda ids: [c for c in cases if c.patient_id in set(ids)]  # noqa: E731
        tr, va, te = pick(tr_ids), pick(va_ids), pick(te_ids)
        report(progress, STAGE, message=f"split {rep + 1}/{repeats}: {len(tr)} train / {len(va)} val / {len(te)} test cases")
        test_data = [(c, *load_case(c)) for c in te]
        for spec in specs:
            cfg = spec.config
            _, history, best, _, tested = train_and_test(tr, va, te, cfg, test_data=test_data, postprocess=postprocess,
                                                         min_component_mm3=2.0 if postprocess else 0.0, cancel=cancel)
            t = timing[spec.name]
            for tc in tested:
                t["predict_s"] += tc.seconds
                t["slices"] += tc.slices                          # each coronal slice, both sides
                for r in tc.result["rows"]:
                    if r["tp"] + r["fn"] > 0:       # reference-positive slices: the paired unit
                        per_slice[spec.name].append({"split": rep, "case": tc.case.case_id, **r})
            t["train_s"].append(best["train_seconds"])
            t["epochs"].append(len(history))
            val = f"val DSC {best['val_dsc']:.3f}" if best["epoch"] > 0 else "no validation score"
            report(progress, STAGE, message=f"  {spec.name}: best epoch {best['epoch']} of {len(history)} ({val}), "
                   f"{best['train_seconds']:.0f} s on {best['device']}")
    rows = [{"model": n, "device": specs[i].config.device, "mean_train_s": float(np.mean(timing[n]["train_s"])),
             "mean_epochs_run": float(np.mean(timing[n]["epochs"])),
             "predict_s_per_slice": timing[n]["predict_s"] / max(timing[n]["slices"], 1)}
            for i, n in enumerate(names)]
    _write_csv(out_dir / "timing.csv", rows)
    return write_reports(per_slice, out_dir, progress, reference=reference, all_pairs=all_pairs)


def _write_protocol(path, specs, repeats, fractions, seed, reference, all_pairs, postprocess):
    from .nets import count_parameters
    from .train import build_model

    models = [{"name": s.name, **s.config.to_dict(), "parameters": count_parameters(build_model(s.config))}
              for s in specs]
    atomic_write_text(path, json.dumps({"repeats": repeats, "fractions": list(fractions), "seed": seed,
                                        "reference": reference, "all_pairs": all_pairs,
                                        "postprocess": postprocess, "models": models}, indent=1) + "\n")


def format_summary(s: dict, metric: str, slices: int) -> str:
    """Mean ± SD (median), or a sentence when the metric has no value on any slice."""
    if s["n"] == 0:
        if metric == "precision" and slices:
            return f"undefined: no nerve predicted on any of the {slices} slices"
        return "undefined: no reference-positive slices"
    return f"{s['mean']:.3f} ± {s['sd']:.3f} ({s['median']:.3f})"


def comparison_pairs(names, reference: str | None = None, all_pairs: bool = False) -> list[tuple]:
    """The pairs tested: (reference, other) for each other model, or every pair."""
    if all_pairs:
        return list(itertools.combinations(names, 2))
    ref = reference or names[0]
    return [(ref, n) for n in names if n != ref]


def paired_wilcoxon(rows_a, rows_b, metric: str) -> dict:
    """Paired Wilcoxon signed-rank test of one metric on the slices both models have a value for."""
    from scipy.stats import wilcoxon

    key = lambda r: (r["split"], r["case"], r["side"], r["slice"])  # noqa: E731
    va = {key(r): r[metric] for r in rows_a if np.isfinite(r[metric])}
    vb = {key(r): r[metric] for r in rows_b if np.isfinite(r[metric])}
    common = sorted(set(va) & set(vb))
    x = np.array([va[k] for k in common], dtype=float)
    y = np.array([vb[k] for k in common], dtype=float)
    out = {"n_pairs": len(common), "median_difference": float(np.median(x - y)) if common else None,
           "statistic": None, "p": None, "note": ""}
    if not common:
        out["note"] = (f"no slice where both models have a {METRIC_NAMES[metric]} (precision needs a predicted "
                       "nerve)" if metric == "precision" else "no common slices")
    elif not np.any(x != y):
        out.update(p=1.0, note="equal on every paired slice")
    else:
        stat, p = wilcoxon(x, y)
        out.update(statistic=float(stat), p=float(p))
    return out


def write_reports(per_slice: dict, out_dir, progress: ProgressCallback | None = None, reference: str | None = None, all_pairs: bool = False) -> dict:
    """Tables 1 and 2, paired Wilcoxon tests of the four metrics with Bonferroni correction, box plots.

    Parameters
    ----------
    per_slice : dict
        Model name -> list of per-slice rows (``split``, ``case``, ``side``, ``slice`` and the
        four metrics; NaN where a metric is undefined).
    out_dir : path
    reference : str, optional
        The model compared with every other (default: the first); Bonferroni factor = the number
        of other models.
    all_pairs : bool
        Compare every pair; Bonferroni factor = the number of pairs.

    Returns
    -------
    dict
        ``table1``, ``table2``, ``comparisons`` (lists of rows as written).
    """
    out_dir = Path(out_dir)
    names = list(per_slice)
    if reference is not None and reference not in names:
        raise ValueError(f"reference {reference!r} is none of the models ({', '.join(names)})")
    t1, t2 = [], []
    for n in names:
        rows = per_slice[n]
        vals = {m: np.array([r[m] for r in rows], dtype=float) for m in METRICS}
        t1.append({"model": n, **{METRIC_NAMES[m]: format_summary(summarize(vals[m]), m, len(rows)) for m in METRICS},
                   "slices": len(rows), "slices with a prediction (precision)": summarize(vals["precision"])["n"]})
        fr = failure_rates(vals["dsc"])
        t2.append({"model": n, **({"complete failure (DSC = 0)": f"{fr['complete']:.1%}",
                                   "tracking failure (DSC < 0.2)": f"{fr['tracking']:.1%}",
                                   "boundary failure (DSC < 0.3)": f"{fr['boundary']:.1%}"} if fr["n"] else
                                  {"complete failure (DSC = 0)": "undefined: no reference-positive slices",
                                   "tracking failure (DSC < 0.2)": "", "boundary failure (DSC < 0.3)": ""}),
                   "slices": fr["n"]})
    pairs = comparison_pairs(names, reference, all_pairs)
    comps = []
    for metric in METRICS:
        for a, b in pairs:
            w = paired_wilcoxon(per_slice[a], per_slice[b], metric)
            comps.append({"metric": METRIC_NAMES[metric], "model_a": a, "model_b": b, "n_pairs": w["n_pairs"],
                          "median_difference_a_minus_b": _num(w["median_difference"]),
                          "wilcoxon_statistic": _num(w["statistic"]), "p": _num(w["p"], 4),
                          "bonferroni_factor": len(pairs),
                          "p_bonferroni": _num(None if w["p"] is None else min(1.0, w["p"] * len(pairs)), 4),
                          "note": w["note"]})
    how = ("every pair" if all_pairs else f"{reference or names[0]} against each other model") if names else ""
    _write_table(out_dir / "table1", t1, "Table 1: coronal-slice metrics, mean ± SD (median) over reference-"
                                         "positive slices of the test nerves (precision leaves out slices "
                                         "with no predicted nerve)")
    _write_table(out_dir / "table2", t2, "Table 2: cumulative failure rates over reference-positive slices")
    _write_table(out_dir / "comparisons", comps,
                 f"Paired Wilcoxon signed-rank tests on the same slices, {how}; p_bonferroni = p x the number of "
                 f"comparisons per metric ({len(pairs)}), at most 1")
    _write_csv(out_dir / "per_slice.csv", [{"model": n, **r} for n in names for r in per_slice[n]])
    for metric in ("dsc", "iou"):
        _boxplot(per_slice, metric, out_dir / f"{metric}_boxplot.png")
    report(progress, STAGE, message=f"wrote {out_dir}/table1.md, table2.md, comparisons.md, per_slice.csv, dsc_boxplot.png, iou_boxplot.png")
    return {"table1": t1, "table2": t2, "comparisons": comps}


def _num(v, digits=6):
    """A number as the tables print it; empty where the test could not be made."""
    if v is None:
        return ""
    return float(f"{v:.{digits}g}")


def _write_csv(path, rows):
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _write_table(stem: Path, rows, title):
    _write_csv(stem.with_suffix(".csv"), rows)
    if not rows:
        atomic_write_text(stem.with_suffix(".md"), f"{title}\n\n(no rows)\n")
        return
    cols = list(rows[0])
    md = [f"{title}\n", "| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    md += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    atomic_write_text(stem.with_suffix(".md"), "\n".join(md) + "\n")


def _boxplot(per_slice, metric, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_slice)
    data = [np.array([r[metric] for r in per_slice[n]], dtype=float) for n in names]
    data = [d[np.isfinite(d)] for d in data]
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2, 4))
    ax.boxplot(data, showmeans=True, meanprops={"marker": "x", "markeredgecolor": "k"})
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20 if len(names) > 4 else 0)
    ax.set_ylabel(f"coronal-slice {METRIC_NAMES[metric]}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{METRIC_NAMES[metric]} per reference-positive slice (x = mean)" if names else "")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
