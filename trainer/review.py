"""Per-slice review of a prediction: with a reference (the metrics of docs/definitions.md) or without one (warnings).

Everything here takes arrays and returns arrays or plain records, so the review panel, the CLI
and tests share one implementation; the scores come from :mod:`.metrics`, the same code as
``ian evaluate``.

* :class:`SliceReview` keeps per-slice TP/FP/FN counts of both sides and recomputes only the
  slices an edit touched (a brush stroke touches a handful of the ~250 coronal slices).
* :func:`label_free_warnings` flags likely failures from the prediction alone.
* :func:`nerve_measurements` gives area, signal and distance along the nerve per slice.
* Review status per slice and side (unreviewed / accepted / corrected) is a small int8 array,
  saved with the case's workspace by :func:`save_status` / :func:`load_status`.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
from scipy import ndimage

from .evaluation import STATUS, slice_rows
from .metrics import CATEGORY, SIDES, label_slice_counts, metrics_from_counts, slice_table_summary

FLAGGED = tuple(CATEGORY.index(c) for c in ("complete failure", "tracking failure", "boundary failure",
                                              "false-positive slice"))


class SliceReview:
    """Per-slice metrics of a prediction against a reference, kept current under edits.

    Parameters
    ----------
    reference, prediction : ndarray
        Label volumes of the same shape (0 background, 1 right IAN, 2 left IAN).
    axis : int
        The slice axis (0 = coronal in the canonical orientation).
    """

    def __init__(self, reference: np.ndarray, prediction: np.ndarray, axis: int = 0):
        if np.shape(reference) != np.shape(prediction):
            raise ValueError(f"reference shape {np.shape(reference)} and prediction shape "
                             f"{np.shape(prediction)} differ")
        if np.ndim(reference) != 3:
            raise ValueError(f"review needs 3D label volumes, got {np.ndim(reference)}D")
        self.reference = reference
        self.prediction = prediction
        self.axis = int(axis)
        self.n = int(np.shape(reference)[self.axis])
        self.recompute()

    def recompute(self) -> None:
        """All slices from scratch."""
        c = label_slice_counts(self.reference, self.prediction, self.axis)
        self._counts = {lab: [a.astype(np.int64) for a in v] for lab, v in c.items()}

    def update_slices(self, slices) -> np.ndarray:
        """Recompute only ``slices`` (indices along the axis); returns the sorted indices updated."""
        sl = np.unique(np.asarray(list(slices), dtype=int))
        sl = sl[(sl >= 0) & (sl < self.n)]
        if not sl.size:
            return sl
        ref = np.take(np.asarray(self.reference), sl, axis=self.axis)
        pred = np.take(np.asarray(self.prediction), sl, axis=self.axis)
        c = label_slice_counts(ref, pred, self.axis)
        for lab, (tp, fp, fn) in c.items():
            for arr, new in zip(self._counts[lab], (tp, fp, fn)):
                arr[sl] = new
        return sl

    def metrics(self, label: int):
        """:class:`~napari_ian.trainer.metrics.SliceMetrics` of one side."""
        return metrics_from_counts(*self._counts[label])

    def rows(self) -> list[dict]:
        """One record per slice and side that holds nerve in either mask (true negatives left out),
        in slice order, each with its ``label``: :meth:`table_rows` filtered for the panel's table."""
        label_of = {side: lab for lab, side in SIDES.items()}
        out = [{**r, "label": label_of[r["side"]]} for r in self.table_rows()
               if r["category"] != "true-negative slice"]
        return sorted(out, key=lambda r: (r["slice"], r["label"]))

    def table_rows(self, status: np.ndarray | None = None) -> list[dict]:
        """Every slice of both sides in ``ian evaluate``'s row format, with review ``status``
        (see :func:`~napari_ian.trainer.evaluation.slice_rows`)."""
        return slice_rows({lab: self.metrics(lab) for lab in SIDES}, status)

    def categories(self) -> np.ndarray:
        """(2, n) category index per side (row 0 right, row 1 left) and slice."""
        return np.stack([self.metrics(lab).category for lab in SIDES])

    def flagged(self) -> np.ndarray:
        """Sorted slice indices where either side is a failure or a false-positive slice."""
        return np.flatnonzero(np.isin(self.categories(), FLAGGED).any(axis=0))

    def summary(self) -> dict:
        """Per side: the paper's Table 1 and 2 numbers for this case (see ``slice_table_summary``)."""
        return {SIDES[lab]: slice_table_summary(self.metrics(lab)) for lab in SIDES}


