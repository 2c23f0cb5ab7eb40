"""Fully automatic whole-volume prediction: both nerves, no manual crop, labels on the input grid.

The head's symmetry plane splits the volume into its right and left halves (the left mirrored),
every coronal slice of each half is preprocessed as in training, the network's probabilities are
mapped back by the exact inverse transform, thresholded at 0.5, and specks smaller than
``min_component_mm3`` are removed. Labels: 1 = right IAN, 2 = left IAN.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch
from scipy import ndimage

from .preprocess import find_midline, merge_sides, prepare_slices, split_sides, unfit
from .train import Cancelled, autocast_context, cpu_bf16_supported, pick_device, predict_probabilities


@dataclasses.dataclass
class Prediction:
    labels: np.ndarray         # (AP, SI, RL) uint8
    probability: np.ndarray    # (AP, SI, RL) float32, max over sides
    device: str
    bf16: bool
    midline: int


def parse_roi(text: str, shape) -> tuple:
    """``"a0:a1,s0:s1,r0:r1"`` (canonical voxel ranges, empty = whole axis) -> slices."""
    parts = text.split(",")
    if len(parts) != 3:
        raise ValueError(f"--roi {text!r}: give three ranges AP,SI,RL such as 10:90,:,:")
    out = []
    for part, n in zip(parts, shape):
        lo, _, hi = part.partition(":")
        a, b = int(lo) if lo.strip() else 0, int(hi) if hi.strip() else n
        if not (0 <= a < b <= n):
            raise ValueError(f"--roi range {part!r} is outside 0..{n}")
        out.append(slice(a, b))
    return tuple(out)


def remove_specks(labels: np.ndarray, voxel_mm3: float, min_component_mm3: float) -> np.ndarray:
    """Zero, in place, connected components (26-neighbourhood) smaller than ``min_component_mm3``.

    Labelling runs only on the box around the labelled voxels: the nerves fill a tiny part of
    the volume, and labelling a whole volume holds Python's lock for a while (a GUI would stall).
    """
    nz = [np.flatnonzero(labels.any(axis=tuple(j for j in range(labels.ndim) if j != i))) for i in range(labels.ndim)]
    if any(len(a) == 0 for a in nz):
        return labels
    box = tuple(slice(a[0], a[-1] + 1) for a in nz)
    sub = labels[box]
    comp, n = ndimage.label(sub > 0, structure=np.ones((3,) * labels.ndim))
    if n:
        sizes = np.bincount(comp.ravel())[1:] * voxel_mm3
        small = np.flatnonzero(sizes < min_component_mm3) + 1
        if small.size:
            sub[np.isin(comp, small)] = 0
    return labels


def roi_from_vertices(vertices, shape) -> tuple:
    """The box spanned by drawn vertices (canonical voxel coordinates) -> slices per axis.

    An axis the vertices do not span (all on one slice, as for a rectangle drawn on one coronal
    slice) is taken whole; rectangles drawn on two slices bound that axis too.

    Parameters
    ----------
    vertices : (N, 3) array-like
        Corner points in the image's voxel coordinates (AP, SI, RL).
    shape : tuple of 3 int
        The image shape.

    Returns
    -------
    tuple of 3 slices
    """
    v = np.asarray(vertices, dtype=float).reshape(-1, 3)
    if not len(v):
        raise ValueError("the box has no corners: draw a rectangle first")
    out = []
    for axis, n in enumerate(shape):
        lo, hi = v[:, axis].min(), v[:, axis].max()
        if hi - lo < 0.5:
            out.append(slice(0, n))
            continue
        a, b = int(np.clip(np.floor(lo + 0.5), 0, n)), int(np.clip(np.floor(hi + 0.5) + 1, 0, n))
        if b <= a:
            raise ValueError(f"the box lies outside the image along axis {axis} (0..{n - 1})")
        out.append(slice(a, b))
    return tuple(out)


def predict_volume(image: np.ndarray, model: torch.nn.Module, metadata: dict, spacing=(1.0, 1.0, 1.0),
                   device: str = "auto", roi: tuple | None = None, min_component_mm3: float = 2.0,
                   progress: Callable[[int, int], None] | None = None,
                   cancel: Callable[[], bool] | None = None, batch: int = 64) -> Prediction:
    """Segment both IANs in a canonical volume (see :func:`predict_steps` for the parameters)."""
    steps = predict_steps(image, model, metadata, spacing, device, roi, min_component_mm3, cancel, batch)
    while True:
        try:
            done, total = next(steps)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(done, total)


def predict_steps(image: np.ndarray, model: torch.nn.Module, metadata: dict, spacing=(1.0, 1.0, 1.0),
                  device: str = "auto", roi: tuple | None = None, min_component_mm3: float = 2.0,
                  cancel: Callable[[], bool] | None = None, batch: int = 64):
    """Generator form of :func:`predict_volume`: yields ``(done, total)`` slices, returns a Prediction.

    A GUI worker can stop it between batches (nothing is returned then).

    Parameters
    ----------
    image : (AP, SI, RL) ndarray
    model, metadata : from :func:`napari_ian.trainer.modelfile.load_model`
    spacing : voxel size in mm (for the speck filter)
    device : ``auto`` (CUDA, MPS, CPU), ``cpu``, ``cuda``...
    roi : tuple of slices, optional
        Only this box (canonical voxel slices AP, SI, RL) is predicted; outside it labels are 0.
    cancel : callable, optional
        Polled between batches; raises :class:`Cancelled`.
    """
    if image.ndim != 3:
        raise ValueError(f"prediction needs a 3D volume, got shape {image.shape}")
    pre = metadata["preprocessing"]
    size, k = tuple(pre["size"]), int(pre["context"])
    dev = pick_device(device)
    bf16 = dev.type == "cpu" and bool(metadata.get("inference_bf16", True)) and cpu_bf16_supported()
    model = model.to(dev).eval()
    channels_last = dev.type == "cpu"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    full_shape = image.shape
    mid = find_midline(image)  # on the whole volume: a box need not be centred on the head
    ap = roi[0] if roi is not None else slice(None)
    sub = image[ap]            # only the box's coronal slices are run through the network
    halves = split_sides(np.asarray(sub, dtype=np.float32), mid)
    total = sum(h.shape[0] for h in halves.values())
    done = 0
    probs = {}
    for side, half in halves.items():
        x, _, tf = prepare_slices(half, size, k)
        p = np.empty(half.shape, dtype=np.float32)
        for i in range(0, x.shape[0], batch):
            p_net = predict_probabilities(model, x[i:i + batch], dev, bf16, channels_last, batch, cancel)
            for j, pn in enumerate(p_net):
                p[i + j] = unfit(pn, tf)
            done += len(p_net)
            yield done, total
        probs[side] = p
    prob_sub = merge_sides(probs, mid, sub.shape)
    lab_sub = merge_sides({s: (p > 0.5).astype(np.uint8) * s for s, p in probs.items()}, mid, sub.shape, np.uint8)
    if roi is not None:  # the box first, so the speck filter sees what will be kept
        keep = np.zeros(sub.shape, bool)
        keep[:, roi[1], roi[2]] = True
        lab_sub[~keep] = 0
        prob_sub[~keep] = 0.0
    if min_component_mm3 > 0:
        remove_specks(lab_sub, float(np.prod(spacing)), min_component_mm3)
    labels = np.zeros(full_shape, np.uint8)
    prob = np.zeros(full_shape, np.float32)
    labels[ap], prob[ap] = lab_sub, prob_sub
    if roi is not None:
        outside = np.ones(full_shape, bool)
        outside[roi] = False
        labels[outside] = 0
        prob[outside] = 0.0
    return Prediction(labels, prob, str(dev), bf16, mid)
