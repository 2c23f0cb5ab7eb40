"""Evaluate a prediction against a reference volume: per-slice rows and per-nerve summaries."""
from __future__ import annotations

import csv
import io

import numpy as np

from .metrics import CATEGORY, SIDES, failure_rates, nerve_metrics, slice_metrics, slice_table_summary, summarize
from .volume import CORONAL_AXIS

#: Columns of the per-slice table (``ian evaluate --csv`` and the Review panel's export).
ROW_FIELDS = ["side", "slice", "tp", "fp", "fn", "dsc", "iou", "precision", "recall", "category", "status"]
#: Review status names, in the order of the codes the Review panel stores.
STATUS = ("unreviewed", "accepted", "corrected")


def slice_rows(metrics_by_label: dict, status: np.ndarray | None = None) -> list[dict]:
    """Every slice of every side as a table row (right first, then left; slices in order).

    Parameters
    ----------
    metrics_by_label : dict
        ``{label: SliceMetrics}`` for labels 1 (right) and 2 (left).
    status : (2, n) int array, optional
        Review status codes (see :data:`STATUS`) per side and slice; all unreviewed when omitted.
    """
    rows = []
    for label, name in SIDES.items():
        sm = metrics_by_label[label]
        for i in range(len(sm.tp)):
            rows.append({"side": name, "slice": i, "tp": int(sm.tp[i]), "fp": int(sm.fp[i]), "fn": int(sm.fn[i]),
                         "dsc": float(sm.dsc[i]), "iou": float(sm.iou[i]), "precision": float(sm.precision[i]),
                         "recall": float(sm.recall[i]), "category": CATEGORY[sm.category[i]],
                         "status": STATUS[int(status[label - 1, i])] if status is not None else STATUS[0]})
    return rows


def evaluate_volume(reference: np.ndarray, prediction: np.ndarray, spacing, axis: int = CORONAL_AXIS) -> dict:
    """Per-slice rows and, per side, Table 1/2 summaries plus 3D DSC, HD95 (mm), VS and slice F1."""
    if reference.shape != prediction.shape:
        raise ValueError(f"reference shape {reference.shape} differs from prediction shape {prediction.shape}")
    sides, by_label = {}, {}
    for label, name in SIDES.items():
        sm = by_label[label] = slice_metrics(reference, prediction, label, axis)
        summary = slice_table_summary(sm)
        summary.update(nerve_metrics(reference, prediction, label, spacing, axis))
        summary["_dsc_values"] = sm.dsc[sm.reference_positive]
        sides[name] = summary
    return {"rows": slice_rows(by_label), "sides": sides}


def table_csv(rows, columns) -> str:
    """The project's one CSV format: a header of ``columns``, one line per row (other keys
    ignored), floats with six decimals, an undefined value (NaN) as an empty field, ``\n`` line
    ends. Used by ``ian evaluate --csv`` and every panel export, so their files agree."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _cell(v) for k, v in r.items()})
    return buf.getvalue()


def _cell(v):
    if isinstance(v, (float, np.floating)):
        return f"{v:.6f}" if np.isfinite(v) else ""
    if isinstance(v, np.integer):
        return int(v)
    return v


def rows_to_csv(rows) -> str:
    """:func:`table_csv` of per-slice rows (:func:`slice_rows`) with :data:`ROW_FIELDS`."""
    return table_csv(rows, ROW_FIELDS)


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
