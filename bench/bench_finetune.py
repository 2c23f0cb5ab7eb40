"""Fine-tuning on 10 corrected slices of a shifted-contrast phantom: DSC before/after, time, forgetting.

The domain shift: the phantom's intensities through a gamma of 0.4 (``image ** 0.4`` after scaling
to [0, 1]): a protocol with compressed contrast between nerve, fat and muscle, which the bundled
model (trained on the standard phantom contrast) does poorly on. A person "corrects" 10 coronal
slices spread along the nerve (their ground truth becomes the labels, both sides trusted); the
model is fine-tuned with the defaults of the panel and ``ian finetune`` and the whole case is
predicted again. Reported:

* per-slice DSC (docs/definitions.md: coronal, reference-positive slices) on the case's *other* slices, before
  and after, per side and both together (goal: +0.15);
* wall time of the fine-tuning (data preparation + training + before/after scoring; goal <= 120 s
  on the 2-core CPU);
* forgetting: the same DSC on three unshifted phantom patients the model never saw (seeds 5000-5002,
  as in the accuracy section), before and after.

Run: ``.venv/bin/python bench/bench_finetune.py [--seed 100] [--epochs 30]``.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from napari_ian.sample_data.phantom import make_phantom
from napari_ian.trainer.finetune import FinetuneConfig, build_finetune_data, finetune
from napari_ian.trainer.metrics import slice_metrics
from napari_ian.trainer.modelfile import load_model
from napari_ian.trainer.predict import predict_volume
from napari_ian.trainer.registry import resolve_model


def shifted(image: np.ndarray, gamma: float = 0.4) -> np.ndarray:
    """The phantom seen through another contrast: intensities scaled to [0, 1] and raised to ``gamma``."""
    x = np.clip(image, 0, None) / max(float(image.max()), 1e-6)
    return (x ** gamma).astype(np.float32)


def mean_dsc(reference, prediction, slices=None):
    """{side: mean per-slice DSC over reference-positive slices (optionally only ``slices``)}, and both."""
    out, all_d = {}, []
    for lab, side in ((1, "right"), (2, "left")):
        sm = slice_metrics(reference, prediction, lab)
        keep = sm.reference_positive.copy()
        if slices is not None:
            mask = np.zeros_like(keep)
            mask[slices] = True
            keep &= mask
        d = sm.dsc[keep]
        out[side] = float(d.mean()) if d.size else float("nan")
        all_d.append(d)
    out["both"] = float(np.concatenate(all_d).mean())
    return out


def corrected_slices(labels: np.ndarray, n: int = 10) -> np.ndarray:
    """``n`` coronal slices spread evenly over the span where both nerves are labelled."""
    both = np.flatnonzero((labels == 1).any(axis=(1, 2)) & (labels == 2).any(axis=(1, 2)))
    return both[np.linspace(0, len(both) - 1, n).round().astype(int)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=100, help="phantom patient of the shifted case")
    ap.add_argument("--epochs", type=int, default=FinetuneConfig.epochs)
    ap.add_argument("--lr", type=float, default=FinetuneConfig.lr)
    ap.add_argument("--slices", type=int, default=10)
    args = ap.parse_args()

    base_path = resolve_model("ian-default")
    model, meta = load_model(base_path)
    image, labels, sp, _ = make_phantom(args.seed)
    image = shifted(image)
    chosen = corrected_slices(labels, args.slices)
    others = np.setdiff1d(np.arange(image.shape[0]), chosen)
    trusted = np.zeros((2, image.shape[0]), bool)
    trusted[:, chosen] = True

    before = predict_volume(image, model, meta, sp, device="cpu").labels
    cfg = FinetuneConfig(epochs=args.epochs, lr=args.lr, device="cpu")
    t0 = time.perf_counter()
    data = build_finetune_data([("bench", image, labels, trusted)], meta, cfg)
    result = finetune(model, meta, data, cfg, parent=base_path.stem)
    seconds = time.perf_counter() - t0
    after = predict_volume(image, result.model, result.metadata, sp, device="cpu").labels

    d_before, d_after = mean_dsc(labels, before, others), mean_dsc(labels, after, others)
    forget = []
    for seed in (5000, 5001, 5002):
        img, lab, s, _ = make_phantom(seed)
        forget.append((mean_dsc(lab, predict_volume(img, model, meta, s, device="cpu").labels)["both"],
                       mean_dsc(lab, predict_volume(img, result.model, result.metadata, s, device="cpu").labels)["both"]))
    forget = np.asarray(forget)

    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}; phantom seed {args.seed} at gamma 0.4, shape {image.shape}; "
          f"corrected slices {chosen.tolist()}; {cfg.epochs} epochs, lr {cfg.lr}, device "
          f"{result.metadata['finetune']['device']} (bf16 {result.metadata['finetune']['bf16']})")
    print(f"training side slices {data.n_train} ({data.n_train_nerve} with nerve), held out {data.n_held_out}")
    print("| measure | before | after | change |\n| --- | --- | --- | --- |")
    for side in ("right", "left", "both"):
        print(f"| DSC on the case's other slices, {side} | {d_before[side]:.3f} | {d_after[side]:.3f} | "
              f"{d_after[side] - d_before[side]:+.3f} |")
    print(f"| DSC on the panel's held-out corrected slices | {result.before['held_out_dsc']:.3f} | "
          f"{result.after['held_out_dsc']:.3f} | {result.after['held_out_dsc'] - result.before['held_out_dsc']:+.3f} |")
    print(f"| DSC on 3 unshifted unseen phantoms (5000-5002), mean | {forget[:, 0].mean():.3f} | "
          f"{forget[:, 1].mean():.3f} | {forget[:, 1].mean() - forget[:, 0].mean():+.3f} |")
    print(f"| fine-tuning wall time (prepare + train + score) | | {seconds:.1f} s | |")


if __name__ == "__main__":
    main()
