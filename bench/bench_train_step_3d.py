"""One training step of the bundled 3D network on the CPU: bf16 autocast with and without
channels-last 3D memory, interleaved in one process so drift on a shared machine hits both alike.

Run: ``.venv/bin/python bench/bench_train_step_3d.py [--steps 10] [--rounds 2]``. Prints the median
seconds per step (batch 4 of 32 x 96 x 96 patches, forward + backward + AdamW step).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from napari_ian.trainer.device import autocast_context, memory_format
from napari_ian.trainer.train import TrainConfig, build_model


def step_times(channels_last: bool, steps: int, bf16: bool = True, model=None) -> list[float]:
    """Seconds per training step (batch 4) after one warm-up step; ``model`` defaults to a fresh
    network of the bundled model's size."""
    torch.manual_seed(0)
    if model is None:
        model = build_model(TrainConfig(network="unet3d", network_config={"base": 12, "depth": 3}))
    x = torch.randn(4, 1, 32, 96, 96)
    y = (torch.rand(4, 1, 32, 96, 96) > 0.99).float()
    if channels_last:
        model = model.to(memory_format=memory_format(5))
        x = x.contiguous(memory_format=memory_format(5))
    opt = torch.optim.AdamW(model.parameters())
    out = []
    for _ in range(steps + 1):              # the first step warms up
        t0 = time.perf_counter()
        with autocast_context(torch.device("cpu"), bf16):
            logits = model(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(time.perf_counter() - t0)
    return out[1:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    times = {False: [], True: []}
    for _ in range(args.rounds):
        for cl in (False, True):
            times[cl] += step_times(cl, args.steps)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d')}")
    for cl in (False, True):
        print(f"bf16{' + channels-last 3D' if cl else '':22s} median {np.median(times[cl]):.2f} s/step "
              f"(min {min(times[cl]):.2f}, n={len(times[cl])})")


if __name__ == "__main__":
    main()
