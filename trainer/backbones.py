"""Encoders the paper's comparators are built on, written here from their papers (no torchvision or timm).

* :class:`Res2Net` — Res2Net v1b (Gao et al., IEEE TPAMI 2021): a deep 3-conv stem, bottlenecks
  whose 3x3 conv is split into ``scale`` groups of ``base_width``-wide channels processed
  hierarchically, and average-pool shortcuts (the "v1b" variant CaraNet and MEGANet use).
* :class:`ResNet` — ResNet-101 (He et al., CVPR 2016) with the last stage dilated (output stride
  16), DeepLabV3+'s ResNet encoder.
* :class:`HarDNet` — HarDNet-68 (Chao et al., ICCV 2019): harmonic densely connected blocks, each
  layer linked to the layers 2^n before it; HarDNet-MSEG's encoder.
* :class:`SwinEncoder` — the Swin Transformer (Liu et al., ICCV 2021): patch embedding, windowed
  self-attention with relative position bias alternating with shifted windows, patch merging;
  DS-TransUNet's two encoders.

The originals start from ImageNet weights; none can ship or be downloaded here, so these start
from scratch (He-normal convolutions, truncated-normal transformer weights).
Each returns its feature maps from fine to coarse, channels first.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .nets_blocks import DropPath, MatMul, kaiming_init, linear_rates

RES2NET_LAYERS = {"res2net50": (3, 4, 6, 3), "res2net101": (3, 4, 23, 3)}


class Res2Bottleneck(nn.Module):
    """Res2Net bottleneck (expansion 4); ``first`` = the first block of a stage (no hierarchy,
    the last split average-pooled, the stride taken by the 3x3 convs)."""

    expansion = 4

    def __init__(self, cin, planes, stride=1, base_width=26, scale=4, first=False):
        super().__init__()
        width = int(math.floor(planes * base_width / 64.0))
        self.width, self.scale, self.first = width, scale, first
        self.conv1 = nn.Sequential(nn.Conv2d(cin, width * scale, 1, bias=False), nn.BatchNorm2d(width * scale),
                                   nn.ReLU(inplace=True))
        self.convs = nn.ModuleList([nn.Sequential(nn.Conv2d(width, width, 3, stride, 1, bias=False),
                                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
                                    for _ in range(scale - 1)])
        self.pool = nn.AvgPool2d(3, stride, 1) if first else None
        cout = planes * self.expansion
        self.conv3 = nn.Sequential(nn.Conv2d(width * scale, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False),
                                       nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        splits = torch.split(self.conv1(x), self.width, dim=1)
        outs, sp = [], None
        for i, conv in enumerate(self.convs):
            sp = splits[i] if (i == 0 or self.first) else sp + splits[i]
            sp = conv(sp)
            outs.append(sp)
        outs.append(self.pool(splits[-1]) if self.first else splits[-1])
        out = self.conv3(torch.cat(outs, dim=1))
        return F.relu(out + (x if self.short is None else self.short(x)))


class Res2Net(nn.Module):
    """Res2Net v1b encoder; features at strides 2 (stem), 4, 8, 16, 32 with ``stem`` x (1, 4, 8, 16, 32) channels.

    Parameters
    ----------
    in_channels : int
    depth : str
        ``res2net50`` or ``res2net101`` (blocks per stage 3-4-6-3 or 3-4-23-3).
    stem : int
        Stem width (64 in the paper); the stages' planes are ``stem`` x 1, 2, 4, 8.
    base_width, scale : int
        Res2Net's "26w x 4s".
    """

    def __init__(self, in_channels=3, depth="res2net50", stem=64, base_width=26, scale=4):
        super().__init__()
        if depth not in RES2NET_LAYERS:
            raise ValueError(f"backbone must be one of {', '.join(RES2NET_LAYERS)}, not {depth!r}")
        half = max(stem // 2, 1)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, half, 3, 2, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, 1, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            nn.Conv2d(half, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True))
        cin, stages = stem, []
        for i, n in enumerate(RES2NET_LAYERS[depth]):
            planes = stem * 2 ** i
            blocks = [Res2Bottleneck(cin, planes, 1 if i == 0 else 2, base_width, scale, first=True)]
            cin = planes * Res2Bottleneck.expansion
            blocks += [Res2Bottleneck(cin, planes, 1, base_width, scale) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.channels = [stem] + [stem * 2 ** i * Res2Bottleneck.expansion for i in range(4)]
        kaiming_init(self)

    def forward(self, x):
        x = self.stem(x)
        feats = [x]
        x = F.max_pool2d(x, 3, 2, 1)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


# ------------------------------------------------------------------------------------------
class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3, 1x1; expansion 4) with a projection shortcut where shapes change."""

    expansion = 4

    def __init__(self, cin, planes, stride=1, dilation=1):
        super().__init__()
        cout = planes * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride, dilation, dilation, bias=False), nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                      if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        return F.relu(self.body(x) + self.short(x))


