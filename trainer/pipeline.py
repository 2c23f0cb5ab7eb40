"""How a volume meets a network: prepare -> infer -> invert, one implementation per input kind.

Prediction, fine-tuning and training all go through these steps, so a network that reads 2.5D
slices and one that reads 3D patches slot in the same way:

* **prepare**: robust intensity normalisation on the volume's own grid (:mod:`.normalise`), then
  resampling to the network's working grid of fixed millimetre spacing (:mod:`.resample`), so the
  network sees every scanner's data at one physical scale;
* **infer**: the network's nerve probability on the working grid (fully convolutional over whole
  slices or overlapping patches; optional right-left flip averaging);
* **invert**: the probability back on the volume's own grid (linear interpolation), where it is
  thresholded and the sides are told apart (:mod:`.predict`).

Kinds (``preprocessing["pipeline"]`` in a model file):

* ``slices25d``: each coronal slice with ``context`` neighbours as channels (2.5D);
* ``patch3d``: overlapping 3D patches of ``patch`` voxels (a 3D network);
* ``halfslice``: the source study's per-side slices fitted to a fixed size, on the input's own grid.

Networks output one channel: the nerve (either side). Training samples come from the same
prepared volumes (:meth:`Pipeline.sample`), so training, fine-tuning and prediction agree.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from .boxes import margin_voxels, widened_box
from .device import autocast_context, memory_format
from .progress import INFER, ProgressCallback, check_cancel, report
from .normalise import DEFAULT_NORMALISATION, normalise
from .preprocess import find_midline, merge_sides, prepare_slices, split_sides, unfit
from .resample import to_grid

DEFAULT_SPACING = (0.8, 0.5, 0.5)   # mm (AP, SI, RL) of the working grid
# ``ian predict``'s default (``--fast``): tiles of at most this many working voxels (AP, SI, RL; 77 x 128 x 160 mm),
# so that a jaw field of view takes one to four tiles (BENCHMARKS.md, eleventh stop)
FAST_TILE = (96, 256, 320)


@dataclasses.dataclass
class Prepared:
    """A volume on the working grid, with what is needed to map results back."""

    volume: np.ndarray       # (AP, SI, RL) float32, normalised, working grid
    native_shape: tuple      # shape of the input (or of its box)
    native_spacing: tuple
    working_spacing: tuple
    box: tuple | None = None  # the input's box (canonical voxel slices) that was prepared
    midline: int = 0          # first column (RL) of the patient's left half, on the input's grid
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Pipeline:
    """Settings shared by every kind; see the module docstring."""

    spacing_mm: tuple = DEFAULT_SPACING
    normalisation: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_NORMALISATION))
    flip_tta: bool = False    # average with the right-left mirrored input
    kind = ""

    @property
    def flips(self) -> tuple:
        """The passes :meth:`infer` averages: the input, and its right-left mirror with ``flip_tta``."""
        return (False, True) if self.flip_tta else (False,)

    # -- model file round trip -------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["spacing_mm"] = [float(v) for v in self.spacing_mm]
        return {"pipeline": self.kind, **d}

    # -- prepare / invert --------------------------------------------------------------------
    def prepare(self, volume: np.ndarray, spacing, box: tuple | None = None, margin_mm: float = 8.0) -> Prepared:
        """Normalise (statistics of the whole volume) and resample ``volume`` (or its ``box``,
        widened by ``margin_mm`` of context that :meth:`invert` crops off again)."""
        if volume.ndim != 3:
            raise ValueError(f"a 3D volume is needed, got shape {volume.shape}")
        norm = normalise(volume, self.normalisation)
        midline = find_midline(norm)   # on the whole volume: a box need not be centred on the head
        wide = None
        if box is not None:
            wide = widened_box([b.start for b in box], [b.stop for b in box], margin_voxels(margin_mm, spacing),
                               volume.shape)
            wide = self._box_for(wide, midline, volume.shape)
            norm = norm[wide]
        return self._prepare(norm, tuple(float(s) for s in spacing), wide, midline)

    def _box_for(self, box, midline, shape):
        """The box that is actually prepared (a kind may need more of the slice)."""
        return box

    def _prepare(self, norm, spacing, box, midline) -> Prepared:
        work = to_grid(norm, spacing, self.spacing_mm)
        return Prepared(work, norm.shape, spacing, tuple(self.spacing_mm), box, midline)

    def invert(self, prob: np.ndarray, prepared: Prepared, full_shape=None) -> np.ndarray:
        """Working-grid probability -> the input's own grid (float32 in [0, 1])."""
        back = to_grid(prob, prepared.working_spacing, prepared.native_spacing, prepared.native_shape)
        np.clip(back, 0.0, 1.0, out=back)
        if prepared.box is None:
            return back
        out = np.zeros(full_shape, np.float32)
        out[prepared.box] = back
        return out

    def infer(self, prepared: Prepared, model, device, bf16=False, channels_last=False, batch=16,
              cancel: Callable[[], bool] | None = None, progress: ProgressCallback | None = None) -> np.ndarray:
        """Nerve probability on the working grid; ``progress`` gets an ``infer`` event per batch and
        ``cancel`` is polled between batches (:mod:`napari_ian.trainer.progress`)."""
        raise NotImplementedError

    def sample(self, volume, mask, rng, n, patch, positive_fraction=0.7, allowed=None):
        """``n`` training samples ``(x, y)`` from a prepared volume and its nerve mask."""
        raise NotImplementedError


