"""Batch augmentation on tensors (vectorised with grid_sample): affine, elastic, intensity.

Elastic deformation (Hancock 2018 found it decisive for nerve segmentation): a random
displacement field drawn on a coarse grid, smoothly upsampled, so the nerve bends but stays a
tube. Masks are warped with nearest-neighbour sampling, so they stay binary.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_warp_grid(n, size, generator, device, rotate_deg=10.0, scale=0.1, translate=0.05,
                     elastic_alpha=0.03, elastic_grid=6):
    """Sampling grids (n, H, W, 2) combining a random affine and an elastic field."""
    H, W = size
    g = dict(generator=generator, device=device)
    ang = (torch.rand(n, **g) * 2 - 1) * math.radians(rotate_deg)
    sc = 1 + (torch.rand(n, **g) * 2 - 1) * scale
    tx, ty = ((torch.rand(n, **g) * 2 - 1) * translate for _ in range(2))
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos, -sin * H / W, tx], 1), torch.stack([sin * W / H, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, (n, 1, H, W), align_corners=False)
    if elastic_alpha > 0:
        coarse = (torch.rand(n, 2, elastic_grid, elastic_grid, **g) * 2 - 1) * elastic_alpha
        field = F.interpolate(coarse, size=(H, W), mode="bicubic", align_corners=False)
        grid = grid + field.permute(0, 2, 3, 1)
    return grid


def augment_batch(x, y, generator=None, gamma_range=(0.7, 1.5), noise_std=0.03):
    """Augment images ``x`` (N, C, H, W) in [0, 1] and masks ``y`` (N, 1, H, W) together."""
    n, _, H, W = x.shape
    dev = x.device
    grid = random_warp_grid(n, (H, W), generator, dev)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = F.grid_sample(y, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    lo, hi = gamma_range
    gam = torch.exp(torch.empty(n, 1, 1, 1, device=dev).uniform_(math.log(lo), math.log(hi), generator=generator))
    x = x.clamp(min=0) ** gam
    x = x * torch.empty(n, 1, 1, 1, device=dev).uniform_(0.85, 1.15, generator=generator)
    x = x + torch.randn(x.shape, generator=generator, device=dev) * noise_std
    return x, y
