"""``ian predict --patches`` against ``ian predict --fast`` (the default) on phantom patients: seconds and peak memory of
the prediction itself (``predict_volume``: normalise, resample, network, map back,
post-processing), each run in a fresh process, alternating so that drift on a shared machine hits
both alike; and the mean coronal DSC per side against the phantom's ground truth. Phantom figures.

Run: ``.venv/bin/python bench/bench_fast_tiles.py [--seeds 0,2001] [--rounds 3]``
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def one(seed: int, fast: bool) -> dict:
    """One prediction in this process: seconds, peak resident memory (GB), DSC per side."""
    from napari_ian.sample_data.phantom import make_phantom
    from napari_ian.trainer.evaluation import evaluate_volume
    from napari_ian.trainer.modelfile import load_model
    from napari_ian.trainer.pipeline import FAST_TILE
    from napari_ian.trainer.predict import predict_volume
    from napari_ian.trainer.registry import resolve_model

    model, meta = load_model(resolve_model("ian-default"))[:2]
    image, labels, spacing = make_phantom(seed)[:3]
    t0 = time.perf_counter()
    pred = predict_volume(image, model, meta, spacing, device="cpu", tile=FAST_TILE if fast else None)
    seconds = time.perf_counter() - t0
    ev = evaluate_volume(labels, pred.labels, spacing)
    return {"seconds": seconds, "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            "dsc": [ev["sides"][s]["dsc"]["mean"] for s in ("right", "left")]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,2001")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--one", nargs=2, metavar=("SEED", "FAST"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(int(a.one[0]), a.one[1] == "1")))
        return
    for seed in (int(s) for s in a.seeds.split(",")):
        runs = {False: [], True: []}
        for _ in range(a.rounds):
            for fast in (False, True):
                out = subprocess.run([sys.executable, __file__, "--one", str(seed), str(int(fast))], check=True,
                                     capture_output=True, text=True).stdout
                runs[fast].append(json.loads(out.strip().splitlines()[-1]))
        for fast, rs in runs.items():
            secs = [r["seconds"] for r in rs]
            print(f"seed {seed:<5} {'--fast' if fast else '--patches':<9} {np.median(secs):5.1f} s (median of {len(secs)}: "
                  f"{', '.join(f'{s:.1f}' for s in secs)})  peak {max(r['peak_gb'] for r in rs):.2f} GB  "
                  f"DSC right / left {rs[0]['dsc'][0]:.3f} / {rs[0]['dsc'][1]:.3f}", flush=True)


if __name__ == "__main__":
    main()
