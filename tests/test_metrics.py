"""The metric definitions of docs/definitions.md on masks with known per-slice results."""
from __future__ import annotations

import numpy as np
import pytest

from napari_ian.trainer.metrics import (CATEGORY, dice_3d, failure_rates, hd95_mm, nerve_metrics,
                                        slice_detection_f1, slice_metrics, slice_table_summary,
                                        summarize, volumetric_similarity)


def _case():
    """Six coronal slices of one side (label 1), each built for one category."""
    ref = np.zeros((6, 10, 20), np.uint8)
    pred = np.zeros_like(ref)
    # 0: true-negative slice (both empty)
    # 1: false-positive slice
    pred[1, 2, 0:4] = 1
    # 2: complete failure (reference, empty prediction)
    ref[2, 5, 0:10] = 1
    # 3: tracking failure: TP 1, FP 0, FN 9 -> DSC 2/11 = 0.1818
    ref[3, 5, 0:10] = 1
    pred[3, 5, 0:1] = 1
    # 4: boundary failure: TP 2, FN 8 -> DSC 4/12 = 0.333 (pass) -> use TP 3, FP 10, FN 7
    ref[4, 5, 0:10] = 1
    pred[4, 5, 7:20] = 1  # TP 3 (7,8,9), FP 10, FN 7 -> DSC 6/23 = 0.2609
    # 5: pass: identical
    ref[5, 3, 2:8] = 1
    pred[5, 3, 2:8] = 1
    return ref, pred


def test_per_slice_values_and_categories():
    ref, pred = _case()
    sm = slice_metrics(ref, pred, 1)
    names = [CATEGORY[c] for c in sm.category]
    assert names == ["true-negative slice", "false-positive slice", "complete failure",
                     "tracking failure", "boundary failure", "pass"]
    assert np.isnan(sm.dsc[0]) and sm.dsc[1] == 0 and sm.dsc[2] == 0
    assert sm.dsc[3] == pytest.approx(2 / 11)
    assert sm.dsc[4] == pytest.approx(6 / 23)
    assert sm.iou[4] == pytest.approx(3 / 20)
    assert sm.precision[4] == pytest.approx(3 / 13) and sm.recall[4] == pytest.approx(3 / 10)
    assert np.isnan(sm.precision[2])          # empty prediction: precision undefined
    assert sm.dsc[5] == 1.0


def test_summary_excludes_empty_slices_and_gives_cumulative_failure_rates():
    ref, pred = _case()
    s = slice_table_summary(slice_metrics(ref, pred, 1))
    assert s["reference_positive_slices"] == 4
    assert s["true_negative_slices"] == 1 and s["false_positive_slices"] == 1
    dsc = [0, 2 / 11, 6 / 23, 1.0]
    assert s["dsc"]["mean"] == pytest.approx(np.mean(dsc))
    assert s["dsc"]["sd"] == pytest.approx(np.std(dsc, ddof=1))
    assert s["dsc"]["median"] == pytest.approx(np.median(dsc))
    assert s["precision"]["n"] == 3           # the complete failure has no precision
    fr = s["failure_rates"]
    assert (fr["complete"], fr["tracking"], fr["boundary"]) == (0.25, 0.5, 0.75)


def test_other_side_and_axis():
    ref, pred = _case()
    sm2 = slice_metrics(ref * 2, pred * 2, 2)
    np.testing.assert_array_equal(sm2.category, slice_metrics(ref, pred, 1).category)
    assert slice_metrics(ref, pred, 2).reference_positive.sum() == 0
    # along another axis the slices are different
    assert slice_metrics(ref, pred, 1, axis=1).tp.shape == (10,)


def test_3d_nerve_numbers():
    ref = np.zeros((20, 20, 20), bool)
    ref[5:15, 8:12, 8:12] = True
    pred = np.roll(ref, 2, axis=0)           # shifted 2 voxels along AP
    spacing = (0.8, 1.6, 0.43)
    assert dice_3d(ref, pred) == pytest.approx(2 * 8 * 16 / (2 * 160))
    assert volumetric_similarity(ref, pred) == 1.0
    assert volumetric_similarity(ref, np.zeros_like(ref)) == 0.0
    assert hd95_mm(ref, pred, spacing) == pytest.approx(2 * 0.8, abs=1e-4)
    assert np.isnan(hd95_mm(ref, np.zeros_like(ref), spacing))
    sm = slice_metrics(ref.astype(np.uint8), pred.astype(np.uint8), 1)
    # SP = 8 slices (7..14), FP slices 15,16, FN slices 5,6
    assert slice_detection_f1(sm) == pytest.approx(16 / (16 + 2 + 2))
    m = nerve_metrics(ref.astype(np.uint8), pred.astype(np.uint8), 1, spacing)
    assert m["hd95_mm"] == pytest.approx(1.6, abs=1e-4)


def test_hd95_agrees_with_monai_on_random_shapes():
    """Our scipy HD95 is MONAI's definition: same numbers on blobs, shifts, specks and border contact."""
    torch = pytest.importorskip("torch")  # noqa: F841
    monai_metrics = pytest.importorskip("monai.metrics")
    from scipy import ndimage as ndi

    rng = np.random.default_rng(3)
    for k in range(8):
        shape = (24, 20, 30)
        ref = ndi.gaussian_filter(rng.random(shape), 2) > 0.52
        pred = ndi.gaussian_filter(rng.random(shape), 2) > 0.52 if k % 2 else np.roll(ref, k + 1, axis=k % 3)
        if k == 2:
            pred[:] = False
            pred[0, 0, 0] = True          # a single-voxel prediction in a corner
        if k == 4:
            ref[:, :, 0] = True           # touching the volume's border
        spacing = (0.8, 1.6, 0.43) if k % 3 else (1.0, 1.0, 1.0)
        want = monai_metrics.compute_hausdorff_distance(
            torch.from_numpy(pred[None, None].astype(np.float32)), torch.from_numpy(ref[None, None].astype(np.float32)),
            include_background=True, percentile=95, spacing=list(spacing)).item()
        assert hd95_mm(ref, pred, spacing) == pytest.approx(want, abs=1e-4), k


def test_helpers_on_edge_cases():
    assert summarize([np.nan])["n"] == 0
    assert failure_rates([])["n"] == 0
    with pytest.raises(ValueError, match="differs"):
        slice_metrics(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)), 1)
