"""Make the int8 OpenVINO version of a bundled model (``<model>.int8.xml``, ``.bin``, ``.json``).

Post-training quantisation with NNCF (``pip install nncf``; a developer's tool, users never need
it): 4 training-range anatomies, each rendered once per style family, 24 random patches from each
render (192 patches; :mod:`napari_ian.trainer.quantise_int8`), then the network quantised with the
first and last convolutions kept float32. Run after the bundled model changes, then score it:
``bench/eval_styles.py --model ian-default --backend openvino --backend openvino-int8``.

Run: ``.venv/bin/python bench/make_int8.py [--model ian-default]`` (about 2 minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import time

import torch

from napari_ian.trainer.modelfile import load_model
from napari_ian.trainer.pipeline import pipeline_for_model
from napari_ian.trainer.quantise_int8 import calibration_patches, quantise, save_int8
from napari_ian.trainer.registry import BUNDLED_DIR, resolve_model


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ian-default", help="a bundled model's name (default ian-default)")
    ap.add_argument("--anatomies", type=int, default=4)
    ap.add_argument("--per-volume", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    path = resolve_model(a.model)
    if path.parent != BUNDLED_DIR:
        raise SystemExit(f"{a.model}: not a bundled model ({path}); int8 versions ship only beside bundled models")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, meta = load_model(path)
    pipe = pipeline_for_model(meta)
    t0 = time.perf_counter()
    patches = calibration_patches(pipe, a.anatomies, a.per_volume, a.seed)
    t1 = time.perf_counter()
    int8 = quantise(model, patches)
    t2 = time.perf_counter()
    calibration = {"anatomies": f"training seeds, first {a.anatomies}", "renders": "one per style family each",
                   "patches": len(patches), "seed": a.seed}
    xml = save_int8(int8, model, path, calibration)
    print(f"wrote {xml} ({xml.with_suffix('.bin').stat().st_size / 1e6:.2f} MB weights): {len(patches)} "
          f"calibration patches in {t1 - t0:.0f} s, quantised in {t2 - t1:.0f} s")


if __name__ == "__main__":
    main()