def touched_slices(atoms, axis: int = 0) -> np.ndarray | None:
    """Slice indices a napari Labels paint event changed, or None when they cannot be told.

    ``atoms`` is the event's value: tuples ``(indices, old, new)`` from ``data_setitem`` or
    records with a ``slice_key`` (napari's masked brush edits).
    """
    out = []
    for atom in atoms or []:
        key = getattr(atom, "slice_key", None)
        if key is not None:
            s = key[axis]
            out.append(np.arange(s.start or 0, s.stop))
        elif isinstance(atom, tuple) and len(atom) == 3 and isinstance(atom[0], tuple):
            out.append(np.unique(np.asarray(atom[0][axis])))
        else:
            return None
    return np.unique(np.concatenate(out)) if out else np.empty(0, int)


# -- without a reference ----------------------------------------------------------------------
@dataclasses.dataclass
class WarningSettings:
    """Thresholds of :func:`label_free_warnings`.

    The defaults were set so the phantom's ground truth raises none: where the nerve runs within
    the coronal plane (up the ramus) its coronal section is a long streak (up to ~45 mm²), and
    the anterior loop is cut twice in one slice, so neither area nor two pieces alone mean failure.
    """

    max_jump_mm: float = 2.5          # gap between the nerve in neighbouring predicted slices
    min_area_mm2: float = 0.5         # (the first and last slice of the span are partial, not checked)
    max_area_mm2: float = 60.0
    min_mean_probability: float = 0.6


WARNING_KINDS = ("gap", "jump", "stray piece", "low probability", "area")


def _side_slices(prediction: np.ndarray, label: int, axis: int):
    """One label cropped to its bounding box, slices first.

    Returns ``(mask, area, offset)``: the (n_slices, h, w) mask of the box (all slices kept so
    indices along the slice axis stay the volume's), voxels per slice, and the in-plane offset
    of the box. Cropping first keeps the per-slice work on a few thousand voxels.
    """
    vol = np.moveaxis(np.asarray(prediction), axis, 0)
    n = vol.shape[0]
    idx = np.flatnonzero(vol.reshape(-1) == label) if vol.flags.c_contiguous else \
        np.flatnonzero(np.ascontiguousarray(vol).reshape(-1) == label)
    if not idx.size:
        return np.zeros((n, 0, 0), bool), np.zeros(n, np.int64), np.zeros(2, int)
    coords = np.unravel_index(idx, vol.shape)
    lo = np.array([c.min() for c in coords[1:]])
    hi = np.array([c.max() for c in coords[1:]]) + 1
    mask = np.zeros((n, *(hi - lo)), bool)
    mask[coords[0], coords[1] - lo[0], coords[2] - lo[1]] = True
    area = np.bincount(coords[0], minlength=n)
    return mask, area, lo


