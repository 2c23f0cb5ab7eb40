"""Losses for 1-channel nerve logits: Focal Tversky (the paper's), Dice, BCE, Dice + BCE (synthetic training)
and Dice + BCE + skeleton recall.

Focal Tversky (Abraham & Khan 2019): Tversky index TI = TP / (TP + a FN + b FP) with soft counts
from sigmoid probabilities; a > b weighs missed nerve (FN) more than false alarms.
Two focal forms are in use: Abraham & Khan's ``(1 - TI) ** (1 / gamma)`` (gamma 4/3) and the
form of common implementations (segmentation_models_pytorch, the paper's "gamma = 2.0; mean
reduction") ``(1 - TI) ** gamma``. We use the latter, ``(1 - TI) ** gamma`` with gamma = 2,
alpha (FN weight) = 0.7 and beta (FP weight) = 0.3 by default, TI computed per image and the
loss averaged over the batch (mean reduction). Images whose target is empty get TI from their
soft false positives alone (smooth = 1), so predicting nothing on them costs nothing.

Targets may mark voxels :data:`IGNORE` (fine-tuning a 3D network on corrected slices: the
slices of a patch nobody corrected); every loss leaves them out of its counts and its mean.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


IGNORE = 255
"""Target value of voxels no loss counts."""


def _split(logits, target):
    """Probabilities and 0/1 targets, with ignored voxels zeroed in both."""
    p = torch.sigmoid(logits.float())
    valid = target != IGNORE
    if bool(valid.all()):
        return p, target.float()
    return p * valid, (target == 1).float()


def _soft_counts(logits, target):
    p, t = _split(logits, target)
    p, t = p.flatten(1), t.flatten(1)
    tp = (p * t).sum(1)
    fp = (p * (1 - t)).sum(1)     # ignored voxels: p and t are 0, so they add nothing
    fn = ((1 - p) * t).sum(1)
    return tp, fp, fn


def focal_tversky_loss(logits, target, alpha: float = 0.7, beta: float = 0.3, gamma: float = 2.0,
                       smooth: float = 1.0):
    """Mean over the batch of ``(1 - TI) ** gamma``; see the module docstring."""
    tp, fp, fn = _soft_counts(logits, target)
    ti = (tp + smooth) / (tp + alpha * fn + beta * fp + smooth)
    return ((1 - ti).clamp(min=0) ** gamma).mean()


def dice_loss(logits, target, smooth: float = 1.0):
    """1 - soft Dice per image, averaged."""
    tp, fp, fn = _soft_counts(logits, target)
    return (1 - (2 * tp + smooth) / (2 * tp + fp + fn + smooth)).mean()


def bce_loss(logits, target, pos_weight: float = 10.0):
    """Binary cross-entropy with a positive-class weight for the tiny nerve (mean over valid voxels)."""
    pw = torch.tensor(pos_weight, device=logits.device)
    valid = target != IGNORE
    if bool(valid.all()):
        return F.binary_cross_entropy_with_logits(logits.float(), target.float(), pos_weight=pw)
    per_voxel = F.binary_cross_entropy_with_logits(logits.float(), (target == 1).float(), pos_weight=pw,
                                                   reduction="none")
    valid = valid.float()
    return (per_voxel * valid).sum() / valid.sum().clamp(min=1)


def dice_ce_loss(logits, target, pos_weight: float = 3.0, smooth: float = 1.0):
    """Soft Dice over the whole batch plus binary cross-entropy (the nnU-Net default, Isensee et al.
    2021). Counting TP, FP and FN over the batch instead of per image gives a tiny structure a
    steady signal from the first steps, where a per-image index mostly says "predict less"."""
    p, t = _split(logits, target)
    tp = (p * t).sum()
    dice = 1 - (2 * tp + smooth) / (p.sum() + t.sum() + smooth)
    return dice + bce_loss(logits, target, pos_weight)


def _skeletons(mask: np.ndarray) -> np.ndarray:
    """The skeleton of each (H, W) or (D, H, W) image of a (B, C, ...) boolean array."""
    from skimage.morphology import skeletonize

    out = np.zeros(mask.shape, np.float32)
    for idx in np.ndindex(*mask.shape[:2]):
        if mask[idx].any():
            out[idx] = skeletonize(mask[idx])
    return out


def skeleton_recall_loss(logits, target, smooth: float = 1.0):
    """1 - the soft share of the target's skeleton that the prediction covers, over the batch
    (the skeleton recall loss, Kirchhoff et al., ECCV 2024).

    Dice and cross-entropy count voxels, so a thin or faint stretch of nerve weighs little
    against its thick stretches and the model may leave it out; along the skeleton every
    millimetre of the nerve weighs the same. The skeleton is taken of the 0/1 target (ignored
    voxels are not nerve) on the CPU, a few milliseconds per 3D patch; a batch without nerve
    costs nothing."""
    p, t = _split(logits, target)
    skel = torch.from_numpy(_skeletons(t.detach().cpu().numpy() > 0.5)).to(device=p.device, dtype=p.dtype)
    return 1 - ((p * skel).sum() + smooth) / (skel.sum() + smooth)


def dice_ce_skeleton_loss(logits, target, pos_weight: float = 3.0, smooth: float = 1.0,
                          skeleton_weight: float = 1.0):
    """:func:`dice_ce_loss` plus ``skeleton_weight`` times :func:`skeleton_recall_loss`."""
    return (dice_ce_loss(logits, target, pos_weight, smooth)
            + skeleton_weight * skeleton_recall_loss(logits, target, smooth))


LOSSES = {"focal_tversky": focal_tversky_loss, "dice": dice_loss, "bce": bce_loss, "dice_ce": dice_ce_loss,
          "dice_ce_skeleton": dice_ce_skeleton_loss}
DEFAULT_LOSS_PARAMS = {"focal_tversky": {"alpha": 0.7, "beta": 0.3, "gamma": 2.0}}


def get_loss(name: str, **params):
    """A loss function by name, with its parameters bound."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; available: {', '.join(LOSSES)}")
    fn = LOSSES[name]
    return lambda logits, target: fn(logits, target, **params)
