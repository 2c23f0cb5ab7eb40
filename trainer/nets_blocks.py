"""Layers the segmentation networks share, and the one rule for deep-supervision outputs.

Every network maps (B, C, H, W) slices to (B, 1, H, W) logits. A network trained with deep
supervision (:attr:`supervision_weights` set) returns, in training mode only, a tuple whose
first element is that prediction and whose others are auxiliary logits (any resolution);
:func:`supervised_loss` weighs them. In eval mode every network returns the prediction alone,
so inference code never sees the auxiliary heads.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def cbr(cin, cout, k=3, dilation=1, bias=False, stride=1, groups=1, act=True) -> nn.Sequential:
    """Conv (``k`` x ``k``, "same" padding) + BatchNorm (+ ReLU)."""
    pad = dilation * (k // 2)
    layers = [nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dilation, groups=groups, bias=bias),
              nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class MatMul(nn.Module):
    """``a @ b`` as a module, so that :func:`napari_ian.trainer.nets.count_macs` counts attention products."""

    def forward(self, a, b):
        return torch.matmul(a, b)


def matmul_macs(a: torch.Tensor, b: torch.Tensor) -> int:
    """Multiply-accumulates of ``a @ b`` per batch element (leading dimension)."""
    batch = math.prod(a.shape[1:-2]) if a.ndim > 2 else 1
    return int(batch * a.shape[-2] * a.shape[-1] * b.shape[-1])


def pad_to_multiple(x: torch.Tensor, multiple: int):
    """Zero-pad H and W at the bottom/right up to a multiple (networks with a deep output stride)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return (F.pad(x, (0, pw, 0, ph)) if ph or pw else x), (h, w)


def crop_to(y: torch.Tensor, hw, scale: int = 1) -> torch.Tensor:
    """The top-left part of ``y`` that covers an (h, w) input at ``1/scale`` resolution."""
    h, w = (-(-hw[0] // scale), -(-hw[1] // scale))
    return y[..., :h, :w]


def supervised_loss(loss_fn, outputs, target, weights=None) -> torch.Tensor:
    """The training loss of a network's output (a tensor, or a deep-supervision tuple).

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(logits, target)`` on float logits and a (B, 1, H, W) 0/1 target.
    outputs : torch.Tensor or tuple of torch.Tensor
        The prediction, or (prediction, auxiliary logits...).
    target : torch.Tensor
    weights : sequence of float, optional
        One per output (the network's ``supervision_weights``); default: 1 each.

    Returns
    -------
    torch.Tensor
        The weighted sum; an auxiliary output at a lower resolution is compared with the target
        resized to it (bilinear), as MEGANet's authors do.
    """
    if torch.is_tensor(outputs):
        return loss_fn(outputs.float(), target)
    weights = weights or (1.0,) * len(outputs)
    if len(weights) != len(outputs):
        raise ValueError(f"{len(outputs)} deep-supervision outputs but {len(weights)} weights")
    total = 0.0
    for w, out in zip(weights, outputs):
        t = target
        if out.shape[-2:] != target.shape[-2:]:
            t = F.interpolate(target.float(), size=out.shape[-2:], mode="bilinear", align_corners=False)
        total = total + w * loss_fn(out.float(), t)
    return total


class PartialDecoder(nn.Module):
    """The cascaded partial decoder (Wu et al., CVPR 2019) used by HarDNet-MSEG and CaraNet: the
    three deepest feature maps (``channel`` each, strides 32/16/8) multiplied after upsampling,
    concatenated, and reduced to one logit map at stride 8. ``unit(cin, cout)`` is the 3x3 layer
    (conv+BN for HarDNet-MSEG, a plain conv for CaraNet)."""

    def __init__(self, channel: int, unit):
        super().__init__()
        c = channel
        self.up1, self.up2, self.up3, self.up4 = unit(c, c), unit(c, c), unit(c, c), unit(c, c)
        self.up5 = unit(2 * c, 2 * c)
        self.cat2, self.cat3 = unit(2 * c, 2 * c), unit(3 * c, 3 * c)
        self.conv4 = unit(3 * c, 3 * c)
        self.conv5 = nn.Conv2d(3 * c, 1, 1)

    def forward(self, deep, mid, shallow):
        """Feature maps at strides 32, 16 and 8 -> logits at stride 8."""
        def up(t, ref):
            return F.interpolate(t, size=ref.shape[-2:], mode="bilinear", align_corners=True)

        mid_1 = self.up1(up(deep, mid)) * mid
        shallow_1 = self.up2(up(up(deep, mid), shallow)) * self.up3(up(mid, shallow)) * shallow
        mid_2 = self.cat2(torch.cat([mid_1, self.up4(up(deep, mid))], 1))
        shallow_2 = self.cat3(torch.cat([shallow_1, self.up5(up(mid_2, shallow))], 1))
        return self.conv5(self.conv4(shallow_2))


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch per sample with probability ``p`` while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


def linear_rates(top: float, n: int) -> list:
    """``n`` rates rising linearly from 0 to ``top`` (stochastic depth per block), in plain Python
    so that networks can be built on the meta device."""
    return [top * i / (n - 1) if n > 1 else 0.0 for i in range(n)]


def kaiming_init(module: nn.Module) -> None:
    """He-normal convolutions (fan-out) and unit BatchNorm, as ResNet-family backbones start."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
