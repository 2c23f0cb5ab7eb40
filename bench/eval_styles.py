"""In-style and out-of-style accuracy of models on phantom data they never saw (issue 7's protocol).

Test sets (each made once, deterministically, and cached in ``bench/out/eval_sets``):

* ``in-style``: randomised renders (the training generator: random contrasts, voxel sizes,
  artefacts, pose, field of view) of test-range anatomies no model trained on;
* ``sample``: the sample phantom (the new generator's fixed nerve-selective look on its
  0.8 x 1.6 x 0.43 mm acquisition grid with partial volume), seeds 2000-;
* ``v1``: phantoms of the project's previous generator (``bench/phantom_v1.py``: another anatomy
  code and intensity model, soft partial-volume blending) - a style no current model trained on;
* ``unseen-artefacts``: the sample phantom with artefacts outside every training range: k-space
  truncation (Gibbs ringing), a spike (herringbone), ghosting 2-3 times stronger than trained,
  3.2 mm thick slices, low SNR.

Every model runs through the real prediction path (``predict_volume``, with and without the
nerve-path post-processing) and is scored with the project's metric definitions (coronal-slice
DSC, failure rates, 3D DSC, HD95). Phantom figures, not clinical ones.

Run: ``.venv/bin/python bench/eval_styles.py --model ian-default --model bench/out/models/x.pt``
(``--tile fast`` also scores ``ian predict --fast``; ``--tile 64,192,224`` other tile limits;
``--per-case`` prints each case's DSC per side and what the prediction doubted; ``--backend
openvino`` runs the network through OpenVINO, ``--backend torch --backend openvino`` scores both;
``--flip-tta`` also scores each model averaged with a pass over the mirrored volume).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np

from napari_ian.sample_data.phantom import make_phantom
from napari_ian.trainer.evaluation import evaluate_volume, pooled_summary
from napari_ian.trainer.modelfile import load_model
from napari_ian.trainer.openvino_runtime import BACKENDS
from napari_ian.trainer.pipeline import FAST_TILE
from napari_ian.trainer.predict import predict_volume
from napari_ian.trainer.registry import resolve_model

HERE = Path(__file__).resolve().parent
SETS = ("in-style", "sample", "v1", "unseen-artefacts")


def _v1():
    import sys

    spec = importlib.util.spec_from_file_location("phantom_v1", HERE / "phantom_v1.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["phantom_v1"] = mod          # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def unseen_artefacts(image, spacing, rng):
    """Artefacts no training volume had: Gibbs ringing, a k-space spike, strong ghosts, thick
    slices, low SNR (see the module docstring)."""
    from scipy import ndimage

    from napari_ian.sample_data.render import add_noise, motion_ghosts

    img = image.astype(np.float32)
    # 3.2 mm slices along SI on the 1.6 mm grid: each slice's profile spans its own voxel and half of
    # each neighbour, centred (an averaged pair, as before version 2 of this set, moved the image
    # half a voxel - 0.8 mm - off its labels)
    img = ndimage.convolve1d(img, [0.25, 0.5, 0.25], axis=1, mode="nearest")
    # k-space truncation along RL: keep the central 45 % (Gibbs ringing)
    F = np.fft.fftshift(np.fft.fft(img, axis=2), axes=2)
    n = img.shape[2]
    keep = np.zeros(n, bool)
    keep[int(n * 0.275):int(n * 0.725)] = True
    F[:, :, ~keep] = 0
    # a spike: one bright k-space point (herringbone stripes)
    F[img.shape[0] // 3, :, int(n * 0.6)] += np.abs(F).max() * 0.03
    img = np.abs(np.fft.ifft(np.fft.ifftshift(F, axes=2), axis=2)).astype(np.float32)
    img = motion_ghosts(img, 0.8, rng, axis=0)
    top = float(np.percentile(img, 99.5))
    return add_noise(img, top / 8.0, 1, rng)


def make_set(name: str, n: int, start: int = 0):
    """Yield ``(case_id, image, labels, spacing)`` of cases ``start`` to ``n - 1`` of a test set
    (each case is made from its own seeds, so any one can be made alone)."""
    from napari_ian.sample_data.synth import SEED_BASE, anatomy_on_grid, random_volume

    if name == "in-style":
        for i in range(start, n):
            a = anatomy_on_grid(SEED_BASE["test"] + i // 2)
            rng = np.random.default_rng([777, i])
            img, lab, st = random_volume(a, rng, family=("mrn", "random")[i % 2])
            yield f"test{i}-{st.family}", img, lab, a.spacing
    elif name in ("sample", "unseen-artefacts"):
        for i in range(start, n):
            img, lab, sp, _ = make_phantom(2000 + i)
            if name == "unseen-artefacts":
                img = unseen_artefacts(img, sp, np.random.default_rng([888, i]))
            yield f"{name}{2000 + i}", img, lab, sp
    elif name == "v1":
        v1 = _v1()
        for i in range(start, n):
            img, lab, sp, _ = v1.make_phantom(2000 + i)
            yield f"v1-{2000 + i}", img, lab, sp
    else:
        raise ValueError(name)


# a set whose making changed gets a new version: its cached volumes are never reused
SET_VERSION = {"unseen-artefacts": 2}


def cached_set(name: str, n: int, folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    tag = f"{name}-v{SET_VERSION[name]}" if name in SET_VERSION else name
    for i in range(n):
        path = folder / f"{tag}_{i}.npz"
        if not path.exists():
            break
        with np.load(path) as z:
            out.append((str(z["case"]), z["image"], z["labels"], tuple(z["spacing"])))
    if len(out) == n:
        return out
    out = []
    for i, (case, img, lab, sp) in enumerate(make_set(name, n)):
        np.savez_compressed(folder / f"{tag}_{i}.npz", case=case, image=img.astype(np.float32), labels=lab,
                            spacing=np.asarray(sp))
        out.append((case, img, lab, sp))
    return out


def score(model_ref: str, cases, postprocess: bool, tile=None, per_case: bool = False, backend: str = "torch",
          flip_tta: bool | None = None):
    model, meta = load_model(resolve_model(model_ref))
    results, times = [], []
    for case, img, lab, sp in cases:
        t0 = time.perf_counter()
        pred = predict_volume(img, model, meta, sp, device="cpu", postprocess=postprocess, tile=tile, backend=backend,
                              flip_tta=flip_tta)
        times.append(time.perf_counter() - t0)
        results.append(evaluate_volume(lab, pred.labels, sp))
        if per_case:
            dsc = {name: (f"{s['dsc']['mean']:.3f}" if s["dsc"]["n"] else "-")
                   for name, s in results[-1]["sides"].items()}
            print(f"  {case:<22} DSC right {dsc['right']:>5}  left {dsc['left']:>5}  "
                  f"{'; '.join(pred.doubts) or 'no doubts'}", flush=True)
    pooled = pooled_summary(results)
    d3 = [s["dsc_3d"] for r in results for s in r["sides"].values()]
    hd = [s["hd95_mm"] for r in results for s in r["sides"].values()]
    fp = sum(s["false_positive_slices"] for r in results for s in r["sides"].values())
    return {"dsc": pooled["dsc"], "failures": pooled["failure_rates"], "slices": pooled["n_slices"],
            "dsc_3d": float(np.nanmean(d3)), "hd95_mm": float(np.nanmedian(hd)), "fp_slices": int(fp),
            "seconds_per_volume": float(np.median(times))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True, help="registry name or .pt path (repeatable)")
    ap.add_argument("--set", action="append", choices=SETS, help="default: all")
    ap.add_argument("--n", type=int, default=6, help="volumes per set")
    ap.add_argument("--no-raw", action="store_true", help="only with post-processing")
    ap.add_argument("--json", type=Path, default=None, help="append results here (one JSON line each)")
    ap.add_argument("--tile", action="append", default=None, metavar="AP,SI,RL|fast",
                    help="also score each model predicting in tiles of at most this size (repeatable; "
                         "'fast' = ian predict --fast); the default tiling is always scored")
    ap.add_argument("--per-case", action="store_true",
                    help="also print each case's mean coronal DSC per side and the prediction's doubts")
    ap.add_argument("--backend", action="append", choices=BACKENDS, default=None,
                    help="what runs the network (repeatable; default torch)")
    ap.add_argument("--flip-tta", action="store_true",
                    help="also score each model averaged with a pass over the right-left mirrored volume")
    a = ap.parse_args()
    tiles = [None] + [FAST_TILE if t == "fast" else tuple(int(v) for v in t.split(",")) for t in a.tile or []]
    folder = HERE / "out" / "eval_sets"
    for name in a.set or SETS:
        cases = cached_set(name, a.n, folder)
        flips = (None, True) if a.flip_tta else (None,)      # None: as the model file says
        for m, tile, backend, flip in ((m, t, b, f) for m in a.model for t in tiles
                                       for b in a.backend or ["torch"] for f in flips):
            label = (Path(m).stem + ("" if tile is None else "@" + "x".join(map(str, tile)))
                     + ("" if backend == "torch" else f"/{backend}") + ("+mirror" if flip else ""))
            for pp in ((True,) if a.no_raw else (False, True)):
                r = score(m, cases, pp, tile, a.per_case, backend, flip)
                d, f = r["dsc"], r["failures"]
                print(f"{name:<17} {label:<22} {'post' if pp else 'raw ':<4} DSC {d['mean']:.3f} ± {d['sd']:.3f} "
                      f"({d['median']:.3f})  fail {f['complete']:.1%}/{f['tracking']:.1%}/{f['boundary']:.1%}  "
                      f"3D {r['dsc_3d']:.3f}  HD95 {r['hd95_mm']:.1f} mm  FP slices {r['fp_slices']}  "
                      f"{r['seconds_per_volume']:.1f} s/vol  n={r['slices']}", flush=True)
                if a.json:
                    with open(a.json, "a") as fh:
                        fh.write(json.dumps({"set": name, "model": m, "tile": tile, "backend": backend, "flip_tta": flip,
                                            "post": pp, **r},
                                            default=float) + "\n")


if __name__ == "__main__":
    main()
