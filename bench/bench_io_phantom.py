"""Time phantom generation and the readers on this machine.

Run: ``.venv/bin/python bench/bench_io_phantom.py [--seeds 3]``; paste the printed table into
BENCHMARKS.md with the date and machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np

from napari_ian.sample_data.dataset import phantom_geometry
from napari_ian.sample_data.phantom import INTENSITY_SLOPE, make_phantom
from napari_ian.trainer.dicom_write import write_dicom_series
from napari_ian.trainer.io import read_volume
from napari_ian.trainer.io_nifti import write_nifti


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(a.seeds):
            t0 = time.perf_counter()
            image, labels, spacing, _ = make_phantom(seed)
            t_make = time.perf_counter() - t0
            geom = phantom_geometry(image.shape, spacing)
            nii = os.path.join(tmp, f"p{seed}.nii.gz")
            t0 = time.perf_counter()
            write_nifti(nii, image, geom, dtype=np.float32)
            t_wnii = time.perf_counter() - t0
            t0 = time.perf_counter()
            read_volume(nii)
            t_rnii = time.perf_counter() - t0
            dcm = os.path.join(tmp, f"d{seed}")
            t0 = time.perf_counter()
            write_dicom_series(dcm, image, geom.canonical_affine, slope=INTENSITY_SLOPE, patient_id="B",
                               series_description="bench")
            t_wdcm = time.perf_counter() - t0
            t0 = time.perf_counter()
            read_volume(dcm)
            t_rdcm = time.perf_counter() - t0
            rows.append((seed, "x".join(map(str, image.shape)), t_make, t_wnii, t_rnii, t_wdcm, t_rdcm))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}")
    print("| seed | shape (AP x SI x RL) | make_phantom s | write NIfTI s | read NIfTI s | write DICOM s | read DICOM s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | " + " | ".join(f"{v:.2f}" for v in r[2:]) + " |")


if __name__ == "__main__":
    main()
