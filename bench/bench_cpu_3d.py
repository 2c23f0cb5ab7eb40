"""The bundled 3D network on this CPU: inference per batch of patches in each memory layout and
precision, and one training step, interleaved in one process so drift on a shared machine hits
every variant alike.

Inference variants: float32 contiguous; float32 channels-last 3D with PyTorch's instance norm; float32
channels-last with the network's own channels-last instance norm as it was before the eleventh stop
(statistics by ``torch.var_mean``) and as it is now (what ``ian predict`` runs);
bf16 autocast channels-last where oneDNN accepts bf16: natively where the CPU has bf16
instructions, converted in software on other AVX-512 CPUs (there it is slower than float32 and
``ian predict`` uses float32); skipped where oneDNN refuses it (PyTorch's own bf16 path is two
orders of magnitude slower). Training steps (batch 4): in float32 PyTorch's instance norm
against the network's own; in bf16 (PyTorch's norm, which the network uses there).

Run: ``.venv/bin/python bench/bench_cpu_3d.py [--rounds 3] [--train-steps 3]``.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_ian.trainer.device import autocast_context, cpu_bf16_supported, memory_format
from napari_ian.trainer.modelfile import load_model
from napari_ian.trainer.nets import InstanceNorm3dCL
from napari_ian.trainer.registry import resolve_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train_step_3d import step_times  # noqa: E402

CL = memory_format(5)


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class VarMeanInstanceNorm(InstanceNorm3dCL):
    """The channels-last instance norm as it was before the eleventh stop: ``torch.var_mean``."""

    @staticmethod
    def _statistics(x):
        n, c = x.shape[:2]
        return torch.var_mean(x.permute(0, 2, 3, 4, 1).reshape(n, -1, c).float(), dim=1, unbiased=False)


def with_norm(model, cls):
    """A copy of ``model`` whose instance norms are ``cls`` (same parameters)."""
    m = copy.deepcopy(model)
    for mod in m.modules():
        if isinstance(mod, InstanceNorm3dCL):
            mod.__class__ = cls
    return m


def infer_seconds(model, x, channels_last, bf16):
    if channels_last:
        x = x.contiguous(memory_format=CL)
    t0 = time.perf_counter()
    with torch.no_grad(), autocast_context(torch.device("cpu"), bf16):
        model(x)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=3)
    args = ap.parse_args()
    model, meta = load_model(resolve_model("ian-default"))[:2]
    model.eval()
    patch = tuple(meta["preprocessing"]["patch"])
    native = cpu_bf16_supported()
    onednn_bf16 = native or bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    bf16_name = "bf16, channels-last, channels-last instance norm" + ("" if native else " (software)")
    # each variant its own copy: Module.to converts in place, and a channels-last weight makes a
    # contiguous input's convolution channels-last too
    cl_model = copy.deepcopy(model).to(memory_format=CL)
    variants = {"float32, contiguous": (model, False, False),
                "float32, channels-last, PyTorch's instance norm": (with_norm(cl_model, torch.nn.InstanceNorm3d), True, False),
                "float32, channels-last, its instance norm by var_mean": (with_norm(cl_model, VarMeanInstanceNorm), True, False),
                "float32, channels-last, channels-last instance norm": (cl_model, True, False)}
    if onednn_bf16:
        variants[bf16_name] = (cl_model, True, True)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 1, *patch)).astype(np.float32))
    times = {k: [] for k in variants}
    for name, (m, cl, bf) in variants.items():      # warm-up
        infer_seconds(m, x, cl, bf)
    for _ in range(args.rounds):
        for name, (m, cl, bf) in variants.items():
            times[name].append(infer_seconds(m, x, cl, bf))
    print(f"CPU: {cpu_name()}; {os.cpu_count()} cores; native bf16: {'yes' if native else 'no'}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {time.strftime('%Y-%m-%d')}")
    print(f"inference, batch of 2 patches of {'x'.join(map(str, patch))} (median of {args.rounds}):")
    for name, t in times.items():
        print(f"  {name:55s} {np.median(t):.3f} s")
    if not native:
        print(f"  bf16 {'converted in software' if onednn_bf16 else 'skipped (oneDNN refuses it)'}: "
              "not native on this CPU; ian predict and training use float32 here")
    # training: in float32, PyTorch's instance norm against the network's own (forward and backward
    # written for channels-last, since the twelfth stop), alternating; bf16 training runs PyTorch's
    steps = {}
    for _ in range(args.rounds):
        for bf in ((False, True) if onednn_bf16 else (False,)):
            for norm in (("PyTorch's instance norm",) if bf else
                         ("PyTorch's instance norm", "channels-last instance norm")):
                m = copy.deepcopy(model).train()
                if norm.startswith("PyTorch"):
                    m = with_norm(m, torch.nn.InstanceNorm3d)
                steps.setdefault((bf, norm), []).extend(step_times(True, args.train_steps, bf16=bf, model=m))
    for (bf, norm), t in steps.items():
        print(f"training step, batch 4, {'bf16' if bf else 'float32'}, channels-last, {norm}: median "
              f"{np.median(t):.2f} s (n={len(t)})")


if __name__ == "__main__":
    main()
