"""Evaluate a prediction against a reference volume: per-slice rows and per-nerve summaries."""
from __future__ import annotations

import csv
import io

import numpy as np

from .metrics import CATEGORY, SIDES, failure_rates, nerve_metrics, slice_metrics, slice_table_summary, summarize
from .volume import CORONAL_AXIS

ROW_FIELDS = ["side", "slice", "tp", "fp", "fn", "dsc", "iou", "precision", "recall", "category"]


def evaluate_volume(reference: np.ndarray, prediction: np.ndarray, spacing, axis: int = CORONAL_AXIS) -> dict:
    """Per-slice rows and, per side, Table 1/2 summaries plus 3D DSC, HD95 (mm), VS and slice F1."""
    if reference.shape != prediction.shape:
        raise ValueError(f"reference shape {reference.shape} differs from prediction shape {prediction.shape}")
    rows, sides = [], {}
    for label, name in SIDES.items():
        sm = slice_metrics(reference, prediction, label, axis)
        for i in range(len(sm.tp)):
            rows.append({"side": name, "slice": i, "tp": int(sm.tp[i]), "fp": int(sm.fp[i]), "fn": int(sm.fn[i]),
                         "dsc": sm.dsc[i], "iou": sm.iou[i], "precision": sm.precision[i],
                         "recall": sm.recall[i], "category": CATEGORY[sm.category[i]]})
        summary = slice_table_summary(sm)
        summary.update(nerve_metrics(reference, prediction, label, spacing, axis))
        summary["_dsc_values"] = sm.dsc[sm.reference_positive]
        sides[name] = summary
    return {"rows": rows, "sides": sides}


def rows_to_csv(rows) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=ROW_FIELDS)
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6f}" if isinstance(v, float) and np.isfinite(v) else ("" if isinstance(v, float) else v))
                    for k, v in r.items()})
    return buf.getvalue()


def format_summary(result: dict) -> str:
    """Human-readable summary: mean ± SD (median) per metric and failure rates, per side."""
    lines = []
    for side, s in result["sides"].items():
        if s["reference_positive_slices"] == 0 and s["false_positive_slices"] == 0:
            lines.append(f"{side} IAN: empty in reference and prediction")
            continue
        lines.append(f"{side} IAN: {s['reference_positive_slices']} reference slices, "
                     f"{s['false_positive_slices']} false-positive slices, {s['true_negative_slices']} true-negative")
        for m in ("dsc", "iou", "precision", "recall"):
            v = s[m]
            note = " (empty predictions left out)" if m == "precision" else ""
            lines.append(f"  {m:<9} {v['mean']:.3f} ± {v['sd']:.3f} ({v['median']:.3f}), n={v['n']}{note}")
        fr = s["failure_rates"]
        lines.append(f"  failures: complete {fr['complete']:.1%}, tracking {fr['tracking']:.1%}, "
                     f"boundary {fr['boundary']:.1%} (cumulative, DSC = 0 / < 0.2 / < 0.3)")
        lines.append(f"  3D: DSC {s['dsc_3d']:.3f}, HD95 {s['hd95_mm']:.2f} mm, VS {s['volumetric_similarity']:.3f}, "
                     f"slice-detection F1 {s['slice_detection_f1']:.3f}")
    return "\n".join(lines)


def pooled_summary(results) -> dict:
    """Pool the reference-positive slice DSCs of many nerves (a test set) into one summary."""
    d = np.concatenate([s["_dsc_values"] for r in results for s in r["sides"].values()]) if results else np.array([])
    return {"dsc": summarize(d), "failure_rates": failure_rates(d), "n_slices": int(d.size)}