class ResNet(nn.Module):
    """ResNet-101 encoder with output stride 16 (the last stage dilated, not strided); features at
    strides 4, 8, 16, 16 with ``stem`` x (4, 8, 16, 32) channels."""

    LAYERS = (3, 4, 23, 3)

    def __init__(self, in_channels=3, stem=64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 7, 2, 3, bias=False), nn.BatchNorm2d(stem),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        cin, stages = stem, []
        for i, n in enumerate(self.LAYERS):
            planes = stem * 2 ** i
            stride, dilation = (1, 1) if i == 0 else ((1, 2) if i == 3 else (2, 1))
            blocks = [Bottleneck(cin, planes, stride, 1)]
            cin = planes * Bottleneck.expansion
            blocks += [Bottleneck(cin, planes, 1, dilation) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.channels = [stem * 2 ** i * Bottleneck.expansion for i in range(4)]
        kaiming_init(self)

    def forward(self, x):
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


def _conv_bn_relu6(cin, cout, k=3, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU6(inplace=True))


def harmonic_links(layer: int, base: int, growth: float, grmul: float):
    """(output channels, input channels, linked layers) of layer ``layer`` (1-based) of a HarD
    block: it reads every layer ``layer - 2**n`` that ``2**n`` divides ``layer`` (0 = the block
    input, ``base`` channels) and its width grows by ``grmul`` per extra link, rounded to even."""
    if layer == 0:
        return base, 0, []
    links = [layer - 2 ** n for n in range(layer.bit_length()) if layer % 2 ** n == 0]
    width = growth * grmul ** (len(links) - 1)
    width = int(int(width + 1) / 2) * 2
    cin = sum(harmonic_links(k, base, growth, grmul)[0] for k in links)
    return width, cin, links


class HarDBlock(nn.Module):
    """A harmonic densely connected block; outputs the odd-numbered layers and the last, concatenated."""

    def __init__(self, cin, growth, grmul, n_layers):
        super().__init__()
        self.links, layers, self.out_channels = [], [], 0
        for i in range(1, n_layers + 1):
            width, lin, links = harmonic_links(i, cin, growth, grmul)
            self.links.append(links)
            layers.append(_conv_bn_relu6(lin, width))
            if i % 2 == 1 or i == n_layers:
                self.out_channels += width
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        outs = [x]
        for links, layer in zip(self.links, self.layers):
            inp = [outs[k] for k in links]
            outs.append(layer(torch.cat(inp, 1) if len(inp) > 1 else inp[0]))
        n = len(outs)
        return torch.cat([o for i, o in enumerate(outs) if i == n - 1 or i % 2 == 1], 1)


class HarDNet(nn.Module):
    """HarDNet-68 encoder; features at strides 4, 8, 16, 32 with 128, 320, 640, 1024 channels."""

    # per block: growth, layers, 1x1 transition width, max-pool after
    PLAN68 = ((14, 8, 128, True), (16, 16, 256, False), (20, 16, 320, True), (40, 16, 640, True),
              (160, 4, 1024, False))
    TAPS = (0, 2, 3, 4)      # blocks whose transitions are the features

    def __init__(self, in_channels=3, grmul=1.7):
        super().__init__()
        self.stem = nn.Sequential(_conv_bn_relu6(in_channels, 32, 3, 2), _conv_bn_relu6(32, 64, 3),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, ch = [], 64
        for growth, n, width, pool in self.PLAN68:
            blk = HarDBlock(ch, growth, grmul, n)
            parts = [blk, _conv_bn_relu6(blk.out_channels, width, 1)]
            if pool:
                parts.append(nn.MaxPool2d(2, 2))
            blocks.append(nn.Sequential(*parts))
            ch = width
        self.blocks = nn.ModuleList(blocks)
        self.channels = [self.PLAN68[i][2] for i in self.TAPS]
        kaiming_init(self)

    def forward(self, x):
        x = self.stem(x)
        feats = []
        for i, blk in enumerate(self.blocks):
            pre_pool = blk[1](blk[0](x))
            x = blk[2](pre_pool) if len(blk) > 2 else pre_pool
            if i in self.TAPS:
                feats.append(pre_pool)
        return feats


# ------------------------------------------------------------------------------------------
SWIN = {  # embed dim, blocks per stage, heads per stage (Liu et al. 2021, Table 1)
    "swin-t": (96, (2, 2, 6, 2), (3, 6, 12, 24)),
    "swin-s": (96, (2, 2, 18, 2), (3, 6, 12, 24)),
    "swin-b": (128, (2, 2, 18, 2), (4, 8, 16, 32)),
    # not in the paper: a narrow, shallow Swin for CPU runs and tests
    "swin-mini": (32, (2, 2, 2, 2), (1, 2, 4, 8)),
}


def _windows(x, w):
    """(B, H, W, C) -> (B * nW, w*w, C); H and W multiples of w."""
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def _unwindows(win, w, b, h, wd):
    c = win.shape[-1]
    x = win.view(b, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, c)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative position bias."""

    def __init__(self, dim, window, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("bias_index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.qk, self.av = MatMul(), MatMul()

    def forward(self, x, mask=None):
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = self.qk(q * self.scale, k.transpose(-2, -1))
        attn = attn + self.bias_table[self.bias_index.view(-1)].view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(bw // nw, nw, self.heads, n, n) + mask[None, :, None]).view(bw, self.heads, n, n)
        out = self.av(attn.softmax(-1), v).transpose(1, 2).reshape(bw, n, c)
        return self.proj(out)


class SwinBlock(nn.Module):
    """(Shifted-)window attention and an MLP, each pre-normed and residual; (B, H, W, C) in and out."""

    def __init__(self, dim, heads, window, shift, drop_path=0.0, mlp_ratio=4.0):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop = DropPath(drop_path)

    def forward(self, x, mask):
        b, h, w, c = x.shape
        win = self.window
        y = self.norm1(x)
        ph, pw = (-h) % win, (-w) % win
        y = F.pad(y, (0, 0, 0, pw, 0, ph))
        hp, wp = h + ph, w + pw
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
        y = self.attn(_windows(y, win), mask if self.shift else None)
        y = _unwindows(y, win, b, hp, wp)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), (1, 2))
        x = x + self.drop(y[:, :h, :w])
        return x + self.drop(self.mlp(self.norm2(x)))


def shifted_window_mask(hp, wp, window, shift, device):
    """The -100/0 mask that keeps shifted windows from mixing regions that were not neighbours."""
    img = torch.zeros((1, hp, wp, 1), device=device)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for i, hs in enumerate(cuts):
        for j, ws in enumerate(cuts):
            img[:, hs, ws, :] = i * 3 + j
    m = _windows(img, window).squeeze(-1)
    diff = m[:, None, :] - m[:, :, None]
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class SwinStage(nn.Module):
    """``depth`` Swin blocks (every other one shifted); (B, H, W, C) in and out."""

    def __init__(self, dim, depth, heads, window=7, drop_paths=None):
        super().__init__()
        drop_paths = drop_paths or [0.0] * depth
        self.window, self.shift = window, window // 2
        self.blocks = nn.ModuleList([SwinBlock(dim, heads, window, 0 if i % 2 == 0 else self.shift, drop_paths[i])
                                     for i in range(depth)])

    def forward(self, x):
        hp = -(-x.shape[1] // self.window) * self.window
        wp = -(-x.shape[2] // self.window) * self.window
        mask = shifted_window_mask(hp, wp, self.window, self.shift, x.device).to(x.dtype)
        for blk in self.blocks:
            x = blk(x, mask)
        return x


class PatchMerging(nn.Module):
    """2x2 neighbouring tokens concatenated, normed and projected to twice the width (stride x 2)."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        x = F.pad(x, (0, 0, 0, x.shape[2] % 2, 0, x.shape[1] % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class SwinEncoder(nn.Module):
    """A four-stage Swin Transformer; features at strides ``patch`` x (1, 2, 4, 8), each layer-normed.

    Parameters
    ----------
    in_channels : int
    variant : str
        A key of :data:`SWIN` (embedding width, depths, heads).
    patch : int
        Patch size of the embedding (4 in Swin; DS-TransUNet's second encoder uses 8).
    window : int
    drop_path : float
        Stochastic-depth rate, rising linearly to this over the blocks.
    """

    def __init__(self, in_channels=3, variant="swin-t", patch=4, window=7, drop_path=0.2):
        super().__init__()
        if variant not in SWIN:
            raise ValueError(f"Swin variant must be one of {', '.join(SWIN)}, not {variant!r}")
        embed, depths, heads = SWIN[variant]
        self.patch = patch
        self.embed = nn.Conv2d(in_channels, embed, patch, patch)
        self.embed_norm = nn.LayerNorm(embed)
        rates = linear_rates(drop_path, sum(depths))
        self.channels = [embed * 2 ** i for i in range(4)]
        self.stages, self.merges, self.norms = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i, (d, h) in enumerate(zip(depths, heads)):
            self.stages.append(SwinStage(self.channels[i], d, h, window, rates[sum(depths[:i]):sum(depths[:i + 1])]))
            self.norms.append(nn.LayerNorm(self.channels[i]))
            if i < 3:
                self.merges.append(PatchMerging(self.channels[i]))
        self.apply(_init_transformer)

    def forward(self, x):
        ph, pw = (-x.shape[2]) % self.patch, (-x.shape[3]) % self.patch
        x = self.embed(F.pad(x, (0, pw, 0, ph)))
        x = self.embed_norm(x.permute(0, 2, 3, 1))
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            feats.append(self.norms[i](x).permute(0, 3, 1, 2).contiguous())
            if i < 3:
                x = self.merges[i](x)
        return feats


def _init_transformer(m):
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