@torch.no_grad()
def run_network(model, x: np.ndarray, device, bf16=False, channels_last=False) -> np.ndarray:
    """Sigmoid of the network's single output channel for one batch (numpy in, numpy out)."""
    xb = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    if channels_last:
        xb = xb.contiguous(memory_format=memory_format(xb.ndim))
    with autocast_context(device, bf16):
        logits = model(xb)
    return torch.sigmoid(logits.float())[:, 0].cpu().numpy()


def _pad_to(a: np.ndarray, multiple: int, axes) -> tuple[np.ndarray, tuple]:
    pads = [(0, 0)] * a.ndim
    for ax in axes:
        pads[ax] = (0, (-a.shape[ax]) % multiple)
    return (np.pad(a, pads) if any(p[1] for p in pads) else a), tuple(a.shape[ax] for ax in axes)


def context_index(n: int, centre, k: int) -> np.ndarray:
    """Indices of ``k`` neighbouring slices around each ``centre`` (edges repeated)."""
    r = k // 2
    return np.clip(np.asarray(centre)[:, None] + np.arange(-r, r + 1)[None, :], 0, n - 1)


@dataclasses.dataclass
class Slices25D(Pipeline):
    """Coronal slices with ``context`` neighbouring slices as channels.

    Big volumes are done in two passes: every ``roi_stride``-th slice first, then every slice
    but only inside the box around what that pass found (``roi_margin_mm`` around it), so a wide
    field of view (a whole head) costs little more than the jaw. Volumes under
    ``roi_min_voxels`` working voxels go in one pass.
    """

    context: int = 5
    multiple: int = 16
    roi_stride: int = 3
    roi_margin_mm: float = 12.0
    roi_min_voxels: int = 6_000_000
    kind = "slices25d"

    def infer_slices(self, vol, centres, flips, model, device, bf16=False, channels_last=False, box=None):
        """Probabilities (len(centres), H, W) of whole working slices (or of ``box`` in-plane)."""
        n = vol.shape[0]
        sub = vol if box is None else vol[:, box[0], box[1]]
        out = np.zeros((len(centres),) + sub.shape[1:], np.float32)
        for flip in flips:
            padded, (h, w) = _pad_to(sub[:, :, ::-1] if flip else sub, self.multiple, (1, 2))
            p = run_network(model, padded[context_index(n, centres, self.context)], device, bf16, channels_last)[:, :h, :w]
            out += p[:, :, ::-1] if flip else p
        return out / len(flips)

    def infer(self, prepared, model, device, bf16=False, channels_last=False, batch=16, cancel=None, progress=None):
        vol = prepared.volume
        n = vol.shape[0]
        prob = np.zeros(vol.shape, np.float32)
        flips = self.flips
        todo, box = np.arange(n), None
        two_pass = self.roi_stride > 1 and vol.size >= self.roi_min_voxels
        first = np.arange(0, n, self.roi_stride) if two_pass else np.zeros(0, int)
        total = len(first) + n
        done = 0
        if two_pass:
            coarse = np.zeros((len(first),) + vol.shape[1:], np.float32)
            for i in range(0, len(first), batch):
                check_cancel(cancel)
                coarse[i:i + batch] = self.infer_slices(vol, first[i:i + batch], flips, model, device, bf16, channels_last)
                done += len(first[i:i + batch])
                report(progress, INFER, done, total)
            found = np.argwhere(coarse > 0.5)
            if not len(found):
                return prob
            # the coarse pass saw every roi_stride-th slice: a found slice's neighbours count too
            lo = [first[found[:, 0].min()] - self.roi_stride, *found[:, 1:].min(axis=0)]
            hi = [first[found[:, 0].max()] + self.roi_stride + 1, *(found[:, 1:].max(axis=0) + 1)]
            wide = widened_box(lo, hi, margin_voxels(self.roi_margin_mm, self.spacing_mm), vol.shape)
            todo, box = np.arange(wide[0].start, wide[0].stop), wide[1:]
            total = done + len(todo)
        for i in range(0, len(todo), batch):
            check_cancel(cancel)
            centres = todo[i:i + batch]
            p = self.infer_slices(vol, centres, flips, model, device, bf16, channels_last, box)
            if box is None:
                prob[centres] = p
            else:
                prob[centres[0]:centres[-1] + 1, box[0], box[1]] = p
            done += len(centres)
            report(progress, INFER, done, total)
        return prob

    def sample(self, volume, mask, rng, n, patch=(128, 128), positive_fraction=0.7, allowed=None, midline=None):
        """Random 2.5D crops: ``x`` (n, k, H, W) float32, ``y`` (n, H, W) uint8 (0/1).

        A share ``positive_fraction`` is centred near a nerve voxel (within a third of the patch),
        the rest anywhere. With ``allowed`` (2, slices) bool (fine-tuning: which side of which
        slice may be trained on), ``mask`` holds labels 1 (right) / 2 (left), each crop lies within
        one allowed side's half (columns left or right of ``midline``) and its target is that
        side's nerve. Volumes smaller than the patch are zero padded.
        """
        H, W = patch
        pads = [(0, 0), (0, max(0, H - volume.shape[1])), (0, 0)]
        vol, msk = np.pad(volume, pads), np.pad(mask, pads)
        n0, n1, n2 = vol.shape
        if allowed is None:
            regions = [(np.ones(n0, bool), 0, n2, None)]
        else:
            mid = int(midline if midline is not None else n2 // 2)
            regions = [(np.asarray(allowed[0], bool), 0, mid, 1), (np.asarray(allowed[1], bool), mid, n2, 2)]
            regions = [r for r in regions if r[0].any() and r[2] > r[1]]
            if not regions:
                raise ValueError("no slice may be sampled")
        x = np.zeros((n, self.context, H, W), np.float32)
        y = np.zeros((n, H, W), np.uint8)
        cache = {}
        for j in range(n):
            ok, c0, c1, side = regions[int(rng.integers(len(regions)))]
            key = (c0, side)
            if key not in cache:
                target = msk[:, :, c0:c1] > 0 if side is None else msk[:, :, c0:c1] == side
                cache[key] = (target, np.argwhere(target & ok[:, None, None]), np.flatnonzero(ok))
            target, pos, cand = cache[key]
            width = c1 - c0
            if len(pos) and rng.random() < positive_fraction:
                c = pos[rng.integers(len(pos))]
                a = int(c[0])
                top = int(np.clip(c[1] - H // 2 + rng.integers(-H // 3, H // 3 + 1), 0, n1 - H))
                left = int(np.clip(c[2] - W // 2 + rng.integers(-W // 3, W // 3 + 1), 0, max(width - W, 0)))
            else:
                a = int(cand[rng.integers(cand.size)])
                top, left = int(rng.integers(0, n1 - H + 1)), int(rng.integers(0, max(width - W, 0) + 1))
            w = min(W, width)
            idx = context_index(n0, [a], self.context)[0]
            x[j, :, :, :w] = vol[idx, top:top + H, c0 + left:c0 + left + w]
            y[j, :, :w] = target[a, top:top + H, left:left + w]
        return x, y


def _gauss_window(shape) -> np.ndarray:
    """Blending weights for overlapping patches (highest in the centre)."""
    g = [np.exp(-0.5 * ((np.arange(n) - (n - 1) / 2) / (n / 4)) ** 2) for n in shape]
    w = g[0][:, None, None] * g[1][None, :, None] * g[2][None, None, :]
    return (w / w.max()).astype(np.float32) + 1e-3


@dataclasses.dataclass
class Patches3D(Pipeline):
    """Overlapping 3D patches (``patch`` voxels, ``overlap`` fraction) for a 3D network.

    Training crops are ``patch``. Prediction uses tiles of at most ``tile`` voxels where that is
    set (``None``: ``patch``): per axis the fewest tiles that cover the volume with ``overlap`` of a
    ``patch`` between neighbours, each as large as that needs (a multiple of ``multiple``, which
    the network's downsampling needs; never smaller than ``patch``), spread evenly. Fewer, larger
    tiles repeat less work at the seams; results differ a little from the patches', because an
    instance norm's statistics then cover a whole tile (``BENCHMARKS.md``, eleventh stop).
    ``multiple`` is set at prediction time from the network, never stored in a model file."""

    patch: tuple = (48, 96, 96)
    overlap: float = 0.25
    tile: tuple | None = None
    multiple: int = 8
    kind = "patch3d"

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["patch"] = [int(v) for v in self.patch]
        d.pop("multiple")
        if self.tile is None:
            d.pop("tile")
        else:
            d["tile"] = [int(v) for v in self.tile]
        return d

    def tiling(self, shape) -> tuple[tuple, list]:
        """``(tile size, [starts per axis])`` with which prediction covers a volume of ``shape``."""
        if self.tile is None:
            return tuple(self.patch), [self._starts(max(n, p), p) for n, p in zip(shape, self.patch)]
        size, starts = [], []
        for n, p, cap in zip(shape, self.patch, self.tile):
            cap = max(int(cap), p)
            o = int(round(p * self.overlap))
            k = 1 if n <= cap else int(np.ceil((n - o) / (cap - o)))
            t = int(np.ceil((n + (k - 1) * o) / k / self.multiple)) * self.multiple
            t = max(p, min(t, cap) if k > 1 else t)
            size.append(t)
            starts.append([0] if n <= t else [int(round(v)) for v in np.linspace(0, n - t, k)])
        return tuple(size), starts

    def _starts(self, n, p):
        if n <= p:
            return [0]
        step = max(1, int(p * (1 - self.overlap)))
        s = list(range(0, n - p + 1, step))
        if s[-1] != n - p:
            s.append(n - p)
        return s

    def infer(self, prepared, model, device, bf16=False, channels_last=False, batch=2, cancel=None, progress=None):
        return self._infer_array(prepared.volume, self.flips, model, device, bf16, channels_last, batch, cancel,
                                 progress)

    def infer_slices(self, vol, centres, flips, model, device, bf16=False, channels_last=False, box=None, batch=2):
        """Probabilities (len(centres), H, W) of whole working slices, not the whole volume: each
        run of slices within half a patch of each other from one patch-deep slab centred on it
        (at least a quarter patch of context either side, the volume's ends allowing). Slices far
        apart, such as two sides' held-out blocks, never pay for the slices between them."""
        centres = np.asarray(centres, dtype=int)
        n, p = vol.shape[0], int(self.patch[0])
        out = np.zeros((len(centres),) + vol.shape[1:], np.float32)
        order = np.argsort(centres, kind="stable")
        run = [order[0]] if len(order) else []
        runs = []
        for i in order[1:]:
            if centres[i] - centres[run[0]] > p // 2:
                runs.append(run)
                run = []
            run.append(i)
        if run:
            runs.append(run)
        for run in runs:
            a, b = int(centres[run[0]]), int(centres[run[-1]])
            lo = min(max((a + b + 1) // 2 - p // 2, 0), max(n - p, 0))
            hi = min(lo + p, n)
            prob = self._infer_array(vol[lo:hi], tuple(flips), model, device, bf16, channels_last, batch)
            out[run] = prob[centres[run] - lo]
        return out if box is None else out[:, box[0], box[1]]

    def _infer_array(self, vol, flips, model, device, bf16, channels_last, batch, cancel=None, progress=None):
        p, starts = self.tiling(vol.shape)
        # ``batch`` counts training-size patches: larger tiles go fewer at a time (same memory)
        batch = max(1, min(batch, batch * int(np.prod(self.patch)) // int(np.prod(p))))
        pads = [(0, max(0, p[i] - vol.shape[i])) for i in range(3)]
        shape = tuple(vol.shape[i] + pads[i][1] for i in range(3))
        win = _gauss_window(p)
        corners = [(a, b, c) for a in starts[0] for b in starts[1] for c in starts[2]]
        total, done = len(corners) * len(flips), 0
        prob = np.zeros(vol.shape, np.float32)
        for flip in flips:
            src = np.pad(vol[:, :, ::-1] if flip else vol, pads)
            acc = np.zeros(shape, np.float32)
            wsum = np.zeros(shape, np.float32)
            for i in range(0, len(corners), batch):
                check_cancel(cancel)
                group = corners[i:i + batch]
                x = np.stack([src[a:a + p[0], b:b + p[1], c:c + p[2]] for a, b, c in group])[:, None]
                for (a, b, c), o in zip(group, run_network(model, x, device, bf16, channels_last)):
                    sl = (slice(a, a + p[0]), slice(b, b + p[1]), slice(c, c + p[2]))
                    acc[sl] += o * win
                    wsum[sl] += win
                done += len(group)
                report(progress, INFER, done, total)
            out = (acc / np.maximum(wsum, 1e-6))[:vol.shape[0], :vol.shape[1], :vol.shape[2]]
            prob += out[:, :, ::-1] if flip else out
        if len(flips) > 1:
            prob /= len(flips)
        return prob

    def sample(self, volume, mask, rng, n, patch=None, positive_fraction=0.7, allowed=None, midline=None):
        """Random 3D crops: ``x`` (n, 1, D, H, W) float32, ``y`` (n, D, H, W) uint8.

        A share ``positive_fraction`` is centred near a nerve voxel (within a third of the patch),
        the rest anywhere. With ``allowed`` (2, slices) bool (fine-tuning: which side of which
        slice may be trained on), ``mask`` holds labels 1 (right) / 2 (left), crops are centred on
        allowed slices, and a side's half (columns left or right of ``midline``) of a slice that
        is not allowed for that side is marked :data:`~napari_ian.trainer.losses.IGNORE` in
        ``y``: a patch spans many slices, and only the corrected ones may teach. Volumes smaller
        than the patch are zero padded.
        """
        from .losses import IGNORE

        p = tuple(patch or self.patch)
        pads = [(0, max(0, p[i] - volume.shape[i])) for i in range(3)]
        vol, msk = np.pad(volume, pads), np.pad(mask, pads)
        n0, n1, n2 = vol.shape
        target = msk > 0
        if allowed is None:
            pos = np.argwhere(target) if positive_fraction > 0 else np.zeros((0, 3), int)
            pairs = None
        else:
            ok = np.zeros((2, n0), bool)
            ok[:, :volume.shape[0]] = np.asarray(allowed, bool)[:, :volume.shape[0]]
            if not ok.any():
                raise ValueError("no slice may be sampled")
            mid = int(midline if midline is not None else volume.shape[2] // 2)
            right = np.arange(n2) < mid
            # per (slice, column): may this voxel teach? (its side's half, on a slice allowed for that side)
            valid = np.where(right[None, :], ok[0][:, None], ok[1][:, None])          # (slices, columns)
            pos = np.argwhere(target & valid[:, None, :])
            pairs = np.argwhere(ok)                                                    # (side index, slice)
            halves = ((0, max(mid, 1)), (min(mid, volume.shape[2] - 1), volume.shape[2]))
        x = np.empty((n, 1) + p, np.float32)
        y = np.empty((n,) + p, np.uint8)
        for j in range(n):
            if len(pos) and rng.random() < positive_fraction:
                c = pos[rng.integers(len(pos))]
            elif pairs is not None:       # anywhere in an allowed side's half of an allowed slice
                side, a = pairs[rng.integers(len(pairs))]
                c = (int(a), int(rng.integers(n1)), int(rng.integers(*halves[side])))
            else:
                c = None
            if c is not None:
                st = [int(np.clip(c[i] - p[i] // 2 + rng.integers(-p[i] // 3, p[i] // 3 + 1), 0, vol.shape[i] - p[i]))
                      for i in range(3)]
            else:
                st = [int(rng.integers(0, vol.shape[i] - p[i] + 1)) for i in range(3)]
            sl = tuple(slice(s, s + q) for s, q in zip(st, p))
            x[j, 0] = vol[sl]
            y[j] = target[sl]
            if pairs is not None:
                y[j][np.broadcast_to(~valid[sl[0], sl[2]][:, None, :], p)] = IGNORE
        return x, y


@dataclasses.dataclass
class HalfSlices(Pipeline):
    """The source study's slice preprocessing, made automatic (:mod:`.preprocess`): each side's
    half of every coronal slice (the left mirrored), min-max scaled on its own and fitted into
    ``size`` (aspect kept, zero padded), ``context`` neighbouring slices as channels. Works on the
    input's own grid (no working grid); ``ian cv`` and ``ian train --data`` use it."""

    size: tuple = (64, 160)
    context: int = 3
    kind = "halfslice"
    flips = (False,)          # its infer makes no mirrored pass (the left halves are mirrored already)

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["size"] = [int(v) for v in self.size]
        d.pop("spacing_mm", None)
        return d

    def _box_for(self, box, midline, shape):
        # this kind splits each slice at the midline, so a box over one side is widened to both
        # (predict keeps only what lies inside the drawn box)
        if box[2].start < midline < box[2].stop:
            return box
        return box[:2] + (slice(0, shape[2]),)

    def _prepare(self, norm, spacing, box, midline) -> Prepared:
        mid = midline - (box[2].start if box is not None else 0)
        if not 0 < mid < norm.shape[2]:
            raise ValueError("the head's midline could not be found in the image")
        halves = split_sides(norm, mid)
        prepared = {side: prepare_slices(half, self.size, self.context)[::2] for side, half in halves.items()}
        return Prepared(norm, norm.shape, spacing, spacing, box, midline,
                        extra={"mid": mid, "sides": prepared, "half_shapes": {s: h.shape for s, h in halves.items()}})

    def invert(self, prob, prepared, full_shape=None):
        if prepared.box is None:
            return prob
        out = np.zeros(full_shape, np.float32)
        out[prepared.box] = prob
        return out

    def infer(self, prepared, model, device, bf16=False, channels_last=False, batch=64, cancel=None, progress=None):
        sides = prepared.extra["sides"]
        total, done = sum(len(x) for x, _ in sides.values()), 0
        probs = {}
        for side, (x, tf) in sides.items():
            p = np.empty(prepared.extra["half_shapes"][side], dtype=np.float32)
            for i in range(0, len(x), batch):
                check_cancel(cancel)
                for j, pn in enumerate(run_network(model, x[i:i + batch], device, bf16, channels_last)):
                    p[i + j] = unfit(pn, tf)
                done += min(batch, len(x) - i)
                report(progress, INFER, done, total)
            probs[side] = p
        return merge_sides(probs, prepared.extra["mid"], prepared.native_shape)


PIPELINES = {"slices25d": Slices25D, "patch3d": Patches3D, "halfslice": HalfSlices}


def pipeline_from_dict(d: dict) -> Pipeline:
    """The pipeline a model file's ``preprocessing`` describes (unknown keys are refused)."""
    d = dict(d)
    kind = d.pop("pipeline", None)
    if kind not in PIPELINES:
        raise ValueError(f"preprocessing pipeline {kind!r} is not one this napari-ian knows "
                         f"({', '.join(PIPELINES)}); the model was made by another version")
    cls = PIPELINES[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"preprocessing has unknown setting(s) {', '.join(sorted(unknown))}")
    for key in ("spacing_mm", "patch", "size", "tile"):
        if key in d:
            d[key] = tuple(d[key])
    return cls(**d)


def pipeline_for_model(metadata: dict) -> Pipeline:
    """The pipeline of a model file; files written before pipelines had a name are half-slice ones."""
    pre = dict(metadata.get("preprocessing") or {})
    if "pipeline" not in pre:
        return HalfSlices(size=tuple(pre["size"]), context=int(pre["context"]))
    return pipeline_from_dict(pre)
