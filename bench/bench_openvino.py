"""The bundled 3D network in PyTorch and through OpenVINO on this CPU: the network alone, and
``ian predict`` end to end, interleaved so that a shared machine's drift hits both alike.

1. The network (float32; PyTorch channels-last, as ``ian predict`` runs it; OpenVINO float32 and,
   where the bundled model ships one, its int8 version): a batch of two training-size patches
   (32 x 96 x 96) and one ``--fast`` tile (96 x 208 x 280, the sample patient's), medians over
   ``--rounds``; the largest difference in the logits from PyTorch's.
2. The one-time conversion (trace, convert, save the cached model) and, from the cache, loading
   and compiling it.
3. ``ian predict --patches`` and ``ian predict --fast`` (the default) on the sample patient
   (phantom seed 0) in fresh processes, ``--backend torch``, ``openvino`` and ``openvino-int8`` in each round (the OpenVINO cache
   warm, in a temporary ``NAPARI_IAN_HOME``), with the mean coronal DSC of each output.

Run: ``.venv/bin/python bench/bench_openvino.py [--rounds 3]``. Accuracy on the held-out styles:
``bench/eval_styles.py --model ian-default --backend torch --backend openvino --backend openvino-int8``.
"""
from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_cpu_3d import cpu_name, infer_seconds  # noqa: E402

from napari_ian.trainer import openvino_runtime as ovr  # noqa: E402
from napari_ian.trainer.evaluation import evaluate_volume  # noqa: E402
from napari_ian.trainer.io import read_volume  # noqa: E402
from napari_ian.trainer.modelfile import load_model  # noqa: E402
from napari_ian.trainer.registry import resolve_model  # noqa: E402

IAN = str(Path(sys.executable).with_name("ian"))
BACKENDS = tuple(b for b in ovr.BACKENDS if b != "auto")     # each one asked for by name


def ov_seconds(net, x):
    t0 = time.perf_counter()
    net(x)
    return time.perf_counter() - t0


def network(rounds: int):
    model, _ = load_model(resolve_model("ian-default"))
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last_3d)
    with tempfile.TemporaryDirectory() as tmp:
        ovr.cache_dir = lambda: Path(tmp)       # a cold cache: time the conversion
        t0 = time.perf_counter()
        ovr.compile_for_cpu(model)
        first = time.perf_counter() - t0
        ovr._COMPILED.clear()
        t0 = time.perf_counter()
        net = ovr.compile_for_cpu(model)
        cached = time.perf_counter() - t0
    print(f"OpenVINO {ovr.openvino_version()}: first use (convert, cache, compile) {first:.1f} s; "
          f"later processes (load from the cache, compile) {cached:.2f} s", flush=True)
    int8 = ovr.compile_for_cpu(model, precision="int8") if ovr.int8_model_path(model) else None
    torch.manual_seed(0)
    for name, shape in (("batch of 2 patches 32x96x96", (2, 1, 32, 96, 96)),
                        ("one --fast tile 96x208x280", (1, 1, 96, 208, 280))):
        x = torch.randn(shape)
        with torch.no_grad():
            ref = cl(x.contiguous(memory_format=torch.channels_last_3d))
            diff = float((ref - net(x)).abs().max())
            diff8 = float((ref - int8(x)).abs().max()) if int8 is not None else float("nan")
        pt, ov, ov8 = [], [], []
        for _ in range(rounds):
            pt.append(infer_seconds(cl, x, True, False))
            ov.append(ov_seconds(net, x))
            if int8 is not None:
                ov8.append(ov_seconds(int8, x))
        line = (f"{name:<30} PyTorch {np.median(pt):6.3f} s  OpenVINO {np.median(ov):6.3f} s "
                f"(x {np.median(pt) / np.median(ov):.2f}; largest logit difference {diff:.1e})")
        if ov8:
            line += (f"  OpenVINO int8 {np.median(ov8):6.3f} s (x {np.median(pt) / np.median(ov8):.2f}; "
                     f"largest logit difference {diff8:.1e})")
        print(line, flush=True)


def end_to_end(rounds: int, seed: int):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, NAPARI_IAN_HOME=str(tmp / "home"))
        subprocess.run([IAN, "phantom", "--out", str(tmp / "ph"), "--patients", "1", "--seed", str(seed),
                        "--no-dicom", "--quiet"], check=True, stdout=subprocess.DEVNULL, env=env)
        image = next((tmp / "ph" / "imagesTr").glob("*.nii.gz"))
        vol = read_volume(image)
        lab = read_volume(next((tmp / "ph" / "labelsTr").glob("*.nii.gz"))).data.astype(np.uint8)
        # warm the OpenVINO cache (the conversion is timed above)
        subprocess.run([IAN, "predict", str(image), "--out", str(tmp / "warm.nii.gz"), "--quiet", "--backend",
                        "openvino"], check=True, stdout=subprocess.DEVNULL, env=env)
        times = {}
        for _ in range(rounds):
            for fast in (False, True):
                for backend in BACKENDS:
                    out = tmp / f"{backend}{'-fast' if fast else ''}.nii.gz"
                    cmd = [IAN, "predict", str(image), "--out", str(out), "--quiet", "--overwrite",
                           "--backend", backend, "--fast" if fast else "--patches"]
                    t0 = time.perf_counter()
                    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
                    times.setdefault((fast, backend), []).append(time.perf_counter() - t0)
        for (fast, backend), ts in times.items():
            out = tmp / f"{backend}{'-fast' if fast else ''}.nii.gz"
            res = evaluate_volume(lab, read_volume(out).data.astype(np.uint8), vol.spacing)
            dsc = " / ".join(f"{res['sides'][s]['dsc']['mean']:.3f}" for s in res["sides"])
            name = f"ian predict {'--fast' if fast else '--patches'} --backend {backend}"
            print(f"{name:<40} {np.median(ts):5.1f} s wall (median of {len(ts)}: "
                  f"{', '.join(f'{t:.1f}' for t in ts)}); mean coronal DSC right / left {dsc}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="phantom patient of the end-to-end runs")
    a = ap.parse_args()
    print(f"CPU: {cpu_name()}; {torch.get_num_threads()} threads; torch {torch.__version__}", flush=True)
    network(a.rounds)
    end_to_end(a.rounds, a.seed)


if __name__ == "__main__":
    main()
