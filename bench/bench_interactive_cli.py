"""``ian interactive``, ``ian predict --patches`` and ``ian predict --fast`` (the default) end to end
on a phantom patient, as a user runs them.

Writes the phantom patient (``ian phantom``), places ``--clicks`` clicks per side on the true
nerve centre (evenly spaced along it, as in ``bench_clicks.py``) into a ``x,y,z,label`` CSV in
world mm, then times both commands in fresh processes (start-up, read, compute, write) and scores
their outputs against the phantom's ground truth (mean coronal DSC per side). Phantom figures.

Run: ``.venv/bin/python bench/bench_interactive_cli.py [--seed 0] [--clicks 5]``
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_clicks import centreline, clicks_along  # noqa: E402

from napari_ian.trainer.evaluation import evaluate_volume  # noqa: E402
from napari_ian.trainer.io import read_volume  # noqa: E402

IAN = str(Path(sys.executable).with_name("ian"))


def timed(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clicks", type=int, default=5, help="clicks per side")
    ap.add_argument("--model", default="ian-default")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([IAN, "phantom", "--out", str(tmp / "ph"), "--patients", "1", "--seed", str(a.seed),
                        "--no-dicom", "--quiet"], check=True, stdout=subprocess.DEVNULL)
        image = next((tmp / "ph" / "imagesTr").glob("*.nii.gz"))
        truth = next((tmp / "ph" / "labelsTr").glob("*.nii.gz"))
        vol, lab = read_volume(image), read_volume(truth).data.astype(np.uint8)
        aff = vol.geometry.canonical_affine
        rows = ["x,y,z,label"]
        for side in (1, 2):
            for v in clicks_along(centreline(lab, side, vol.spacing), a.clicks, vol.spacing):
                x, y, z = (aff @ np.r_[np.asarray(v, float), 1.0])[:3]
                rows.append(f"{x:.3f},{y:.3f},{z:.3f},{side}")
        (tmp / "clicks.csv").write_text("\n".join(rows) + "\n")
        t_int = timed([IAN, "interactive", str(image), "--clicks", str(tmp / "clicks.csv"), "--out",
                       str(tmp / "clicks.nii.gz"), "--model", a.model])
        t_pred = timed([IAN, "predict", str(image), "--out", str(tmp / "auto.nii.gz"), "--model", a.model, "--quiet",
                        "--patches"])
        t_fast = timed([IAN, "predict", str(image), "--out", str(tmp / "fast.nii.gz"), "--model", a.model, "--quiet",
                        "--fast"])
        for name, out, t in (("ian interactive", tmp / "clicks.nii.gz", t_int),
                             ("ian predict --patches", tmp / "auto.nii.gz", t_pred),
                             ("ian predict --fast", tmp / "fast.nii.gz", t_fast)):
            res = evaluate_volume(lab, read_volume(out).data.astype(np.uint8), vol.spacing)
            dsc = " / ".join(f"{res['sides'][s]['dsc']['mean']:.3f}" for s in res["sides"])
            print(f"{name:<18} {t:5.1f} s wall; mean coronal DSC right / left {dsc}", flush=True)


if __name__ == "__main__":
    main()
