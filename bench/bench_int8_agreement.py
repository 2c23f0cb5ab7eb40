"""How far the int8 network's outlines move from float32's, case by case (issue 10 item 7).

For each held-out set (``bench/eval_styles.py``'s, cached in ``bench/out/eval_sets``), each case is
predicted with OpenVINO in float32 and with the bundled int8 version, post-processed as ``ian
predict`` does, and the two outlines compared per side (Dice); the mean coronal DSC of each
against the labels is printed too, and the metal items of the in-style cases' anatomies (where the
activations' calibrated ranges matter most). Phantom figures.

Run: ``.venv/bin/python bench/bench_int8_agreement.py [--n 6] [--set in-style ...]``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from eval_styles import SETS, cached_set  # noqa: E402

from napari_ian.sample_data.synth import SEED_BASE, anatomy_on_grid  # noqa: E402
from napari_ian.trainer.evaluation import evaluate_volume  # noqa: E402
from napari_ian.trainer.modelfile import load_model  # noqa: E402
from napari_ian.trainer.predict import predict_volume  # noqa: E402
from napari_ian.trainer.registry import resolve_model  # noqa: E402


def dice(a, b):
    n = a.sum() + b.sum()
    return float("nan") if n == 0 else 2 * float((a & b).sum()) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", choices=SETS, help="default: all")
    ap.add_argument("--n", type=int, default=6)
    a = ap.parse_args()
    model, meta = load_model(resolve_model("ian-default"))
    for name in a.set or SETS:
        overlaps = []
        for i, (case, img, lab, sp) in enumerate(cached_set(name, a.n, HERE / "out" / "eval_sets")):
            preds = {b: predict_volume(img, model, meta, sp, device="cpu", backend=b)
                     for b in ("openvino", "openvino-int8")}
            sides = [dice(preds["openvino"].labels == s, preds["openvino-int8"].labels == s) for s in (1, 2)]
            overlaps += [d for d in sides if d == d]
            dsc = {b: evaluate_volume(lab, p.labels, sp) for b, p in preds.items()}
            per = "  ".join(f"{b} " + "/".join(f"{r['sides'][s]['dsc']['mean']:.3f}" if r["sides"][s]["dsc"]["n"]
                                               else "-" for s in ("right", "left")) for b, r in dsc.items())
            metal = (f"  metal items {len(anatomy_on_grid(SEED_BASE['test'] + i // 2).metal)}"
                     if name == "in-style" else "")
            print(f"  {case:<22} outline overlap right {sides[0]:.3f} left {sides[1]:.3f}  DSC {per}{metal}", flush=True)
        print(f"{name:<17} outline overlap float32 vs int8: mean {np.mean(overlaps):.3f}, min {np.min(overlaps):.3f} "
              f"({len(overlaps)} sides)", flush=True)


if __name__ == "__main__":
    main()
