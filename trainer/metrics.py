"""Evaluation metrics (defined in docs/definitions.md), vectorised over slices: one module for the CLI and the plugin.

Slice-wise numbers compare a reference mask R with a prediction P, per side (label 1 = right
IAN, 2 = left IAN), on slices along one axis (coronal, axis 0, by default):

* per slice: TP, FP, FN; DSC = 2TP/(2TP+FP+FN); IoU = TP/(TP+FP+FN); precision = TP/(TP+FP);
  recall = TP/(TP+FN);
* a slice where R and P are both empty is a *true-negative slice*: counted, left out of every
  mean; R empty and P not is a *false-positive slice* (DSC 0), counted separately and also left
  out of the means, which are over reference-positive slices; R not empty and P empty has DSC 0
  (a complete failure); the precision of an empty P is undefined and left out of the precision
  mean (``n_precision`` says how many slices it is over);
* failure categories over reference-positive slices, with the paper's cumulative thresholds:
  complete failure DSC = 0, tracking failure DSC < 0.2, boundary-delineation failure DSC < 0.3.
  :func:`failure_rates` reports the cumulative rates (as the paper's Table 2);
  :data:`CATEGORY` names the exclusive per-slice category a reviewer sees.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage as ndi

from .volume import CORONAL_AXIS, SIDES  # noqa: F401  (SIDES re-exported: label -> side name)
TRACKING_THRESHOLD = 0.2
BOUNDARY_THRESHOLD = 0.3
# exclusive per-slice categories
CATEGORY = ("true-negative slice", "false-positive slice", "complete failure", "tracking failure",
            "boundary failure", "pass")


@dataclasses.dataclass
class SliceMetrics:
    """Per-slice counts and scores for one side; arrays of length n_slices (NaN where undefined)."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    dsc: np.ndarray
    iou: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    category: np.ndarray  # int index into CATEGORY

    @property
    def reference_positive(self) -> np.ndarray:
        return (self.tp + self.fn) > 0


def label_slice_counts(reference: np.ndarray, prediction: np.ndarray, axis: int = CORONAL_AXIS,
                       labels=tuple(SIDES)) -> dict:
    """``{label: (tp, fp, fn)}`` voxel counts per slice along ``axis``: the one counting kernel.

    Nerves fill well under 1 % of a volume, so the counts are built from the indices of the
    voxels labelled in either mask (one pass to find them) instead of full-volume masks per label.
    """
    if reference.shape != prediction.shape:
        raise ValueError(f"reference shape {reference.shape} differs from prediction shape {prediction.shape}")
    ref = np.moveaxis(np.asarray(reference), axis, 0)
    pred = np.moveaxis(np.asarray(prediction), axis, 0)
    n = ref.shape[0]
    per_slice = int(np.prod(ref.shape[1:]))
    # a moved axis needs one contiguous copy each (still far cheaper than per-label masks)
    r_flat, p_flat = np.ascontiguousarray(ref).reshape(-1), np.ascontiguousarray(pred).reshape(-1)
    idx = np.flatnonzero((r_flat != 0) | (p_flat != 0))
    s = idx // per_slice
    r, p = r_flat[idx], p_flat[idx]
    out = {}
    for lab in labels:
        rl, pl = r == lab, p == lab
        out[lab] = (np.bincount(s[rl & pl], minlength=n), np.bincount(s[~rl & pl], minlength=n),
                    np.bincount(s[rl & ~pl], minlength=n))
    return out


def slice_counts(reference: np.ndarray, prediction: np.ndarray, label: int, axis: int = CORONAL_AXIS):
    """TP, FP, FN voxel counts per slice along ``axis`` for one label value."""
    return label_slice_counts(reference, prediction, axis, (label,))[label]


def metrics_from_counts(tp, fp, fn) -> SliceMetrics:
    """Scores and categories from per-slice counts (the empty-slice policy of docs/definitions.md)."""
    tp, fp, fn = (np.asarray(a, dtype=np.int64) for a in (tp, fp, fn))
    ref_pos = (tp + fn) > 0
    pred_pos = (tp + fp) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        dsc = np.where(ref_pos | pred_pos, 2 * tp / (2 * tp + fp + fn), np.nan)
        iou = np.where(ref_pos | pred_pos, tp / (tp + fp + fn), np.nan)
        precision = np.where(pred_pos, tp / (tp + fp), np.nan)
        recall = np.where(ref_pos, tp / (tp + fn), np.nan)
    cat = np.full(tp.shape, CATEGORY.index("true-negative slice"), dtype=np.int8)
    cat[~ref_pos & pred_pos] = CATEGORY.index("false-positive slice")
    d = np.nan_to_num(dsc)
    cat[ref_pos & (d == 0)] = CATEGORY.index("complete failure")
    cat[ref_pos & (d > 0) & (d < TRACKING_THRESHOLD)] = CATEGORY.index("tracking failure")
    cat[ref_pos & (d >= TRACKING_THRESHOLD) & (d < BOUNDARY_THRESHOLD)] = CATEGORY.index("boundary failure")
    cat[ref_pos & (d >= BOUNDARY_THRESHOLD)] = CATEGORY.index("pass")
    return SliceMetrics(tp, fp, fn, dsc, iou, precision, recall, cat)


