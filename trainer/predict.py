"""Fully automatic whole-volume prediction: both nerves, no manual crop, labels on the input grid.

The model's pipeline (:mod:`.pipeline`) prepares the volume (robust normalisation, the working
grid), runs the network and maps its nerve probability back onto the input's own grid; the
head's symmetry plane tells the patient's right half from the left (moved beside a nerve it runs
through, or past a lone nerve its course puts on the other side: :mod:`.sides`); nerve-path post-processing
(:mod:`.postprocess`) keeps one continuous nerve per side (or, without it, the probability is
thresholded at 0.5 and specks smaller than ``min_component_mm3`` are removed). Labels:
1 = right IAN, 2 = left IAN. :func:`doubts` says in a few words when the result does not look
like one nerve per side.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Callable

import numpy as np
import torch
from scipy import ndimage

from .device import memory_format, pick_device, use_bf16
from .progress import ProgressCallback
from .pipeline import pipeline_for_model
from .postprocess import PathSettings, SideReport, nerve_path
from .sides import crossed_midline, lone_nerve_midline
from .volume import SIDES

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Prediction:
    labels: np.ndarray         # (AP, SI, RL) uint8
    probability: np.ndarray    # (AP, SI, RL) float32, nerve (either side)
    device: str
    bf16: bool
    midline: int
    reports: dict = dataclasses.field(default_factory=dict)   # {1: SideReport, 2: SideReport}
    doubts: list = dataclasses.field(default_factory=list)    # short phrases; empty = looks like one nerve per side
    large_tiles: bool = False   # a 3D model ran on large tiles (``tile``), not its training patches
    backend: str = "torch"      # what ran the network: ``torch``, ``openvino`` or ``openvino-int8``
    flip_tta: bool = False      # averaged with a pass over the right-left mirrored volume

    @property
    def ran_on(self) -> str:
        """How it ran, for a status line: the device, then OpenVINO, bf16, fast tiles and the
        mirrored pass where used."""
        ov = {"openvino": ", OpenVINO", "openvino-int8": ", OpenVINO int8"}.get(self.backend, "")
        return (f"{self.device}{ov}{', bf16' if self.bf16 else ''}"
                f"{', fast tiles' if self.large_tiles else ''}{', mirrored pass' if self.flip_tta else ''}")


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
                   progress: ProgressCallback | None = None, cancel: Callable[[], bool] | None = None,
                   batch: int | None = None, postprocess: bool | PathSettings = True,
                   tile: tuple | None = None, backend: str = "torch", flip_tta: bool | None = None) -> Prediction:
    """Segment both IANs in a canonical volume.

    Parameters
    ----------
    image : (AP, SI, RL) ndarray
        NaN and Inf voxels are allowed (ignored by the normalisation, then 0).
    model, metadata : from :func:`napari_ian.trainer.modelfile.load_model`
    spacing : voxel size in mm
    device : ``auto`` (CUDA, MPS, CPU), ``cpu``, ``cuda``...
    roi : tuple of slices, optional
        Only this box (canonical voxel slices AP, SI, RL) is labelled; outside it labels are 0.
    min_component_mm3 : float
        Without post-processing: pieces smaller than this are removed.
    progress, cancel : callable, optional
        An ``infer`` event per network batch (and a ``stage`` event before a one-time OpenVINO
        conversion); ``cancel`` is polled between batches and stops the work with :class:`~napari_ian.trainer.progress.Cancelled` (:mod:`napari_ian.trainer.progress`).
    batch : int, optional
        Slices (or patches) per network call.
    postprocess : bool or PathSettings
        One continuous nerve per side (:func:`napari_ian.trainer.postprocess.nerve_path`).
    tile : tuple of 3 int, optional
        A 3D patch model predicts in tiles of at most this many working voxels instead of its
        training patches (:class:`~napari_ian.trainer.pipeline.Patches3D`; ``FAST_TILE`` is
        ``ian predict``'s default, ``None`` its ``--patches``): faster, slightly different
        results. Other models ignore it.
    backend : {"torch", "auto", "openvino", "openvino-int8"}
        What runs the network. ``openvino``: OpenVINO on the CPU, float32
        (:mod:`napari_ian.trainer.openvino_runtime`; 3D patch models only). ``openvino-int8``: the
        int8 version that ships with a bundled model (:mod:`napari_ian.trainer.quantise_int8`),
        an error for other weights. ``auto``: OpenVINO where it is installed, the device is an
        x86-64 CPU (where it was measured) without native bf16 (there PyTorch's bf16 was measured
        fast) and the model is a 3D patch model, in int8 where the model has an int8 version and
        float32 otherwise; PyTorch otherwise, also where both fail. ``torch``: PyTorch.
    flip_tta : bool, optional
        Average the network's probability with a second pass over the right-left mirrored
        volume (twice the network's time; 3D patch and 2.5D slice models, half-slice models have
        none). ``None``: as the model file says (off for the bundled model). Measured in
        ``BENCHMARKS.md`` (twenty-fifth stop): under a hundredth out of style, level in style.
    """
    if image.ndim != 3:
        raise ValueError(f"prediction needs a 3D volume, got shape {image.shape}")
    pipe = pipeline_for_model(metadata)
    if flip_tta is not None:
        pipe = dataclasses.replace(pipe, flip_tta=bool(flip_tta))
    if tile is not None and pipe.kind == "patch3d":
        # tiles must pass the network's downsampling: 2 ** depth where the network says its depth
        depth = (getattr(model, "config", None) or {}).get("depth")
        pipe = dataclasses.replace(pipe, tile=tuple(int(v) for v in tile),
                                   multiple=max(pipe.multiple, 2 ** int(depth)) if depth else pipe.multiple)
    dev = pick_device(device)
    bf16 = use_bf16(dev, "auto" if metadata.get("inference_bf16", True) else False)
    compiled = _openvino_network(model, pipe, dev, bf16, backend, progress)
    if compiled is not None:
        model, bf16, channels_last = compiled, False, False
    else:
        channels_last = dev.type == "cpu"
        model = model.to(dev).eval()
        if channels_last:
            model = model.to(memory_format=memory_format(5 if pipe.kind == "patch3d" else 4))
    batch = batch or {"halfslice": 64, "slices25d": 16, "patch3d": 2}[pipe.kind]
    prep = pipe.prepare(image, spacing, box=roi)
    prob_work = pipe.infer(prep, model, dev, bf16, channels_last, batch, cancel, progress)
    prob = pipe.invert(prob_work, prep, image.shape)
    if roi is not None:
        outside = np.ones(image.shape, bool)
        outside[roi] = False
        prob[outside] = 0.0
    labels, reports, mid, notes = labels_from_probability(prob, spacing, prep.midline, postprocess, min_component_mm3)
    return Prediction(labels, prob, str(dev), bf16, mid, reports, notes + doubts(labels, prob, spacing, reports),
                      large_tiles=getattr(pipe, "tile", None) is not None,
                      backend="torch" if compiled is None else
                      "openvino-int8" if compiled.precision == "int8" else "openvino",
                      flip_tta=len(pipe.flips) > 1)


def labels_from_probability(prob: np.ndarray, spacing, midline: int, postprocess: bool | PathSettings = True,
                            min_component_mm3: float = 2.0) -> tuple[np.ndarray, dict, int, list]:
    """Labels of both nerves from a nerve probability map, as :func:`predict_volume` makes them
    after the network (``prob`` is not changed; :func:`doubts` are not included).

    Parameters
    ----------
    prob : (AP, SI, RL) float ndarray
        Nerve probability (either side) on the input's grid.
    spacing : sequence of 3 float
        Voxel size in mm.
    midline : int
        The head's mirror axis found (first column of the patient's left half); moved beside a
        nerve it runs through, or past a lone nerve (:mod:`.sides`).
    postprocess, min_component_mm3
        As for :func:`predict_volume`.

    Returns
    -------
    labels : (AP, SI, RL) uint8 ndarray
        1 right, 2 left.
    reports : dict
        :class:`~napari_ian.trainer.postprocess.SideReport` per side (empty without post-processing).
    midline : int
        The axis the sides were divided at.
    notes : list of str
        What moved the axis.
    """
    def by_side(mid):
        if postprocess:
            settings = postprocess if isinstance(postprocess, PathSettings) else PathSettings()
            return nerve_path(prob, spacing, mid, settings)
        labels = np.zeros(prob.shape, np.uint8)
        labels[:, :, :mid] = (prob[:, :, :mid] > 0.5) * np.uint8(1)
        labels[:, :, mid:] = (prob[:, :, mid:] > 0.5) * np.uint8(2)
        if min_component_mm3 > 0:
            remove_specks(labels, float(np.prod(spacing)), min_component_mm3)
        return labels, {}

    notes = []
    mid, crossed = crossed_midline(prob > 0.5, spacing, midline)
    if crossed is not None:     # the mirror axis found ran through a nerve: not the head's midline
        notes.append(f"the {SIDES[crossed]} nerve crossed the mirror axis found, so the sides divide beside it")
    labels, reports = by_side(mid)
    lone = lone_nerve_midline(labels, spacing, mid)
    if lone != mid:             # one nerve in view, on the other side of a mirror axis that is not the head's
        mid = lone
        labels, reports = by_side(mid)
        notes.append(f"one nerve in view, called {'left' if mid == 0 else 'right'} from its course")
    return labels, reports, mid, notes


def _openvino_network(model, pipe, device, bf16: bool, backend: str, progress=None):
    """The network compiled by OpenVINO where ``backend`` asks for it (see :func:`predict_volume`), else ``None``."""
    from .openvino_runtime import BACKENDS, compile_for_cpu, openvino_version, x86_cpu

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "torch":
        return None
    if backend != "auto":
        if device.type != "cpu":
            raise ValueError(f"OpenVINO runs the network on the CPU, not on {device.type}")
        if pipe.kind != "patch3d":
            raise ValueError(f"OpenVINO runs 3D patch models only, not a {pipe.kind!r} model")
        precisions = ["int8" if backend == "openvino-int8" else "f32"]
    elif device.type != "cpu" or bf16 or pipe.kind != "patch3d" or not x86_cpu() or openvino_version() is None:
        return None
    else:   # the bundled int8 model where one was made from these weights, float32 otherwise
        precisions = ["int8", "f32"]
    shape = (1, 1) + tuple(int(v) for v in pipe.patch)
    for precision in precisions:
        try:
            return compile_for_cpu(model, example_shape=shape, progress=progress, precision=precision)
        except LookupError as exc:            # no int8 version of these weights: auto goes on to float32
            if backend != "auto":
                raise ValueError(f"backend {backend}: {exc}") from None
        except ImportError as exc:            # only an explicit request gets here without OpenVINO
            raise ValueError(f"backend {backend}: {exc}") from None
        except Exception as exc:  # a network OpenVINO cannot convert or read: asked for, an error; auto, the next
            if backend != "auto":
                raise
            log.warning("OpenVINO could not compile the network in %s (%s); %s", precision, exc,
                        "trying float32" if precision == "int8" else "PyTorch runs it")
    return None


# What one nerve per side looks like (phantom anatomy and the source study's description):
# an IAN from the skull base to the mental foramen is 60-110 mm long.
PLAUSIBLE_MIN_LENGTH_MM = 40.0
DOUBTFUL_MEAN_PROBABILITY = 0.7
DOUBTFUL_BRIDGE_MM = 8.0


def doubts(labels: np.ndarray, probability: np.ndarray, spacing, reports: dict | None = None) -> list[str]:
    """Short phrases naming what makes a prediction look unlike one nerve per side (empty = none).

    Checked per side: no nerve at all; a course shorter than :data:`PLAUSIBLE_MIN_LENGTH_MM`;
    a mean probability inside the nerve below :data:`DOUBTFUL_MEAN_PROBABILITY`; gaps the
    post-processing bridged over more than :data:`DOUBTFUL_BRIDGE_MM` (with their slices); pieces
    left unconnected (without post-processing).
    """
    from .postprocess import _course_length

    sp = np.asarray(spacing, dtype=float)
    out = []
    for code, side in ((1, "right"), (2, "left")):
        mask = labels == code
        if not mask.any():
            out.append(f"no {side} nerve found")
            continue
        rep = (reports or {}).get(code)
        pts = np.argwhere(mask)
        length = rep.length_mm if isinstance(rep, SideReport) else _course_length(pts * sp)
        if length < PLAUSIBLE_MIN_LENGTH_MM:
            out.append(f"{side} nerve only {length:.0f} mm long")
        mp = float(probability[mask].mean())
        if mp < DOUBTFUL_MEAN_PROBABILITY:
            out.append(f"{side} nerve faint (mean probability {mp:.2f})")
        if isinstance(rep, SideReport) and rep.bridged_mm > DOUBTFUL_BRIDGE_MM:
            s = rep.bridge_slices
            out.append(f"{side} nerve bridged over {rep.bridged_mm:.0f} mm (coronal slices {min(s)}–{max(s)})")
        if not isinstance(rep, SideReport):
            _, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
            if n > 1:
                out.append(f"{side} nerve in {n} pieces")
    return out


def doubt_line(pred: Prediction) -> str:
    """One line for the CLI and the Predict panel."""
    if not pred.doubts:
        return "looks like one continuous nerve per side"
    return "doubtful: " + "; ".join(pred.doubts) + " - review these before trusting the labels"
