"""Training on randomised synthetic volumes (domain randomisation), through the same pipeline as prediction.

A model trained on one phantom's look learns that look. Here every training volume is a phantom
anatomy seen through a random acquisition (:mod:`napari_ian.sample_data.synth`): random per-tissue
intensities and texture, voxel size, partial volume, ghosts, bias, noise, gamma and metal, a random
field of view, head pose and jaw shape. The network can only rely on what all of them share: the
nerve's shape and its place among the other tissues (the SynthSeg idea).

:class:`VolumePool` keeps a pool of such volumes, already normalised on the working grid, and a
background thread replaces one every few training steps, so rendering overlaps training.
:class:`SyntheticSampler` draws each batch's crops from several pool volumes (one look per batch
would skew BatchNorm). Validation runs the real prediction path (whole slices or patches) on fixed
volumes of held-out anatomies.
"""
from __future__ import annotations

import threading

import numpy as np

from .metrics import metrics_from_counts
from .normalise import normalise
from .pipeline import Pipeline, Prepared
from .progress import PREPARE, ProgressCallback, check_cancel, report


def _render(anatomy, seed, pipeline: Pipeline, family=None, ranges=None):
    from ..sample_data.synth import random_volume

    rng = np.random.default_rng(seed)
    image, labels, style = random_volume(anatomy, rng, family=family, ranges=ranges)
    return normalise(image, pipeline.normalisation), labels, style


class VolumePool:
    """Rendered, normalised training volumes on the working grid, refreshed in the background.

    Parameters
    ----------
    anatomies : list of :class:`napari_ian.sample_data.synth.AnatomyVolume`
        Rasterised on the pipeline's working grid.
    pipeline : Pipeline
    size : int
        Volumes held at once.
    refresh_every : int
        Training steps per replaced volume (rendering takes ~1-5 s on a laptop CPU).
    seed : int
    family : str, optional
        Only this style family (default: all, see ``render.STYLE_RANGES``).
    """

    def __init__(self, anatomies, pipeline: Pipeline, size: int = 16, refresh_every: int = 4, seed: int = 0,
                 family: str | None = None, ranges: dict | None = None):
        if not anatomies:
            raise ValueError("no anatomies to render training volumes from")
        for a in anatomies:
            if not np.allclose(a.spacing, pipeline.spacing_mm):
                raise ValueError(f"anatomy {a.seed} is on a {a.spacing} mm grid, the pipeline works at "
                                 f"{tuple(pipeline.spacing_mm)} mm")
        self.anatomies, self.pipeline, self.size = anatomies, pipeline, size
        self.refresh_every, self.family, self.ranges = refresh_every, family, ranges
        self.rng = np.random.default_rng([seed, 5])
        self.items: list = []
        self.families: dict[str, int] = {}     # volumes rendered per style family
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._wanted = threading.Semaphore(0)
        self._stop = threading.Event()
        self._thread = None
        self._steps = 0

    def _one(self):
        a = self.anatomies[int(self.rng.integers(len(self.anatomies)))]
        vol, labels, style = _render(a, int(self.rng.integers(2 ** 31)), self.pipeline, self.family, self.ranges)
        self.families[style.family] = self.families.get(style.family, 0) + 1
        return vol, (labels > 0).astype(np.uint8)

    @property
    def rendered(self) -> int:
        """Volumes rendered so far (all families)."""
        return sum(self.families.values())

    def fill(self, progress: ProgressCallback | None = None, cancel=None):
        """Render the first ``size`` volumes (blocking), then start the refresh thread."""
        while len(self.items) < self.size:
            check_cancel(cancel)
            self.items.append(self._one())
            report(progress, PREPARE, len(self.items), self.size, message="rendered volume")
        self._thread = threading.Thread(target=self._refresh, name="napari-ian-volume-pool", daemon=True)
        self._thread.start()

    def _refresh(self):
        while not self._stop.is_set():
            if not self._wanted.acquire(timeout=0.5):
                continue
            try:
                item = self._one()
            except Exception as exc:   # one bad draw must not freeze the pool for the rest of the run
                self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            with self._lock:
                self.items[int(self.rng.integers(len(self.items)))] = item

    def step(self):
        """Called once per training step: every ``refresh_every`` steps one volume is replaced."""
        self._steps += 1
        if self._steps % self.refresh_every == 0:
            self._wanted.release()

    def pick(self, rng, n):
        with self._lock:
            return [self.items[int(i)] for i in rng.integers(len(self.items), size=n)]

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