def label_free_warnings(prediction: np.ndarray, spacing, axis: int = 0, probability: np.ndarray | None = None,
                        settings: WarningSettings | None = None) -> list[dict]:
    """Likely failures from a prediction alone, per slice and side. These are warnings, not DSC.

    Parameters
    ----------
    prediction : (AP, SI, RL) label volume
    spacing : voxel size in mm, same axis order
    axis : the slice axis
    probability : optional probability map of the same shape (for the low-probability warning)
    settings : thresholds (:class:`WarningSettings`)

    Returns
    -------
    list of dict
        ``{"slice", "side", "label", "kind", "detail"}`` sorted by slice; kinds in
        :data:`WARNING_KINDS`: a *gap* (nothing predicted inside the nerve's span), a *jump*
        (the nerve in this slice lies more than ``max_jump_mm`` from the nerve in the previous
        predicted slice), a *stray piece* (voxels of a 3D component other than the side's
        largest: not connected to the nerve), *low probability* (mean inside the prediction
        below ``min_mean_probability``), *area* (cross-section outside the range).
    """
    from scipy.spatial import cKDTree

    st = settings or WarningSettings()
    sp = np.asarray(spacing, dtype=float)
    in_plane = [a for a in range(3) if a != axis]
    sp_ip = sp[in_plane]
    px_mm2 = float(sp_ip[0] * sp_ip[1])
    out = []
    prob_all = None if probability is None else np.moveaxis(np.asarray(probability), axis, 0)
    for lab, side in SIDES.items():
        pred, area, offset = _side_slices(prediction, lab, axis)
        has = np.flatnonzero(area)
        if not has.size:
            continue

        def add(i, kind, detail):
            out.append({"slice": int(i), "side": side, "label": lab, "kind": kind, "detail": detail})

        for i in range(has[0], has[-1] + 1):
            if area[i] == 0:
                add(i, "gap", f"nothing predicted, inside the nerve's span (slices {has[0]}–{has[-1]})")
        prev = None
        for i in has:
            pts = np.argwhere(pred[i]) * sp_ip
            if prev is not None and i - prev[0] == 1:
                d = float(cKDTree(prev[1]).query(pts)[0].min())
                if d > st.max_jump_mm:
                    add(i, "jump", f"{d:.1f} mm from the nerve in slice {prev[0]}")
            prev = (i, pts)
        # pieces not connected in 3D to the side's largest component
        box = ndimage.find_objects(pred.astype(np.uint8))[0]
        comp, n = ndimage.label(pred[box], structure=np.ones((3, 3, 3)))
        if n > 1:
            # a piece beside the nerve (in slices the main piece also covers) or a small one is
            # stray; a nerve cut in two by a gap is two long pieces end to end: the gap says that
            sizes = np.bincount(comp.ravel())[1:]
            main = int(np.argmax(sizes)) + 1
            spans = ndimage.find_objects(comp)
            m0, m1 = spans[main - 1][0].start, spans[main - 1][0].stop
            stray = np.zeros(comp.shape[0], bool)
            n_stray = 0
            for c in range(1, n + 1):
                s0, s1 = spans[c - 1][0].start, spans[c - 1][0].stop
                if c != main and (s0 < m1 and s1 > m0 or sizes[c - 1] < 0.1 * sizes[main - 1]):
                    stray[s0:s1] |= (comp[s0:s1] == c).any(axis=(1, 2))
                    n_stray += 1
            for i in np.flatnonzero(stray) + box[0].start:
                add(i, "stray piece", f"{n_stray} piece(s) not connected to the nerve")
        inner = has[1:-1]
        for i in inner:
            a_mm2 = area[i] * px_mm2
            if not st.min_area_mm2 <= a_mm2 <= st.max_area_mm2:
                add(i, "area", f"cross-section {a_mm2:.1f} mm² (expected {st.min_area_mm2:g}–{st.max_area_mm2:g})")
        if prob_all is not None:
            prob = prob_all[:, offset[0]:offset[0] + pred.shape[1], offset[1]:offset[1] + pred.shape[2]]
            for i in has:
                mp = float(prob[i][pred[i]].mean())
                if mp < st.min_mean_probability:
                    add(i, "low probability", f"mean probability {mp:.2f}")
    return sorted(out, key=lambda w: (w["slice"], w["label"], w["kind"]))


