"""Fine-tune a model on the slices a person corrected or accepted, with an honest before/after.

The run uses the trainer's own loop (:func:`napari_ian.trainer.train.train_model`: the base
model's loss, AdamW, cosine schedule and augmentation) from the base model's weights, with fewer
epochs and a lower learning rate by default. Only trusted slices (review status accepted or
corrected) are trained on. A contiguous block of each side's trusted slices (or a whole case) is
held out: the model is scored on it before and after, and the last epoch's weights are kept, so
the held-out numbers were never used to choose anything. A share of the crops of a 3D model
trained on synthetic renders comes from renders of one of its training anatomies (rehearsal,
:mod:`.rehearsal`), so it forgets less of what it knew. Progress and Cancel go through the same
callbacks as training.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime
import itertools
import logging
import math
import os
from pathlib import Path
from typing import Callable

import numpy as np

from .boxes import margin_voxels, mask_box
from .data import SideSlices, side_slices
from .metrics import SIDES
from .progress import PREPARE, ProgressCallback, report
from .rehearsal import rehearsal_volumes
from .sides import label_midline
from .registry import BUNDLED_DIR, FINETUNE_SUFFIX, alternative_names, list_models, user_model_path

log = logging.getLogger(__name__)


@dataclasses.dataclass
class FinetuneConfig:
    """Settings of a fine-tuning run (recorded in the new model's metadata)."""

    epochs: int = 15                 # with lr 3e-4: more gain in half the time of 30 at 1e-4 (BENCHMARKS.md)
    lr: float = 3e-4                 # below training's 6e-4-1e-3: adapt, do not relearn
    holdout: float = 0.25            # share of each side's trusted slices held out (a contiguous block)
    holdout_case: str | None = None  # or: hold out this whole case (its case hash) instead
    min_samples: int = 64            # few trusted slices are repeated (with fresh augmentation) to this many per epoch
    min_patches: int = 16            # 3D models: patches per epoch (each spans a slab of slices)
    # 3D models: the training crop (working slices, SI, RL), at most the base model's. Smaller than
    # its 32 x 96 x 96 so that twice the steps fit in less time: on a case the model all but missed
    # that took the gain from +0.13 to +0.44 (BENCHMARKS.md). None: the base model's own crop.
    patch: tuple | None = (32, 48, 48)
    pseudo_labels: bool = True       # label the slices between corrected ones along the nerve they pin (working-grid models)
    pseudo_share: float = 0.35       # share of crops drawn from pseudo-labelled slices (below the real corrections)
    rehearsal_share: float = 0.25    # share of crops from renders of a training phantom (3D models trained on them): less forgetting
    batch_size: int | None = None    # None: the base model's
    validate_every: int = 3          # the live held-out curve every n-th epoch and the last (over whole slabs, a 3D model's took a quarter of the time)
    freeze_first_block: bool = True  # 3D U-Net: its first (full-resolution) encoder block stays as it was: a tenth less time, same gain (BENCHMARKS.md)
    seed: int = 0
    device: str = "auto"

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class FinetuneData:
    train: list                      # SideSlices of trusted, not held-out slices
    held_out: list                   # SideSlices scored before and after
    n_train: int
    n_held_out: int
    n_train_nerve: int
    cases: list                      # case hashes used
    trained: dict = dataclasses.field(default_factory=dict)   # {case: {"right": [...], "left": [...]}} slices trained on
    work: list = dataclasses.field(default_factory=list)      # working-grid pipelines: one WorkCase per case
    base_model: object = None        # the model whose predictions WorkCase.base_labels hold


@dataclasses.dataclass
class WorkCase:
    """One case for a working-grid pipeline: the prepared volume and what may be trained/scored."""

    case: str
    image: np.ndarray                # canonical, the input grid (scored there)
    labels: np.ndarray
    spacing: tuple
    prepared: object                 # pipeline.Prepared
    labels_work: np.ndarray          # labels on the working grid (nearest)
    allowed: np.ndarray              # (2, working slices) bool: trained on
    midline_work: int
    train_native: np.ndarray         # (2, input slices) bool
    held_native: np.ndarray          # (2, input slices) bool
    held_work: np.ndarray            # (2, working slices) bool
    pseudo_work: np.ndarray | None = None    # (2, working slices) bool: pseudo-labelled, trained on with less weight
    n_pseudo: int = 0                # input slices given pseudo-labels
    base_labels: np.ndarray | None = None    # the base model's prediction (input grid): its 'before' score


@dataclasses.dataclass
class FinetuneResult:
    model: object                    # torch.nn.Module, eval, CPU
    metadata: dict
    history: list
    before: dict                     # {"held_out_dsc": ..., "train_dsc": ...}
    after: dict
    # the new model's prediction of the case ``finetune``'s ``keep_case`` names (3D models), as
    # ``ian predict`` makes it by default; None when not asked for or not made
    after_prediction: object = None

    @property
    def worse(self) -> bool:
        b, a = self.before.get("held_out_dsc"), self.after.get("held_out_dsc")
        return b is not None and a is not None and not math.isnan(b) and not math.isnan(a) and a < b - 0.005


def _select(s: SideSlices, idx) -> SideSlices:
    idx = np.asarray(idx, dtype=int)
    return SideSlices(s.case_id, s.patient_id, s.side, s.x[idx], s.y[idx], s.positive[idx])


def holdout_block(indices, fraction: float, seed: int = 0) -> np.ndarray:
    """A contiguous run of ``round(fraction * n)`` of the sorted ``indices`` (none when n < 4).

    Contiguous, because neighbouring slices look alike: scattered held-out slices would be
    predicted from their trained neighbours and flatter the model.
    """
    indices = np.sort(np.asarray(indices, dtype=int))
    n = len(indices)
    k = int(round(fraction * n))
    if n < 4 or k < 1:
        return indices[:0]
    k = min(k, n - 2)
    start = int(np.random.default_rng(seed).integers(0, n - k + 1))
    return indices[start:start + k]


def ancestors_trained(metadata: dict) -> dict:
    """``{case: {"right": [...], "left": [...]}}``: corrected slices the model (and its parents) trained on."""
    return (metadata.get("finetune") or {}).get("trained_slices", {}) or {}


def _split_trusted(case_i, case, trusted_side, positive, seen_side, cfg) -> tuple[np.ndarray, np.ndarray]:
    """Trusted slice indices of one side -> (train, held-out) index arrays."""
    idx = np.flatnonzero(trusted_side)
    if cfg.holdout_case is not None:
        hold = idx if case == cfg.holdout_case else idx[:0]
    else:
        # the block is drawn among slices with nerve (accepted empty slices score nothing)
        # that the base model has not been trained on
        fresh = np.setdiff1d(idx[positive[idx]], seen_side)
        hold = holdout_block(fresh, cfg.holdout, cfg.seed + 7 * case_i)
    return np.setdiff1d(idx, hold), hold


PSEUDO_RADII_MM = (0.5, 0.7, 0.9, 1.1, 1.3, 1.5, 1.8)   # tube radii tried against the corrections


PSEUDO_MIN_FIT = 0.3    # below this mean DSC on the corrected slices no candidate is trusted


def _fit(truth: np.ndarray, mask: np.ndarray, rows) -> float:
    """Mean DSC of ``mask`` against ``truth`` over coronal slices ``rows`` (slices empty in both
    count as agreement)."""
    from .metrics import slice_metrics

    dsc = slice_metrics(truth[rows].astype(np.uint8), mask[rows].astype(np.uint8), 1, axis=0).dsc
    return float(np.mean(np.nan_to_num(dsc, nan=1.0))) if len(rows) else 0.0


def fitted_nerve(session, side: int, truth: np.ndarray, rows):
    """The nerve of ``side`` between corrected slices that best reproduces the corrections, or
    None when nothing does.

    Candidates: the clicks' nerve (:meth:`.interactive.InteractiveSession.side_mask`, the model's
    outline where it has one), plain tubes along the clicked course at :data:`PSEUDO_RADII_MM`,
    and the clicks' nerve trimmed to the best tube's radius plus 0.4 or 0.8 mm. The one with the
    highest mean DSC on the corrected slices ``rows`` (their labels ``truth``) wins: where the
    model misses or overdraws the nerve (a thin nerve, another contrast), the corrections' own width
    replaces its outline; where it outlines the nerve well, its outline stays. None when the best
    fits worse than :data:`PSEUDO_MIN_FIT` (the clicked course missed what was corrected).
    """
    nerve = session.side_mask(side)
    tubes = {r: session.tube(side, r) for r in PSEUDO_RADII_MM}
    radius = max(tubes, key=lambda r: _fit(truth, tubes[r], rows))
    candidates = [nerve, tubes[radius]] + [nerve & session.tube(side, radius + extra) for extra in (0.4, 0.8)]
    scores = [_fit(truth, c, rows) for c in candidates]
    best = int(np.argmax(scores))
    return candidates[best] if scores[best] >= PSEUDO_MIN_FIT else None


def pseudo_label(image, labels, spacing, train, held, probability):
    """Labels for the slices between corrected ones, from the course the corrections pin.

    The nerve is one tube: each side's corrected slices with nerve act as clicks on its centre
    (:mod:`.interactive`: minimal paths through the base model's probability and the image's
    local contrast), and the nerve they give, fitted to the corrections' own width
    (:func:`fitted_nerve`), labels that side on the slices between the first and the last
    corrected one that nobody corrected, except held-out slices. ``probability`` is the base
    model's nerve probability on the input grid.

    Returns ``(pseudo (2, AP) bool, labels with the pseudo-labels added)``.
    """
    from .interactive import InteractiveSession

    n = image.shape[0]
    pseudo = np.zeros((2, n), bool)
    clicks, corrected = [], {}
    for side in (1, 2):
        idx = [i for i in np.flatnonzero(train[side - 1]) if (labels[i] == side).any()]
        if len(idx) < 2:
            continue
        corrected[side] = np.asarray(idx)
        for i in idx:
            c = np.argwhere(labels[i] == side).mean(axis=0)
            clicks.append((np.array([i, c[0], c[1]]), side))
        span = np.zeros(n, bool)
        span[min(idx):max(idx) + 1] = True
        pseudo[side - 1] = span & ~train[side - 1] & ~held[side - 1]
    if not pseudo.any():
        return pseudo, labels
    session = InteractiveSession(image, spacing, probability)
    session.set_clicks(clicks)
    out = np.array(labels, copy=True)
    for side in (1, 2):
        if not pseudo[side - 1].any():
            continue
        tube = fitted_nerve(session, side, labels == side, corrected[side])
        if tube is None:              # no pseudo-label fits the corrections: train on them alone
            pseudo[side - 1] = False
            continue
        rows = pseudo[side - 1]
        sub = out[rows]
        sub[sub == side] = 0                      # the slice's old (untrusted) labels of this side go
        sub[tube[rows] & (sub == 0)] = side
        out[rows] = sub
    return pseudo, out


def build_finetune_data(cases, metadata: dict, cfg: FinetuneConfig, progress=None, base_model=None) -> FinetuneData:
    """Network inputs of the trusted slices of each case, split into training and held-out.

    Parameters
    ----------
    cases : list of ``(case_hash, image, labels, trusted[, spacing])``
        Canonical image and labels, the (2, AP) trusted mask (right, left) of each case and its
        voxel spacing in mm (needed by working-grid models; default 1 mm).
    metadata : dict
        The base model's metadata (its preprocessing is used).
    cfg : FinetuneConfig
    progress : callable, optional
        A ``prepare`` event after each case (:mod:`napari_ian.trainer.progress`).
    base_model : torch.nn.Module, optional
        The base model. Working-grid models: its prediction of each case is made here, once; it
        guides the pseudo-labels (:func:`pseudo_label`, with ``cfg.pseudo_labels``) and is the
        'before' score of :func:`finetune` when that is given the same model.
    """
    from .pipeline import HalfSlices, pipeline_for_model
    from .resample import to_grid

    pipe = pipeline_for_model(metadata)
    seen = ancestors_trained(metadata)   # never held out: the base model has learnt them already
    if cfg.holdout_case is not None and cfg.holdout_case in seen:
        raise ValueError(f"the base model was already fine-tuned on case {cfg.holdout_case[:8]}: hold out "
                         "another case (or a block of slices)")
    if cfg.holdout_case is not None and cfg.holdout_case not in [c[0] for c in cases]:
        raise ValueError(f"the held-out case {cfg.holdout_case[:8]} is not among the cases to fine-tune on")
    train, held, trained, work = [], [], {}, []
    n_train = n_held = n_pos = 0
    for i, entry in enumerate(cases):
        case, image, labels, trusted = entry[:4]
        spacing = tuple(entry[4]) if len(entry) > 4 else (1.0, 1.0, 1.0)
        if isinstance(pipe, HalfSlices):
            for s in side_slices(image, labels, pipe.size, pipe.context, case_id=case, patient_id=case):
                keep, hold = _split_trusted(i, case, trusted[s.side - 1][:len(s.y)], s.positive,
                                            seen.get(case, {}).get(SIDES[s.side], []), dataclasses.replace(
                                                cfg, seed=cfg.seed + s.side))
                if keep.size:
                    train.append(_select(s, keep))
                    trained.setdefault(case, {"right": [], "left": []})[SIDES[s.side]] = keep.tolist()
                    n_pos += int(s.positive[keep].sum())
                if hold.size:
                    held.append(_select(s, hold))
        else:
            n = image.shape[0]
            tr_nat, ho_nat = np.zeros((2, n), bool), np.zeros((2, n), bool)
            for side in (1, 2):
                positive = (labels == side).any(axis=(1, 2))
                keep, hold = _split_trusted(i, case, trusted[side - 1][:n], positive,
                                            seen.get(case, {}).get(SIDES[side], []),
                                            dataclasses.replace(cfg, seed=cfg.seed + side))
                tr_nat[side - 1, keep], ho_nat[side - 1, hold] = True, True
                if keep.size:
                    trained.setdefault(case, {"right": [], "left": []})[SIDES[side]] = keep.tolist()
                    n_pos += int(positive[keep].sum())
            if tr_nat.any() or ho_nat.any():
                pseudo_nat, train_labels, base = np.zeros((2, n), bool), labels, None
                if base_model is not None:
                    base = predict_as_users_do(image, base_model, metadata, spacing, cfg.device)
                    if cfg.pseudo_labels:
                        pseudo_nat, train_labels = pseudo_label(image, labels, spacing, tr_nat, ho_nat, base.probability)
                prep = pipe.prepare(image, spacing)
                lab_w = to_grid(train_labels, spacing, pipe.spacing_mm, prep.volume.shape, order=0)
                # a working slice takes the trust of the input slice nearest to it
                near = np.clip(np.rint(np.arange(prep.volume.shape[0]) * pipe.spacing_mm[0] / spacing[0]).astype(int),
                               0, n - 1)
                # the sides as labelled (a field of view with one nerve has no mirror axis to split by)
                mid_w = int(round(label_midline(labels, prep.midline) * spacing[2] / pipe.spacing_mm[2]))
                work.append(WorkCase(case, image, labels, spacing, prep, lab_w, tr_nat[:, near], mid_w, tr_nat, ho_nat,
                                     ho_nat[:, near], pseudo_nat[:, near], int(pseudo_nat.sum()),
                                     None if base is None else base.labels))
            n_train += int(tr_nat.sum())
            n_held += int(ho_nat.sum())
        report(progress, PREPARE, i + 1, len(cases), message=str(case[0]))
    if train or held:
        n_train = sum(len(s.y) for s in train)
        n_held = sum(len(s.y) for s in held)
    if not n_train:
        raise ValueError("no corrected or accepted slices to train on")
    if not n_pos:
        raise ValueError("the corrected/accepted training slices hold no nerve label: nothing to learn from")
    return FinetuneData(train, held, n_train, n_held, n_pos, [c[0] for c in cases], trained, work,
                        base_model if work else None)


def _repeat(sets, min_samples: int):
    n = sum(len(s.y) for s in sets)
    reps = max(1, math.ceil(min_samples / max(n, 1)))
    if reps == 1:
        return sets
    return [SideSlices(s.case_id, s.patient_id, s.side, np.repeat(s.x, reps, 0), np.repeat(s.y, reps, 0),
                       np.repeat(s.positive, reps, 0)) for s in sets]


def score(model, sets, device="cpu") -> float:
    """Mean per-slice DSC over the nerve-holding slices of ``sets`` (network space; NaN if none)."""
    from .train import pick_device, predict_probabilities, slice_dsc

    if not sets:
        return float("nan")
    x = np.concatenate([s.x for s in sets])
    y = np.concatenate([s.y for s in sets])
    dev = pick_device(device)
    model = model.to(dev)
    try:
        return slice_dsc(predict_probabilities(model, x, dev), y)
    finally:
        model.to("cpu")


def _mean_dsc(values) -> float:
    v = [x for x in values if not math.isnan(x)]
    return float(np.mean(v)) if v else float("nan")


def predict_as_users_do(image, model, metadata: dict, spacing, device="cpu"):
    """The whole case's prediction as ``ian predict`` and the Predict panel make it by default
    (:func:`~napari_ian.trainer.workflows.predict_loaded`): a 3D model in the tiling its
    ``metadata`` says it predicts in by default, the network run by the CPU's backend (``auto``:
    the bundled model's int8 version, a fine-tuned one converted to OpenVINO float32, where
    OpenVINO is chosen), a GPU short of memory falling back as there; so that a fine-tune's
    before and after are the results the user sees."""
    from .workflows import predict_loaded

    pred, note = predict_loaded(image, spacing, model, metadata, device=device)
    if note:
        log.warning("fine-tune: %s", note)
    return pred


def score_cases(model, metadata: dict, work: list, device="cpu", predicted: bool = False,
                on_prediction: Callable[[str, object], None] | None = None) -> dict:
    """Held-out and training DSC of ``model`` on the input's own coronal slices, through the
    whole prediction (:func:`predict_as_users_do`), as a user would get it; ``predicted``:
    score the base model's predictions already made (``WorkCase.base_labels``);
    ``on_prediction(case, prediction)`` is called with each prediction made here (what it does
    not keep is freed as the scoring goes on)."""
    from .metrics import metrics_from_counts

    held, trained = [], []
    for w in work:
        if predicted and w.base_labels is not None:
            labels = w.base_labels
        else:
            made = predict_as_users_do(w.image, model, metadata, w.spacing, device)
            labels = made.labels
            if on_prediction is not None:
                on_prediction(w.case, made)
            del made
        for side in (1, 2):
            ref, pred = w.labels == side, labels == side
            tp = np.count_nonzero(ref & pred, axis=(1, 2))
            fp = np.count_nonzero(~ref & pred, axis=(1, 2))
            fn = np.count_nonzero(ref & ~pred, axis=(1, 2))
            m = metrics_from_counts(tp, fp, fn)
            for mask, out in ((w.held_native[side - 1], held), (w.train_native[side - 1], trained)):
                sel = mask & m.reference_positive
                out += m.dsc[sel].tolist()
    return {"held_out_dsc": _mean_dsc(held), "train_dsc": _mean_dsc(trained)}


class _WorkSampler:
    """Fine-tuning batches: crops of the trusted sides of trusted working slices, a share
    ``pseudo_share`` of crops of pseudo-labelled slices (weighted below the real corrections) and
    a share ``rehearsal_share`` of crops of ``rehearsal`` volumes (``(volume, 0/1 mask)`` pairs of
    the kind the base model learnt from: :func:`napari_ian.trainer.rehearsal.rehearsal_volumes`)."""

    def __init__(self, work, pipe, batch, steps, patch, positive_fraction=0.8, pseudo_share=0.35,
                 rehearsal=(), rehearsal_share=0.0):
        self.sources = [(w, w.allowed) for w in work if w.allowed.any()]
        self.pseudo = [(w, w.pseudo_work) for w in work if w.pseudo_work is not None and w.pseudo_work.any()]
        self.rehearsal = list(rehearsal)
        self.pipe, self.batch, self.steps, self.patch, self.pf = pipe, batch, steps, patch, positive_fraction
        self.share = pseudo_share if self.pseudo else 0.0
        self.rehearsal_share = rehearsal_share if self.rehearsal else 0.0

    def batches(self, rng, rank=0, world=1):
        for _ in range(self.steps):
            # the case's own crops keep at least one place in every batch
            n_old = min(int(rng.binomial(self.batch, self.rehearsal_share)), self.batch - 1)
            n_pseudo = int(rng.binomial(self.batch - n_old, self.share))
            xs, ys = [], []
            for vi in rng.integers(len(self.rehearsal), size=n_old) if n_old else ():
                volume, mask = self.rehearsal[vi]
                x, y = self.pipe.sample(volume, mask, rng, 1, self.patch, self.pf)
                xs.append(x)
                ys.append(y)
            for pool, count in ((self.sources, self.batch - n_old - n_pseudo), (self.pseudo, n_pseudo)):
                if not count:
                    continue
                picks = rng.integers(len(pool), size=count)
                for wi in np.unique(picks):
                    w, allowed = pool[wi]
                    x, y = self.pipe.sample(w.prepared.volume, w.labels_work, rng, int((picks == wi).sum()),
                                            self.patch, self.pf, allowed=allowed, midline=w.midline_work)
                    xs.append(x)
                    ys.append(y)
            yield np.concatenate(xs), np.concatenate(ys)


VALIDATION_MARGIN_MM = 12.0   # in-plane context around a side's held-out nerve in the live validation


def held_out_views(pipe, w: WorkCase) -> list:
    """Per side with held-out nerve: ``(side, working slices, in-plane box)`` that the live
    validation predicts.

    The box spans the side's held-out reference nerve, ``VALIDATION_MARGIN_MM`` around it and at
    least one training patch in-plane; only the side's half of the head in it is scored. Predicting
    whole slices instead took about a quarter of a 3D model's fine-tune (BENCHMARKS.md).
    """
    views = []
    shape = w.prepared.volume.shape
    least = getattr(pipe, "patch", (0, 0, 0))[1:]
    margin = margin_voxels(VALIDATION_MARGIN_MM, pipe.spacing_mm[1:])
    for side in (1, 2):
        idx = np.flatnonzero(w.held_work[side - 1])
        if not idx.size:
            continue
        half = slice(0, w.midline_work) if side == 1 else slice(w.midline_work, shape[2])
        ref = np.zeros((len(idx),) + shape[1:], bool)
        ref[:, :, half] = w.labels_work[idx][:, :, half] == side
        keep = ref.any(axis=(1, 2))
        if not keep.any():
            continue
        box = mask_box(ref[keep].any(axis=0), margin, least)     # one patch at least, the volume allowing
        views.append((side, idx[keep], box))
    return views


def _work_validator(pipe, work):
    """Per-epoch DSC on the held-out working slices (the live curve; not the before/after), each
    side predicted in a box around its held-out nerve (:func:`held_out_views`)."""
    views = [(w, held_out_views(pipe, w)) for w in work]

    def validate(model, device, bf16, channels_last):
        scores = []
        model.eval()
        for w, per_side in views:
            for side, idx, (rows, cols) in per_side:
                vol = w.prepared.volume[:, rows, cols]
                step = len(idx) if pipe.kind == "patch3d" else 8    # 3D: one slab of patches per run of slices
                prob = np.concatenate([pipe.infer_slices(vol, idx[i:i + step], (False,), model, device, bf16,
                                                         channels_last) for i in range(0, len(idx), step)])
                on_side = np.arange(cols.start, cols.stop) < w.midline_work
                on_side = on_side if side == 1 else ~on_side
                for j, a in enumerate(idx):
                    ref = (w.labels_work[a][rows, cols] == side) & on_side
                    pred = (prob[j] > 0.5) & on_side
                    scores.append(2 * np.count_nonzero(ref & pred) / (ref.sum() + pred.sum()))
        return float(np.mean(scores)) if scores else float("nan")
    return validate


def training_crop(cfg: FinetuneConfig, metadata: dict) -> tuple:
    """The crop a fine-tune trains on: for a 3D patch model ``cfg.patch`` cut along each axis to
    the patch the model predicts with (``cfg.patch`` None: that patch itself); for other models
    their own training crop.

    Raises ``ValueError`` when the crop does not fit the 3D U-Net: each side a multiple of
    ``2 ** depth`` (it pools that often) and at least twice that."""
    from .nets import THREE_D

    training = metadata.get("training") or {}
    if metadata.get("network") not in THREE_D:
        return tuple(int(v) for v in (training.get("patch") or (128, 128)))
    # the prediction patch, not training["patch"]: a fine-tuned model's training crop may be smaller
    own = tuple(int(v) for v in ((metadata.get("preprocessing") or {}).get("patch") or training["patch"]))
    if cfg.patch is None:
        return own
    step = 2 ** int((metadata.get("network_config") or {}).get("depth", 3))
    crop = tuple(min(int(c), o) for c, o in zip(cfg.patch, own))
    if len(cfg.patch) != 3 or any(c < 2 * step or c % step for c in crop):
        raise ValueError(f"fine-tuning crop {tuple(cfg.patch)}: three sides needed, each a multiple of {step} and at "
                         f"least {2 * step} (larger sides are cut to the {own} patches this model predicts with)")
    return crop


def freeze_first_block(model) -> int:
    """Stop training a 3D U-Net's first encoder block (its two full-resolution convolutions and
    norms); returns how many parameters that froze (0 for other networks, left as they are).

    Nothing before that block needs a gradient, so the backward pass then stops before the
    full-resolution encoder: a fine-tune took a tenth less time on a 2-core CPU, with the same
    gain on the case of ``BENCHMARKS.md``."""
    from .nets import UNet3D

    if not isinstance(model, UNet3D):
        return 0
    params = list(model.down[0].parameters())
    for p in params:
        p.requires_grad_(False)
    return sum(p.numel() for p in params)


def finetune(model, metadata: dict, data: FinetuneData, cfg: FinetuneConfig, *, parent: str,
             progress: ProgressCallback | None = None, cancel: Callable[[], bool] | None = None,
             keep_case: str | None = None) -> FinetuneResult:
    """Fine-tune ``model`` (left unchanged) on ``data``; returns the new model and its metadata,
    and with ``keep_case`` (a case of ``data``) the new model's prediction of that case made for
    the after-score.

    ``progress`` gets the training loop's ``step`` and ``epoch`` events; raises
    :class:`napari_ian.trainer.progress.Cancelled` when ``cancel()`` turns True; nothing is written in any case (see :func:`save_finetuned`).
    """
    from .pipeline import pipeline_for_model
    from .train import TrainConfig, build_model, fit, train_model

    training = dict(metadata.get("training") or {})
    net_cfg = {k: v for k, v in metadata.get("network_config", {}).items() if k != "in_channels"}
    pipe = pipeline_for_model(metadata)
    batch = cfg.batch_size or int(training.get("batch_size", 32))
    common = dict(network=metadata["network"], network_config=net_cfg, loss=training.get("loss", "focal_tversky"),
                  loss_params=training.get("loss_params"), lr=cfg.lr, weight_decay=training.get("weight_decay", 1e-4),
                  epochs=cfg.epochs, batch_size=batch, patience=cfg.epochs + 1,
                  empty_fraction=training.get("empty_fraction", 0.25), augment=training.get("augment", True),
                  seed=cfg.seed, device=cfg.device, select="last", validate_every=cfg.validate_every)
    init = copy.deepcopy(model.state_dict())
    kept = {}

    def keep(case, made):
        if case == keep_case:
            kept[case] = made

    if data.work:
        tc = TrainConfig(**common, context=getattr(pipe, "context", 1), pipeline=pipe.to_dict(),
                         patch=training_crop(cfg, metadata),
                         steps_per_epoch=max(1, math.ceil((cfg.min_patches if pipe.kind == "patch3d"
                                                           else cfg.min_samples) / batch)))
        before = score_cases(model, metadata, data.work, cfg.device, predicted=data.base_model is model)
        rehearsal = rehearsal_volumes(pipe, metadata, seed=cfg.seed) if cfg.rehearsal_share > 0 else []
        net = build_model(tc, init)
        if cfg.freeze_first_block:
            freeze_first_block(net)
        new, history, best = fit(net, _WorkSampler(data.work, pipe, batch, tc.steps_per_epoch, tc.patch,
                                                   pseudo_share=cfg.pseudo_share, rehearsal=rehearsal,
                                                   rehearsal_share=cfg.rehearsal_share),
                                 _work_validator(pipe, data.work),
                                 tc, progress=progress, cancel=cancel)
        # scored as the saved model will predict: its metadata will mark it fine-tuned
        after = score_cases(new, {**metadata, "finetune": {"parent": parent}}, data.work, cfg.device,
                            on_prediction=keep)
    else:
        tc = TrainConfig(**common, context=int(pipe.context), size=tuple(pipe.size))
        rehearsal = []      # 2.5D whole-slice models: their own loop, no rehearsal
        before = {"held_out_dsc": score(model, data.held_out, cfg.device), "train_dsc": score(model, data.train, cfg.device)}
        new, history, best = train_model(_repeat(data.train, cfg.min_samples), data.held_out, tc, progress=progress,
                                         cancel=cancel, init_state=init)
        after = {"held_out_dsc": score(new, data.held_out, cfg.device), "train_dsc": score(new, data.train, cfg.device)}
    meta = copy.deepcopy(metadata)
    meta.pop("created", None)
    meta["parent"] = parent
    meta["trained_on"] = (f"{metadata.get('trained_on') or parent}; fine-tuned on {data.n_train} corrected/accepted "
                          f"slices of {len(data.cases)} case(s)")
    meta["finetune"] = {
        "parent": parent, "cases": data.cases, "train_slices": data.n_train, "train_nerve_slices": data.n_train_nerve,
        "held_out_slices": data.n_held_out, "pseudo_labelled_slices": sum(w.n_pseudo for w in data.work),
        "rehearsal_volumes": len(rehearsal),
        "settings": cfg.to_dict(), "before": before, "after": after,
        "trained_slices": _merge_trained(ancestors_trained(metadata), data.trained),
        "device": best.get("device"), "bf16": best.get("bf16"), "seconds": best.get("train_seconds"),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    meta["training"] = {**tc.to_dict(), "finetuned_from": parent}
    # the parent's test figures were not measured on this model: kept, but under the parent's name
    meta["metrics"] = {"finetune_held_out_dsc_before": before["held_out_dsc"],
                       "finetune_held_out_dsc_after": after["held_out_dsc"],
                       "parent_metrics": metadata.get("metrics", {})}
    return FinetuneResult(new, meta, history, before, after, kept.get(keep_case))


def _merge_trained(a: dict, b: dict) -> dict:
    out = {c: {side: list(v) for side, v in sides.items()} for c, sides in a.items()}
    for c, sides in b.items():
        for side, v in sides.items():
            have = out.setdefault(c, {"right": [], "left": []}).setdefault(side, [])
            out[c][side] = sorted(set(have) | set(int(i) for i in v))
    return out


def next_model_name(base: str) -> str:
    """``<base>-ft1``, ``-ft2``, ...: the first name no model file uses (a fine-tune of a fine-tune
    counts on; unreadable files count as taken)."""
    stem = FINETUNE_SUFFIX.sub("", base)
    taken = {e.name for e in list_models(include_broken=True)}
    first = f"{stem}-ft1"
    return next(n for n in itertools.chain([first], alternative_names(first)) if n not in taken)


def new_model_path(name: str) -> Path:
    """Where a new user model ``name`` goes; ValueError when the name is bundled, malformed or taken."""
    path = user_model_path(name)
    if path.exists():
        raise ValueError(f"a model called {name!r} exists already; choose another name")
    return path


def save_finetuned(result: FinetuneResult, name: str) -> Path:
    """Write the new model into the user registry atomically, never over another model.

    When ``name`` is taken at the moment of saving (another run saved that name since the
    name was checked), the model is saved under the next free name instead (``<base>-ftN``,
    see :func:`~napari_ian.trainer.registry.alternative_names`): compare the returned path's
    stem with ``name`` to tell the user.
    """
    from .modelfile import save_model_unique

    return save_model_unique(user_model_path(name), result.model, {**result.metadata, "name": name})


def rename_model(old: str, new: str) -> Path:
    """Rename one of the user's models (bundled models cannot be renamed; never over another model)."""
    if (BUNDLED_DIR / f"{old}.pt").exists():
        raise ValueError(f"{old!r} is a bundled model; it cannot be renamed")
    src = user_model_path(old)
    if not src.exists():
        raise ValueError(f"no user model called {old!r}")
    dst = new_model_path(new)
    try:
        os.link(src, dst)       # fails if a model of that name appeared meanwhile (rename would replace it)
    except FileExistsError:
        raise ValueError(f"a model called {new!r} exists already; choose another name") from None
    except OSError:             # no hard links on this file system: the checked rename
        src.rename(dst)
        return dst
    src.unlink()
    return dst


def delete_model(name: str) -> None:
    """Delete one of the user's models (bundled models cannot be deleted; the caller asks first)."""
    if (BUNDLED_DIR / f"{name}.pt").exists():
        raise ValueError(f"{name!r} is a bundled model; it cannot be deleted")
    path = user_model_path(name)
    if not path.exists():
        raise ValueError(f"no user model called {name!r}")
    path.unlink()