class SyntheticSampler:
    """Batches of crops from a :class:`VolumePool` (``volumes_per_batch`` volumes each), with
    random right-left mirroring (the network outputs the nerve of either side)."""

    def __init__(self, pool: VolumePool, pipeline: Pipeline, batch_size: int, steps: int, patch,
                 positive_fraction: float = 0.7, volumes_per_batch: int = 4):
        self.pool, self.pipeline, self.batch_size, self.steps = pool, pipeline, batch_size, steps
        self.patch, self.positive_fraction, self.vpb = tuple(patch), positive_fraction, volumes_per_batch

    def batches(self, rng, rank=0, world=1):
        for _ in range(self.steps):
            vols = self.pool.pick(rng, self.vpb)
            per = [self.batch_size // self.vpb + (1 if i < self.batch_size % self.vpb else 0) for i in range(self.vpb)]
            xs, ys = [], []
            for (vol, mask), n in zip(vols, per):
                x, y = self.pipeline.sample(vol, mask, rng, n, self.patch, self.positive_fraction)
                xs.append(x)
                ys.append(y)
            x, y = np.concatenate(xs), np.concatenate(ys)
            flip = rng.random(len(x)) < 0.5
            x[flip] = x[flip][..., ::-1]
            y[flip] = y[flip][..., ::-1]
            self.pool.step()
            yield x, y


def validation_volumes(anatomies, pipeline: Pipeline, per_anatomy: int = 2, seed: int = 12345,
                       families=("mrn", "random"), ranges=None) -> list:
    """Fixed rendered volumes of ``anatomies`` (validation's held-out ones; fine-tuning's rehearsal
    renders a training one): ``(Prepared, mask)`` pairs; look ``j`` of anatomy ``i`` is seeded
    ``seed + 100 * i + j`` and drawn from ``families[j % len(families)]`` (None: any family)."""
    out = []
    for i, a in enumerate(anatomies):
        for j in range(per_anatomy):
            vol, labels, _ = _render(a, seed + 100 * i + j, pipeline, families[j % len(families)], ranges)
            out.append((Prepared(vol, vol.shape, tuple(pipeline.spacing_mm), tuple(pipeline.spacing_mm)),
                        (labels > 0).astype(np.uint8)))
    return out


def slice_dsc_volume(prob: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-coronal-slice DSC of ``prob > 0.5`` against ``mask`` over the reference-positive slices."""
    p, t = prob > 0.5, mask.astype(bool)
    tp = np.count_nonzero(p & t, axis=(1, 2))
    fp = np.count_nonzero(p & ~t, axis=(1, 2))
    fn = np.count_nonzero(~p & t, axis=(1, 2))
    m = metrics_from_counts(tp, fp, fn)
    return m.dsc[m.reference_positive]


def volume_validator(pipeline: Pipeline, volumes, batch: int = 16):
    """``validate(model, device, bf16, channels_last)``: mean coronal-slice DSC on ``volumes``.

    The mean runs over slices that hold nerve, so a slice pipeline is run on those slices only
    (their neighbours still feed its context); a patch pipeline runs on the whole volume.
    """
    from .pipeline import Slices25D

    def one(prep, mask, model, device, bf16, channels_last):
        if isinstance(pipeline, Slices25D):
            idx = np.flatnonzero(mask.any(axis=(1, 2)))
            prob = np.zeros(mask.shape, np.float32)
            for i in range(0, len(idx), batch):
                prob[idx[i:i + batch]] = pipeline.infer_slices(prep.volume, idx[i:i + batch], (False,), model, device,
                                                          bf16, channels_last)
            return prob
        return pipeline.infer(prep, model, device, bf16, channels_last, batch)

    def validate(model, device, bf16, channels_last):
        model.eval()
        scores = [slice_dsc_volume(one(prep, mask, model, device, bf16, channels_last), mask)
                  for prep, mask in volumes]
        d = np.concatenate(scores) if scores else np.zeros(0)
        return float(d.mean()) if d.size else float("nan")
    return validate