def nerve_measurements(labels: np.ndarray, image: np.ndarray, spacing, axis: int = 0) -> list[dict]:
    """Per slice and side along the nerve: area (mm²), mean and max signal, distance along it (mm).

    The distance is the cumulative 3D length of the polyline through the slice centroids, from
    the first slice holding that nerve (Balsiger et al. 2018 propose area and signal as
    biomarkers of nerve injury; reading them along the course localises a change). Signal
    statistics ignore non-finite (NaN/Inf) image voxels; a slice with none left has NaN signal.
    """
    sp = np.asarray(spacing, dtype=float)
    in_plane = [a for a in range(3) if a != axis]
    px_mm2 = float(sp[in_plane[0]] * sp[in_plane[1]])
    img_all = np.moveaxis(np.asarray(image), axis, 0)
    out = []
    for lab, side in SIDES.items():
        pred, area, offset = _side_slices(labels, lab, axis)
        has = np.flatnonzero(area)
        img = img_all[:, offset[0]:offset[0] + pred.shape[1], offset[1]:offset[1] + pred.shape[2]]
        dist = 0.0
        prev = None
        for i in has:
            cent = np.argwhere(pred[i]).mean(axis=0) + offset
            p3 = np.array([i * sp[axis], *(cent * sp[in_plane])])
            if prev is not None:
                dist += float(np.linalg.norm(p3 - prev))
            prev = p3
            vals = img[i][pred[i]]
            vals = vals[np.isfinite(vals)]      # non-finite voxels are ignored (NaN when none is left)
            out.append({"slice": int(i), "side": side, "label": lab, "area_mm2": float(area[i] * px_mm2),
                        "mean_signal": float(vals.mean()) if vals.size else float("nan"),
                        "max_signal": float(vals.max()) if vals.size else float("nan"),
                        "distance_mm": dist})
    return sorted(out, key=lambda r: (r["label"], r["slice"]))


def _finite_mean(values) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def measurements_by_region(rows, marker_slice: int | None, anterior_is_lower: bool = True) -> dict:
    """Mean area and signal per side before/after a region marker (e.g. the anterior loop start).

    In the canonical orientation slice indices grow from anterior to posterior, so slices below
    the marker are the anterior (mental foramen / anterior loop) region.
    """
    out = {}
    for side in SIDES.values():
        rs = [r for r in rows if r["side"] == side]
        if not rs:
            continue
        groups = {"whole nerve": rs}
        if marker_slice is not None:
            front = [r for r in rs if (r["slice"] < marker_slice) == anterior_is_lower]
            back = [r for r in rs if (r["slice"] < marker_slice) != anterior_is_lower]
            groups.update({"anterior (loop / mental foramen)": front, "posterior (canal)": back})
        out[side] = {name: {"slices": len(g),
                            "mean_area_mm2": float(np.mean([r["area_mm2"] for r in g])) if g else np.nan,
                            "mean_signal": _finite_mean([r["mean_signal"] for r in g])}
                     for name, g in groups.items()}
    return out


# -- review status ------------------------------------------------------------------------------
def new_status(n_slices: int) -> np.ndarray:
    """(2, n) int8 review status per side and slice, all unreviewed."""
    return np.zeros((2, int(n_slices)), dtype=np.int8)


def status_to_json(status: np.ndarray) -> str:
    return json.dumps({"status_names": list(STATUS), "right": status[0].tolist(), "left": status[1].tolist()})


def status_from_json(text: str, n_slices: int) -> np.ndarray:
    d = json.loads(text)
    st = np.array([d["right"], d["left"]], dtype=np.int8)
    if st.shape != (2, n_slices):
        raise ValueError(f"saved review status covers {st.shape[1]} slices, the volume has {n_slices}")
    return st


def status_file(case_key: str, layer_name: str, axis: int = 0):
    """Where the review status of one labels layer of a case is kept (in the case's workspace folder).

    The file name holds hashes only (the layer's name may hold anything the user typed).
    """
    import hashlib

    from .workspace import case_dir

    return case_dir(case_key) / f"review-{hashlib.sha256(layer_name.encode()).hexdigest()[:12]}-axis{int(axis)}.json"


def load_status(case_key: str, layer_name: str, n_slices: int, axis: int = 0) -> np.ndarray | None:
    """The saved review status of a layer, or None when it was never reviewed (ValueError if unusable)."""
    path = status_file(case_key, layer_name, axis)
    if not path.exists():
        return None
    try:
        return status_from_json(path.read_text(), n_slices)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path.name}: {exc}") from None
