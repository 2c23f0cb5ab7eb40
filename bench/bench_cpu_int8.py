"""The bundled 3D network with its 3x3x3 convolutions in int8 (oneDNN, x86 CPUs): speed against
float32 and the effect on the result. A measurement, not a feature: ``ian predict`` runs float32.

Each convolution but the first (one input channel: the image itself keeps its full precision)
runs with int8 weights (per output channel) and int8 activations quantised per call from the
activation's own range, and returns float32; the instance norms, transposed convolutions and the
head stay float32. It uses PyTorch's internal oneDNN operators (``torch.ops.onednn``), which
other PyTorch versions may change.

Run: ``.venv/bin/python bench/bench_cpu_int8.py [--rounds 5]`` (needs ``bench/out/eval_sets``,
made by ``bench/eval_styles.py``).
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cpu_3d import infer_seconds  # noqa: E402
from eval_styles import cached_set  # noqa: E402

from napari_ian.trainer.device import memory_format  # noqa: E402
from napari_ian.trainer.evaluation import evaluate_volume, pooled_summary  # noqa: E402
from napari_ian.trainer.modelfile import load_model  # noqa: E402
from napari_ian.trainer.predict import predict_volume  # noqa: E402
from napari_ian.trainer.registry import resolve_model  # noqa: E402

CL = memory_format(5)


class Int8Conv3d(nn.Module):
    """A float Conv3d run in int8 with float32 output (activations quantised per call)."""

    def __init__(self, conv: nn.Conv3d):
        super().__init__()
        w = conv.weight.detach().float()
        self.w_scale = (w.abs().amax(dim=(1, 2, 3, 4)).clamp(min=1e-12) / 127).double()
        qw = torch.clamp(torch.round(w / self.w_scale.float().view(-1, 1, 1, 1, 1)), -128, 127).to(torch.int8)
        self.w_zp = torch.zeros(w.shape[0], dtype=torch.long)
        self.args = (list(conv.stride), list(conv.padding), list(conv.dilation), conv.groups)
        self.packed = torch.ops.onednn.qconv_prepack(qw, self.w_scale, 1.0, 0, *self.args, None)
        self.bias = None if conv.bias is None else conv.bias.detach().float()

    def forward(self, x):
        lo, hi = torch.aminmax(x.permute(0, 2, 3, 4, 1).reshape(-1))    # (channels-last memory, one pass)
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
        scale = (hi - lo) / 255 or 1.0
        zp = int(round(-lo / scale))
        qx = torch.quantize_per_tensor(x, scale, zp, torch.quint8).int_repr()
        return torch.ops.onednn.qconv_pointwise(qx, scale, zp, self.packed, self.w_scale, self.w_zp, self.bias,
                                                *self.args, 1.0, 0, torch.float32, "none", [], "")


def int8_copy(net: nn.Module) -> nn.Module:
    m = copy.deepcopy(net)
    for mod in list(m.modules()):
        for name, child in list(mod.named_children()):
            if type(child) is nn.Conv3d and child.kernel_size == (3, 3, 3) and child.in_channels > 1:
                setattr(mod, name, Int8Conv3d(child))
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
    net, meta = load_model(resolve_model("ian-default"))
    net = net.eval().to(memory_format=CL)
    q = int8_copy(net)
    x = torch.randn(2, 1, 32, 96, 96).contiguous(memory_format=CL)
    for m in (net, q):
        infer_seconds(m, x, channels_last=True, bf16=False)
    t32, t8 = [], []
    for _ in range(a.rounds):       # interleaved: drift on a shared machine hits both alike
        t32.append(infer_seconds(net, x, channels_last=True, bf16=False))
        t8.append(infer_seconds(q, x, channels_last=True, bf16=False))
    print(f"batch of two 32 x 96 x 96 patches: float32 {np.median(t32):.3f} s, int8 {np.median(t8):.3f} s "
          f"(median of {a.rounds}; x{np.median(t32) / np.median(t8):.2f})", flush=True)
    folder = Path(__file__).resolve().parent / "out" / "eval_sets"
    for name in ("v1", "unseen-artefacts", "in-style"):
        res = {"float32": [], "int8": []}
        secs = {"float32": [], "int8": []}
        agree = []
        for case, img, lab, sp in cached_set(name, 6, folder):
            labels = {}
            for kind, m in (("float32", net), ("int8", q)):
                t0 = time.perf_counter()
                pred = predict_volume(img, m, meta, sp, device="cpu")
                secs[kind].append(time.perf_counter() - t0)
                labels[kind] = pred.labels
                res[kind].append(evaluate_volume(lab, pred.labels, sp))
            a_, b_ = labels["float32"] > 0, labels["int8"] > 0
            agree.append(2 * (a_ & b_).sum() / max(a_.sum() + b_.sum(), 1))
        print(f"{name:<17} DSC float32 {pooled_summary(res['float32'])['dsc']['mean']:.3f}, int8 "
              f"{pooled_summary(res['int8'])['dsc']['mean']:.3f}; the two outlines' overlap (Dice) "
              f"{np.mean(agree):.3f} (min {np.min(agree):.3f}); prediction {np.median(secs['float32']):.1f} s "
              f"against {np.median(secs['int8']):.1f} s a volume", flush=True)


if __name__ == "__main__":
    main()
