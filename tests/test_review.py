"""Per-slice review: categories, incremental updates, label-free warnings, measurements, status."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from napari_ian.trainer.evaluation import rows_to_csv
from napari_ian.trainer.metrics import CATEGORY, slice_metrics
from napari_ian.trainer.review import (SliceReview, WarningSettings, label_free_warnings, measurements_by_region,
                                       nerve_measurements, new_status, status_from_json, status_to_json,
                                       touched_slices)


def _known_case():
    """Reference and prediction with one slice of every category on the right side (label 1).

    The reference holds a 10-voxel line per nerve slice; the prediction covers ``a`` of them and
    adds ``b`` voxels outside, so DSC = 2a / (a + b + 10).
    """
    ref = np.zeros((8, 6, 30), np.uint8)
    pred = np.zeros_like(ref)
    plan = {  # slice: (reference present, a, b, expected DSC, category)
        0: (False, 0, 0, np.nan, "true-negative slice"),
        1: (False, 0, 3, 0.0, "false-positive slice"),
        2: (True, 0, 0, 0.0, "complete failure"),
        3: (True, 1, 0, 2 / 11, "tracking failure"),
        4: (True, 2, 4, 4 / 16, "boundary failure"),
        5: (True, 8, 0, 16 / 18, "pass"),
        6: (True, 10, 0, 1.0, "pass"),
    }
    for i, (present, a, b, _, _) in plan.items():
        if present:
            ref[i, 2, 0:10] = 1
        pred[i, 2, 0:a] = 1
        pred[i, 4, 0:b] = 1
    ref[3, 2, 20:25] = 2          # a left nerve on one slice, fully found
    pred[3, 2, 20:25] = 2
    return ref, pred, plan


def test_every_category_with_known_dsc_in_the_table_and_the_csv():
    ref, pred, plan = _known_case()
    rv = SliceReview(ref, pred)
    rows = {(r["slice"], r["side"]): r for r in rv.rows()}
    for i, (_present, _a, _b, dsc, cat) in plan.items():
        if cat == "true-negative slice":
            assert (i, "right") not in rows          # counted, not listed
            assert rv.metrics(1).category[i] == CATEGORY.index(cat)
            continue
        assert rows[(i, "right")]["category"] == cat
        assert rows[(i, "right")]["dsc"] == pytest.approx(dsc)
    assert rows[(3, "left")]["category"] == "pass" and rows[(3, "left")]["dsc"] == 1.0
    assert rv.metrics(1).category[7] == CATEGORY.index("true-negative slice")
    assert list(rv.flagged()) == [1, 2, 3, 4]
    # the same numbers as `ian evaluate` (metrics.slice_metrics)
    sm = slice_metrics(ref, pred, 1)
    np.testing.assert_array_equal(np.nan_to_num(rv.metrics(1).dsc, nan=-1), np.nan_to_num(sm.dsc, nan=-1))
    parsed = list(csv.DictReader(io.StringIO(rows_to_csv(rv.table_rows()))))
    assert len(parsed) == 2 * ref.shape[0]
    by = {(int(r["slice"]), r["side"]): r for r in parsed}
    assert by[(4, "right")]["category"] == "boundary failure" and float(by[(4, "right")]["dsc"]) == pytest.approx(0.25)
    assert by[(2, "right")]["precision"] == ""          # an empty prediction has no precision
    assert by[(4, "right")]["status"] == "unreviewed"
    s = rv.summary()["right"]
    assert s["failure_rates"]["n"] == 5 and s["failure_rates"]["complete"] == pytest.approx(1 / 5)
    assert s["false_positive_slices"] == 1 and s["true_negative_slices"] == 2


def test_updating_touched_slices_equals_a_full_recompute():
    rng = np.random.default_rng(0)
    ref = (rng.random((40, 20, 30)) > 0.97).astype(np.uint8) * rng.integers(1, 3, (40, 20, 30)).astype(np.uint8)
    pred = ref.copy()
    rv = SliceReview(ref, pred)
    before = rv.metrics(1).dsc.copy()
    pred[10:13, 5:9, 5:9] = 1                     # an edit on slices 10-12
    pred[30, :, :] = 0
    assert list(rv.update_slices([10, 11, 12, 30])) == [10, 11, 12, 30]
    full = SliceReview(ref, pred)
    for lab in (1, 2):
        np.testing.assert_array_equal(np.nan_to_num(rv.metrics(lab).dsc), np.nan_to_num(full.metrics(lab).dsc))
    changed = np.flatnonzero(np.nan_to_num(before, nan=-1) != np.nan_to_num(rv.metrics(1).dsc, nan=-1))
    assert set(changed) <= {10, 11, 12, 30}


def test_touched_slices_from_napari_paint_atoms():
    class Masked:
        slice_key = (slice(4, 7), slice(0, 3), slice(1, 2))

    atoms = [((np.array([3, 3, 9]), np.array([0, 1, 2]), np.array([1, 1, 1])), np.zeros(3), 1), Masked()]
    assert list(touched_slices(atoms)) == [3, 4, 5, 6, 9]
    assert touched_slices([object()]) is None


def test_review_refuses_mismatched_or_2d_input():
    with pytest.raises(ValueError, match="differ"):
        SliceReview(np.zeros((3, 4, 5)), np.zeros((3, 4, 6)))
    with pytest.raises(ValueError, match="3D"):
        SliceReview(np.zeros((4, 5)), np.zeros((4, 5)))


def test_warnings_are_silent_on_the_ground_truth_and_fire_on_a_planted_gap_and_jump(phantom):
    _image, truth, spacing, _info = phantom
    assert label_free_warnings(truth, spacing) == []
    bad = truth.copy()
    has = np.flatnonzero((bad == 1).any(axis=(1, 2)))
    gap = has[len(has) // 3: len(has) // 3 + 2]
    section = bad[gap[0]:gap[-1] + 1]                          # a view: the right nerve removed there
    section[section == 1] = 0
    j = has[2 * len(has) // 3]
    moved = np.where(bad[j:] == 1, 0, bad[j:])
    shift = int(np.ceil(6.0 / spacing[2]))                     # 6 mm to the side from slice j on
    moved[:, :, shift:][(bad[j:, :, :-shift] == 1)] = 1
    bad[j:] = moved
    warnings = label_free_warnings(bad, spacing)
    kinds = {(w["slice"], w["side"], w["kind"]) for w in warnings}
    assert {(int(g), "right", "gap") for g in gap} <= kinds
    assert (int(j), "right", "jump") in kinds
    assert not any(w["side"] == "left" for w in warnings)
    # a stray blob away from the nerve, and a low probability
    blob = truth.copy()
    blob[5:7, 5:8, 5:8] = 2
    assert any(w["kind"] == "stray piece" and w["side"] == "left" for w in label_free_warnings(blob, spacing))
    prob = (truth > 0) * 0.4
    assert any(w["kind"] == "low probability" for w in label_free_warnings(truth, spacing, probability=prob))
    tight = WarningSettings(max_area_mm2=2.0)
    assert any(w["kind"] == "area" for w in label_free_warnings(truth, spacing, settings=tight))


def test_measurements_along_a_straight_nerve():
    sp = (0.8, 1.6, 0.4)
    lab = np.zeros((30, 20, 40), np.uint8)
    lab[5:25, 8:10, 10:15] = 1                    # 2 x 5 voxels = 3.2 x 2.0 mm -> 6.4 mm²
    img = np.zeros(lab.shape, np.float32)
    img[lab == 1] = 2.0
    img[10, 8, 10] = 5.0
    rows = nerve_measurements(lab, img, sp)
    assert [r["slice"] for r in rows] == list(range(5, 25))
    assert all(r["area_mm2"] == pytest.approx(6.4) for r in rows)
    assert rows[-1]["distance_mm"] == pytest.approx(19 * 0.8)
    assert rows[5]["max_signal"] == 5.0 and rows[0]["mean_signal"] == 2.0
    reg = measurements_by_region(rows, marker_slice=10)["right"]
    assert reg["anterior (loop / mental foramen)"]["slices"] == 5 and reg["posterior (canal)"]["slices"] == 15


def test_review_status_round_trip():
    st = new_status(12)
    st[0, 3], st[1, 4] = 1, 2
    back = status_from_json(status_to_json(st), 12)
    np.testing.assert_array_equal(back, st)
    with pytest.raises(ValueError, match="covers 12 slices"):
        status_from_json(status_to_json(st), 13)
