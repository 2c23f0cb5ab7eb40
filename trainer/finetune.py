"""Fine-tune a model on the slices a person corrected or accepted, with an honest before/after.

The run uses the trainer's own loop (:func:`napari_ian.trainer.train.train_model`: the base
model's loss, AdamW, cosine schedule and augmentation) from the base model's weights, with fewer
epochs and a lower learning rate by default. Only trusted slices (review status accepted or
corrected) are trained on. A contiguous block of each side's trusted slices (or a whole case) is
held out: the model is scored on it before and after, and the last epoch's weights are kept, so
the held-out numbers were never used to choose anything. Progress and Cancel go through the same
callbacks as training.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime
import itertools
import math
import os
from pathlib import Path
from typing import Callable

import numpy as np

from .data import SideSlices, side_slices
from .metrics import SIDES
from .registry import BUNDLED_DIR, FINETUNE_SUFFIX, alternative_names, list_models, user_model_path


@dataclasses.dataclass
class FinetuneConfig:
    """Settings of a fine-tuning run (recorded in the new model's metadata)."""

    epochs: int = 30
    lr: float = 1e-4                 # a tenth of training's 1e-3: adapt, do not relearn
    holdout: float = 0.25            # share of each side's trusted slices held out (a contiguous block)
    holdout_case: str | None = None  # or: hold out this whole case (its case hash) instead
    min_samples: int = 64            # few trusted slices are repeated (with fresh augmentation) to this many per epoch
    batch_size: int | None = None    # None: the base model's
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


@dataclasses.dataclass
class FinetuneResult:
    model: object                    # torch.nn.Module, eval, CPU
    metadata: dict
    history: list
    before: dict                     # {"held_out_dsc": ..., "train_dsc": ...}
    after: dict

    @property
    def worse(self) -> bool:
        b, a = self.before.get("held_out_dsc"), self.after.get("held_out_dsc")
        return b is not None and a is not None and not math.isnan(b) and not math.isnan(a) and a < b - 0.005


def parse_slices(text: str, n: int) -> np.ndarray:
    """``"30:40,55"`` -> sorted unique indices (``a:b`` is half-open like Python and ``--roi``: 30..39).

    Raises ValueError naming the part that is not a slice number or range inside ``0..n-1``.
    """
    out = set()
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        try:
            if ":" in part:
                lo, _, hi = part.partition(":")
                a, b = int(lo) if lo.strip() else 0, int(hi) if hi.strip() else n
            else:
                a = int(part)
                b = a + 1
        except ValueError:
            raise ValueError(f"--slices {part!r}: not a slice number or a range such as 30:40") from None
        if not (0 <= a < b <= n):
            raise ValueError(f"--slices {part!r}: outside the {n} coronal slices (0..{n - 1})")
        out.update(range(a, b))
    if not out:
        raise ValueError(f"--slices {text!r}: no slices given")
    return np.array(sorted(out), dtype=int)


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


def build_finetune_data(cases, metadata: dict, cfg: FinetuneConfig, progress=None) -> FinetuneData:
    """Network slices of the trusted slices of each case, split into training and held-out.

    Parameters
    ----------
    cases : list of ``(case_hash, image, labels, trusted)``
        Canonical image and labels and the (2, AP) trusted mask of each case.
    metadata : dict
        The base model's metadata (its preprocessing is used).
    cfg : FinetuneConfig
    progress : callable, optional
        ``progress(done, total)`` after each case.
    """
    pre = metadata["preprocessing"]
    size, k = tuple(pre["size"]), int(pre["context"])
    seen = ancestors_trained(metadata)   # never held out: the base model has learnt them already
    if cfg.holdout_case is not None and cfg.holdout_case in seen:
        raise ValueError(f"the base model was already fine-tuned on case {cfg.holdout_case[:8]}: hold out "
                         "another case (or a block of slices)")
    if cfg.holdout_case is not None and cfg.holdout_case not in [c[0] for c in cases]:
        raise ValueError(f"the held-out case {cfg.holdout_case[:8]} is not among the cases to fine-tune on")
    train, held, trained = [], [], {}
    for i, (case, image, labels, trusted) in enumerate(cases):
        for s in side_slices(image, labels, size, k, case_id=case, patient_id=case):
            idx = np.flatnonzero(trusted[s.side - 1][:len(s.y)])
            if not idx.size:
                continue
            if cfg.holdout_case is not None:
                hold = idx if case == cfg.holdout_case else idx[:0]
            else:
                # the block is drawn among slices with nerve (accepted empty slices score nothing)
                # that the base model has not been trained on
                fresh = np.setdiff1d(idx[s.positive[idx]], seen.get(case, {}).get(SIDES[s.side], []))
                hold = holdout_block(fresh, cfg.holdout, cfg.seed + 7 * i + s.side)
            keep = np.setdiff1d(idx, hold)
            if keep.size:
                train.append(_select(s, keep))
                trained.setdefault(case, {"right": [], "left": []})[SIDES[s.side]] = keep.tolist()
            if hold.size:
                held.append(_select(s, hold))
        if progress is not None:
            progress(i + 1, len(cases))
    n_train = sum(len(s.y) for s in train)
    n_pos = sum(int(s.positive.sum()) for s in train)
    if not n_train:
        raise ValueError("no corrected or accepted slices to train on")
    if not n_pos:
        raise ValueError("the corrected/accepted training slices hold no nerve label: nothing to learn from")
    return FinetuneData(train, held, n_train, sum(len(s.y) for s in held), n_pos, [c[0] for c in cases], trained)


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


def finetune(model, metadata: dict, data: FinetuneData, cfg: FinetuneConfig, *, parent: str,
             callbacks=None, cancel: Callable[[], bool] | None = None) -> FinetuneResult:
    """Fine-tune ``model`` (left unchanged) on ``data``; returns the new model and its metadata.

    Raises :class:`napari_ian.trainer.train.Cancelled` when ``cancel()`` turns True; nothing is
    written in any case (see :func:`save_finetuned`).
    """
    from .train import TrainConfig, train_model

    training = dict(metadata.get("training") or {})
    net_cfg = {k: v for k, v in metadata.get("network_config", {}).items() if k != "in_channels"}
    pre = metadata["preprocessing"]
    tc = TrainConfig(network=metadata["network"], network_config=net_cfg, context=int(pre["context"]),
                     size=tuple(pre["size"]), loss=training.get("loss", "focal_tversky"),
                     loss_params=training.get("loss_params"), lr=cfg.lr,
                     weight_decay=training.get("weight_decay", 1e-4), epochs=cfg.epochs,
                     batch_size=cfg.batch_size or int(training.get("batch_size", 32)),
                     patience=cfg.epochs + 1, empty_fraction=training.get("empty_fraction", 0.25),
                     augment=training.get("augment", True), seed=cfg.seed, device=cfg.device,
                     select="last")
    before = {"held_out_dsc": score(model, data.held_out, cfg.device), "train_dsc": score(model, data.train, cfg.device)}
    init = copy.deepcopy(model.state_dict())
    new, history, best = train_model(_repeat(data.train, cfg.min_samples), data.held_out, tc, callbacks=callbacks,
                                     cancel=cancel, init_state=init)
    after = {"held_out_dsc": score(new, data.held_out, cfg.device), "train_dsc": score(new, data.train, cfg.device)}
    meta = copy.deepcopy(metadata)
    meta.pop("created", None)
    meta["parent"] = parent
    meta["trained_on"] = (f"{metadata.get('trained_on') or parent}; fine-tuned on {data.n_train} corrected/accepted "
                          f"slices of {len(data.cases)} case(s)")
    meta["finetune"] = {
        "parent": parent, "cases": data.cases, "train_slices": data.n_train, "train_nerve_slices": data.n_train_nerve,
        "held_out_slices": data.n_held_out, "settings": cfg.to_dict(), "before": before, "after": after,
        "trained_slices": _merge_trained(ancestors_trained(metadata), data.trained),
        "device": best.get("device"), "bf16": best.get("bf16"), "seconds": best.get("train_seconds"),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    meta["training"] = {**tc.to_dict(), "finetuned_from": parent}
    # the parent's test figures were not measured on this model: kept, but under the parent's name
    meta["metrics"] = {"finetune_held_out_dsc_before": before["held_out_dsc"],
                       "finetune_held_out_dsc_after": after["held_out_dsc"],
                       "parent_metrics": metadata.get("metrics", {})}
    return FinetuneResult(new, meta, history, before, after)


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