def slice_metrics(reference, prediction, label: int, axis: int = CORONAL_AXIS) -> SliceMetrics:
    """Per-slice DSC, IoU, precision, recall and category for one side."""
    return metrics_from_counts(*slice_counts(reference, prediction, label, axis))


def summarize(values) -> dict:
    """Mean ± SD (median) and n of the finite values (the paper's Table 1 format)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": np.nan, "sd": np.nan, "median": np.nan, "n": 0}
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "median": float(np.median(v)), "n": int(v.size)}


def failure_rates(dsc_reference_positive) -> dict:
    """Cumulative failure rates over reference-positive slices (the paper's Table 2)."""
    d = np.asarray(dsc_reference_positive, dtype=float)
    n = d.size
    if n == 0:
        return {"complete": np.nan, "tracking": np.nan, "boundary": np.nan, "n": 0}
    return {"complete": float(np.mean(d == 0)), "tracking": float(np.mean(d < TRACKING_THRESHOLD)),
            "boundary": float(np.mean(d < BOUNDARY_THRESHOLD)), "n": int(n)}


def slice_table_summary(sm: SliceMetrics) -> dict:
    """Table 1 and Table 2 numbers for one side (or pooled counts) of one case."""
    rp = sm.reference_positive
    out = {name: summarize(getattr(sm, name)[rp]) for name in ("dsc", "iou", "recall")}
    out["precision"] = summarize(sm.precision[rp])  # empty predictions are NaN: left out
    out["failure_rates"] = failure_rates(sm.dsc[rp])
    out["true_negative_slices"] = int(np.sum(sm.category == CATEGORY.index("true-negative slice")))
    out["false_positive_slices"] = int(np.sum(sm.category == CATEGORY.index("false-positive slice")))
    out["reference_positive_slices"] = int(rp.sum())
    return out


def dice_3d(reference_mask, prediction_mask) -> float:
    """Volume DSC of two binary masks (NaN when both are empty)."""
    r, p = np.asarray(reference_mask, bool), np.asarray(prediction_mask, bool)
    denom = r.sum() + p.sum()
    return float(2 * np.logical_and(r, p).sum() / denom) if denom else float("nan")


def volumetric_similarity(reference_mask, prediction_mask) -> float:
    """1 - |V_P - V_R| / (V_P + V_R) (NaN when both are empty)."""
    vr, vp = float(np.count_nonzero(reference_mask)), float(np.count_nonzero(prediction_mask))
    return 1.0 - abs(vp - vr) / (vp + vr) if (vp + vr) else float("nan")


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a 6-connected neighbour outside it (outside the array counts)."""
    mask = np.asarray(mask, bool)
    return mask & ~ndi.binary_erosion(mask, border_value=0)


def hd95_mm(reference_mask, prediction_mask, spacing) -> float:
    """95th-percentile symmetric Hausdorff distance in mm between the two masks' surfaces.

    Surface voxels are those with a 6-connected neighbour outside the mask; each direction takes the
    95th percentile of the distances (in mm, with ``spacing``) from one surface's voxels to the
    other surface, and the larger of the two is returned. This is MONAI's
    ``compute_hausdorff_distance(percentile=95)`` definition (a test checks they agree), computed
    with scipy on the masks' bounding box so it needs no torch and takes milliseconds.

    Parameters
    ----------
    reference_mask, prediction_mask : ndarray of bool
        Same-shape 3D masks.
    spacing : sequence of float
        Voxel size in mm per axis.

    Returns
    -------
    float
        HD95 in mm; NaN when either mask is empty (the distance is undefined).
    """
    r, p = np.asarray(reference_mask, bool), np.asarray(prediction_mask, bool)
    if not r.any() or not p.any():
        return float("nan")
    # a one-voxel margin around both masks keeps every distance exact and the transforms small
    box = ndi.find_objects((r | p).astype(np.uint8))[0]
    box = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box)
    sr, sp = surface_voxels(r[box]), surface_voxels(p[box])
    spacing = [float(s) for s in spacing]
    to_ref = ndi.distance_transform_edt(~sr, sampling=spacing)[sp]
    to_pred = ndi.distance_transform_edt(~sp, sampling=spacing)[sr]
    return float(max(np.percentile(to_ref, 95), np.percentile(to_pred, 95)))


def slice_detection_f1(sm: SliceMetrics) -> float:
    """2 SP / (2 SP + FP slices + FN slices), SP = slices where both R and P hold the nerve."""
    ref_pos = sm.reference_positive
    pred_pos = (sm.tp + sm.fp) > 0
    sp = np.sum(ref_pos & pred_pos)
    fp = np.sum(~ref_pos & pred_pos)
    fn = np.sum(ref_pos & ~pred_pos)
    denom = 2 * sp + fp + fn
    return float(2 * sp / denom) if denom else float("nan")


def nerve_metrics(reference, prediction, label: int, spacing, axis: int = CORONAL_AXIS) -> dict:
    """Per-nerve 3D numbers: DSC, HD95 (mm), volumetric similarity, slice-detection F1."""
    r, p = np.asarray(reference) == label, np.asarray(prediction) == label
    sm = slice_metrics(reference, prediction, label, axis)
    return {"dsc_3d": dice_3d(r, p), "hd95_mm": hd95_mm(r, p, spacing),
            "volumetric_similarity": volumetric_similarity(r, p),
            "slice_detection_f1": slice_detection_f1(sm)}
