"""Patient-level Monte Carlo cross-validation of several models on the same splits (the paper's protocol).

For each of ``repeats`` random patient splits (default 10 x 70/15/15), every model is trained on
the training patients, early-stopped on the validation patients and tested on the test
patients. Per-slice DSC values (reference-positive coronal slices of every test nerve) are
pooled per model; models are compared on the same slices with the paired Wilcoxon signed-rank
test, Bonferroni-corrected over the comparisons made. Outputs: ``table1.md/.csv`` (DSC, IoU,
precision, recall as mean ± SD (median)), ``table2.md/.csv`` (cumulative failure rates),
``comparisons.csv`` and ``dsc_boxplot.png`` (like the paper's Fig. 4), plus ``per_slice.csv``.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import itertools
from pathlib import Path

import numpy as np

from .atomic import atomic_write_text
from .data import build_slices, load_case, patient_split, read_cases
from .evaluation import evaluate_volume
from .metrics import failure_rates, summarize
from .predict import predict_volume
from .train import TrainConfig, train_model


@dataclasses.dataclass
class ModelSpec:
    """A model to compare: a display name and its training settings."""

    name: str
    config: TrainConfig


def parse_model_spec(text: str, base: TrainConfig) -> ModelSpec:
    """``NAME=network[:json]`` or ``network`` -> ModelSpec, e.g. ``unet2d=unet:{"base":16}``."""
    import json

    name, _, rest = text.partition("=")
    if not rest:
        rest, name = name, name.split(":")[0]
    network, _, cfg_json = rest.partition(":")
    overrides = json.loads(cfg_json) if cfg_json else {}
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)} - {"network_config"}
    net_cfg = {k: v for k, v in overrides.items() if k not in train_keys}
    tr = {k: v for k, v in overrides.items() if k in train_keys}
    if "size" in tr:
        tr["size"] = tuple(tr["size"])
    if network == "unet" and not net_cfg:
        net_cfg = {"base": 16, "depth": 4}
    return ModelSpec(name, dataclasses.replace(base, network=network, network_config=net_cfg, **tr))


def run_cv(data_dir, specs, out_dir, repeats: int = 10, fractions=(0.7, 0.15, 0.15), seed: int = 0,
           log=print, cancel=None) -> dict:
    """Run the protocol; write the tables and figure into ``out_dir``; return the summaries."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = read_cases(data_dir)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must differ: {names}")
    per_slice = {n: [] for n in names}      # list of (split, case, side, slice, metrics...)
    for rep in range(repeats):
        tr_ids, va_ids, te_ids = patient_split([c.patient_id for c in cases], fractions, seed + rep)
        pick = lambda ids: [c for c in cases if c.patient_id in set(ids)]  # noqa: E731
        tr, va, te = pick(tr_ids), pick(va_ids), pick(te_ids)
        log(f"split {rep + 1}/{repeats}: {len(tr)} train / {len(va)} val / {len(te)} test cases")
        test_data = [(c, *load_case(c)) for c in te]
        for spec in specs:
            cfg = spec.config
            model, history, best = train_model(build_slices(tr, cfg.size, cfg.context),
                                               build_slices(va, cfg.size, cfg.context), cfg, cancel=cancel)
            meta = {"preprocessing": {"size": list(cfg.size), "context": cfg.context}}
            for c, image, labels in test_data:
                pred = predict_volume(image.data, model, meta, spacing=image.spacing)
                res = evaluate_volume(labels, pred.labels, image.spacing)
                for r in res["rows"]:
                    if r["tp"] + r["fn"] > 0:       # reference-positive slices: the paired unit
                        per_slice[spec.name].append({"split": rep, "case": c.case_id, **r})
            log(f"  {spec.name}: best epoch {best['epoch']} (val DSC {best['val_dsc']:.3f}), "
                f"{best['train_seconds']:.0f} s")
    return write_reports(per_slice, out_dir, log)


def write_reports(per_slice: dict, out_dir: Path, log=print) -> dict:
    """Tables 1 and 2, paired Wilcoxon tests with Bonferroni correction, and the box plot."""
    from scipy.stats import wilcoxon

    names = list(per_slice)
    t1, t2 = [], []
    for n in names:
        rows = per_slice[n]
        vals = {m: np.array([r[m] for r in rows], dtype=float) for m in ("dsc", "iou", "precision", "recall")}
        s = {m: summarize(v) for m, v in vals.items()}
        t1.append({"model": n, **{m: f"{s[m]['mean']:.3f} ± {s[m]['sd']:.3f} ({s[m]['median']:.3f})" for m in s},
                   "slices": s["dsc"]["n"], "precision_n": s["precision"]["n"]})
        fr = failure_rates(vals["dsc"])
        t2.append({"model": n, "complete failure (DSC = 0)": f"{fr['complete']:.1%}",
                   "tracking failure (DSC < 0.2)": f"{fr['tracking']:.1%}",
                   "boundary failure (DSC < 0.3)": f"{fr['boundary']:.1%}", "slices": fr["n"]})
    pairs = list(itertools.combinations(names, 2))
    comps = []
    for a, b in pairs:
        key = lambda r: (r["split"], r["case"], r["side"], r["slice"])  # noqa: E731
        da = {key(r): r["dsc"] for r in per_slice[a]}
        db = {key(r): r["dsc"] for r in per_slice[b]}
        common = sorted(set(da) & set(db))
        x = np.array([da[k] for k in common])
        y = np.array([db[k] for k in common])
        if len(common) and np.any(x != y):
            stat, p = wilcoxon(x, y)
        else:
            stat, p = float("nan"), 1.0
        comps.append({"model_a": a, "model_b": b, "n_pairs": len(common),
                      "median_dsc_difference": float(np.median(x - y)) if len(common) else float("nan"),
                      "wilcoxon_statistic": float(stat), "p": float(p),
                      "p_bonferroni": float(min(1.0, p * len(pairs)))})
    _write_table(out_dir / "table1", t1, "Table 1: coronal-slice metrics, mean ± SD (median) over reference-"
                                         "positive slices of the test nerves (precision leaves out empty predictions)")
    _write_table(out_dir / "table2", t2, "Table 2: cumulative failure rates over reference-positive slices")
    _write_csv(out_dir / "comparisons.csv", comps)
    _write_csv(out_dir / "per_slice.csv", [{"model": n, **r} for n in names for r in per_slice[n]])
    _boxplot(per_slice, out_dir / "dsc_boxplot.png")
    log(f"wrote {out_dir}/table1.md, table2.md, comparisons.csv, per_slice.csv, dsc_boxplot.png")
    return {"table1": t1, "table2": t2, "comparisons": comps}


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


def _boxplot(per_slice, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_slice)
    data = [np.array([r["dsc"] for r in per_slice[n]], dtype=float) for n in names]
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 4))
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_ylabel("coronal-slice DSC")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("DSC per reference-positive slice (phantom data)" if names else "")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    from .atomic import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue())
