"""Inference speed: per-slice time of each network (fp32 vs bf16), and one whole volume
through `ian predict`'s code path against the paper's network run naively.

Run: ``.venv/bin/python bench/bench_predict.py [--naive-slices N]``. Timings are interleaved in
one run so drift on a shared machine hits all of them alike.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from napari_ian.sample_data.phantom import make_phantom
from napari_ian.trainer.modelfile import load_model
from napari_ian.trainer.nets import build_network, count_macs
from napari_ian.trainer.predict import predict_volume
from napari_ian.trainer.preprocess import find_midline, prepare_slices, split_sides
from napari_ian.trainer.registry import resolve_model


def time_forward(model, x, bf16, channels_last, reps=3):
    model = model.eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)
    with torch.no_grad(), ctx:
        model(x)  # warm-up
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            model(x)
            t.append(time.perf_counter() - t0)
    return min(t) / x.shape[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--naive-slices", type=int, default=0,
                    help="slices for the naive paper run (0 = every slice of both sides)")
    ap.add_argument("--seed", type=int, default=2000)
    a = ap.parse_args()
    torch.manual_seed(0)
    _, meta = load_model(resolve_model("ian-default"))
    k = meta["preprocessing"]["context"]
    h, w = meta["preprocessing"]["size"]
    nets = [("iannet (paper)", build_network("iannet"), (1, 256, 256), 4),
            ("unet base 32 (comparator)", build_network("unet"), (1, 256, 256), 4),
            ("deeplabv3plus (comparator)", build_network("deeplabv3plus"), (1, 256, 256), 4),
            ("default: unet base 16, 2.5D", build_network("unet", in_channels=k, base=16, depth=4), (k, h, w), 64)]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    print("| network | input | GMAC/slice | fp32 s/slice | bf16 + channels_last s/slice | speed-up |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, net, shape, batch in nets:
        x = torch.randn(batch, *shape)
        macs = count_macs(net, (1,) + shape) / 1e9
        t32 = time_forward(net, x, False, False)
        t16 = time_forward(net, x, True, True)
        print(f"| {name} | {shape[0]}x{shape[1]}x{shape[2]} (batch {batch}) | {macs:.2f} | {t32:.4f} | {t16:.4f} | {t32 / t16:.1f}x |",
              flush=True)

    # one training step (forward + backward + AdamW) of the default network, batch 32
    print()
    print("| training step, default network, batch 32 | fp32 s | bf16 + channels_last s | speed-up |")
    print("| --- | --- | --- | --- |")
    t_step = {}
    for mode in ("fp32", "bf16"):
        net = build_network("unet", in_channels=k, base=16, depth=4)
        x = torch.randn(32, k, h, w)
        y = (torch.rand(32, 1, h, w) > 0.99).float()
        if mode == "bf16":
            net = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(net.parameters(), 1e-3)
        ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if mode == "bf16" else (
            lambda: torch.autocast("cpu", enabled=False))
        times = []
        for i in range(4):
            t0 = time.perf_counter()
            opt.zero_grad()
            with ctx():
                out = net(x)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out.float(), y)
            loss.backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - t0)
        t_step[mode] = min(times)
    print(f"| unet base 16, {k}x{h}x{w} | {t_step['fp32']:.3f} | {t_step['bf16']:.3f} | "
          f"{t_step['fp32'] / t_step['bf16']:.1f}x |", flush=True)

    image, labels, spacing, _ = make_phantom(a.seed)
    model, meta = load_model(resolve_model("ian-default"))
    t0 = time.perf_counter()
    predict_volume(image, model, meta, spacing=spacing, device="cpu")
    t_ours = time.perf_counter() - t0
    # the paper's network, naively: fp32, batch 1, 256 x 256, every coronal slice of both sides
    paper = build_network("iannet").eval()
    mid = find_midline(image)
    xs = [prepare_slices(hv, (256, 256), 1)[0] for hv in split_sides(image, mid).values()]
    x_all = np.concatenate(xs)
    n_total = len(x_all)
    n = n_total if a.naive_slices <= 0 else min(a.naive_slices, n_total)
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(n):
            paper(torch.from_numpy(x_all[i:i + 1]))
    t_naive = (time.perf_counter() - t0) * n_total / n
    print()
    print(f"whole volume {image.shape} (seed {a.seed}), {n_total} side-slices:")
    print("| path | wall s |\n| --- | --- |")
    print(f"| ian predict code path (default model, bf16 where supported) | {t_ours:.1f} |")
    extrap = "" if n == n_total else f" (timed on {n} slices, scaled to {n_total})"
    print(f"| paper network naive (fp32, batch 1, 256x256, every slice){extrap} | {t_naive:.1f} |")


if __name__ == "__main__":
    main()
