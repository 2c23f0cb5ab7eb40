"""Segmentation networks, chosen by name; one interface: (B, C, H, W) slices in, (B, 1, H, W) logits out.

* ``iannet`` — the source paper's network (Choi et al., Sci Rep 2026), written from its
  description and from what the authors' public model file shows: a full-resolution stem, four
  encoder stages (2x2 max-pool keeping indices, then a ResNeSt-style bottleneck whose middle conv
  is the multi split-pool aggregation (MSPA) module), a max-unpooling decoder with skip
  concatenation and conv-BN-ReLU stacks, and a 1-channel logit head. The paper describes split
  attention inside the blocks; the public file builds those layers but never calls them.
  ``split_attention=False`` (default) is the public file's behaviour; ``True`` applies
  ResNeSt-style attention across the four MSPA branches. Model files record which.
* ``unet`` — a BatchNorm U-Net (Ronneberger 2015 with BN), width set by ``base``; the default
  bundled model is a small one.
* ``deeplabv3plus`` — DeepLabV3+ (Chen 2018): a residual encoder with output stride 16, atrous
  spatial pyramid pooling and the low-level-feature decoder, written here (no torchvision).

H and W must be multiples of 16 (the preprocessing pads to that).

The paper's other comparators have a documented place in :data:`PLANNED`; asking for one says so.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The paper's remaining comparators (Table 1), to be added here as `name: builder`.
PLANNED = {
    "caranet": "CaraNet (Lou et al., J Med Imaging 2023)",
    "ds-transunet": "DS-TransUNet (Lin et al., IEEE TIM 2022)",
    "duck-net": "DUCK-Net (Dumitru et al., Sci Rep 2023)",
    "hardnet-mseg": "HarDNet-MSEG (Huang et al., arXiv 2101.07172)",
    "meganet": "MEGANet (Bui et al., WACV 2024)",
}


def _cbr(cin, cout, k=3, dilation=1, bias=False):
    pad = dilation * (k // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, bias=bias),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


# ------------------------------------------------------------------------------------------
# IANNet
class MultiPoolAggregation(nn.Module):
    """MPA: adaptive average pooling at 1, 2 and 3, 1x1 conv each, upsampled, concatenated, fused."""

    def __init__(self, cin, cout, sizes=(1, 2, 3)):
        super().__init__()
        self.stages = nn.ModuleList([nn.Sequential(nn.AdaptiveAvgPool2d(s), _cbr(cin, cout, 1)) for s in sizes])
        self.fuse = _cbr(cout * len(sizes), cout, 1)

    def forward(self, x):
        h, w = x.shape[-2:]
        feats = [F.interpolate(stage(x), size=(h, w), mode="bilinear", align_corners=True) for stage in self.stages]
        return self.fuse(torch.cat(feats, dim=1))


class MSPA(nn.Module):
    """Multi split-pool aggregation: a grouped 3x3 conv split into four branches (1/3/5/7) summed,
    plus multi-pool aggregation of the input; optional split attention across the branches."""

    def __init__(self, channels, split_attention=False, radix=4, reduction=4):
        super().__init__()
        self.radix = radix
        self.grouped = nn.Sequential(nn.Conv2d(channels, channels * radix, 3, padding=1, groups=radix, bias=False),
                                     nn.BatchNorm2d(channels * radix), nn.ReLU(inplace=True))
        self.branches = nn.ModuleList([_cbr(channels, channels, k) for k in (1, 3, 5, 7)][:radix])
        self.pool = MultiPoolAggregation(channels, channels)
        self.split_attention = split_attention
        if split_attention:
            inter = max(channels * radix // reduction, 32)
            self.fc1 = nn.Sequential(nn.Conv2d(channels, inter, 1), nn.BatchNorm2d(inter), nn.ReLU(inplace=True))
            self.fc2 = nn.Conv2d(inter, channels * radix, 1)

    def forward(self, x):
        pooled = self.pool(x)
        splits = torch.chunk(self.grouped(x), self.radix, dim=1)
        outs = [branch(s) for branch, s in zip(self.branches, splits)]
        if self.split_attention:
            gap = F.adaptive_avg_pool2d(sum(outs), 1)
            att = self.fc2(self.fc1(gap))                                  # (B, C*radix, 1, 1)
            b, c = gap.shape[:2]
            att = F.softmax(att.view(b, self.radix, c, 1, 1), dim=1)       # attention over branches
            merged = sum(att[:, i] * o for i, o in enumerate(outs))
        else:
            merged = sum(outs)
        return merged + pooled


class MSPABottleneck(nn.Module):
    """ResNeSt-style bottleneck (expansion 4) whose middle conv is MSPA."""

    expansion = 4

    def __init__(self, cin, planes, split_attention=False):
        super().__init__()
        cout = planes * self.expansion
        self.reduce = _cbr(cin, planes, 1)
        self.mspa = MSPA(planes, split_attention=split_attention)
        self.expand = nn.Sequential(nn.Conv2d(planes, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
                         if cin != cout else nn.Identity())

    def forward(self, x):
        return F.relu(self.expand(self.mspa(self.reduce(x))) + self.shortcut(x))


class IANNet(nn.Module):
    """The paper's network; see the module docstring."""

    def __init__(self, in_channels: int = 1, stem: int = 64, split_attention: bool = False):
        super().__init__()
        self.config = {"in_channels": in_channels, "stem": stem, "split_attention": split_attention}
        self.stem = nn.Sequential(_cbr(in_channels, stem, 3, bias=True), _cbr(stem, stem, 3, bias=True),
                                  _cbr(stem, stem, 1, bias=True))
        planes = (stem // 2, stem, stem * 2, stem * 2)           # outputs 128/256/512/512 for stem 64
        chans = [stem] + [p * 4 for p in planes]
        self.enc = nn.ModuleList([MSPABottleneck(chans[i], planes[i], split_attention) for i in range(4)])
        c1, c2, c3, c4, c5 = chans
        self.dec4 = nn.Sequential(_cbr(c5 + c4, c4, bias=True), _cbr(c4, c4, bias=True), _cbr(c4, c3, bias=True))
        self.dec3 = nn.Sequential(_cbr(c3 * 2, c3, bias=True), _cbr(c3, c3, bias=True), _cbr(c3, c2, bias=True))
        self.dec2 = nn.Sequential(_cbr(c2 * 2, c2, bias=True), _cbr(c2, c1, bias=True))
        self.dec1 = _cbr(c1 * 2, c1 * 2, bias=True)
        self.head = nn.Conv2d(c1 * 2, 1, 3, padding=1)

    def forward(self, x):
        skips, indices = [], []
        x = self.stem(x)
        for block in self.enc:
            skips.append(x)
            x, idx = F.max_pool2d(x, 2, 2, return_indices=True)
            indices.append(idx)
            x = block(x)
        for dec, skip, idx in zip((self.dec4, self.dec3, self.dec2, self.dec1), skips[::-1], indices[::-1]):
            x = F.max_unpool2d(x, idx, 2, 2, output_size=skip.shape[-2:])
            x = dec(torch.cat([x, skip], dim=1))
        return self.head(x)


# ------------------------------------------------------------------------------------------
class UNet(nn.Module):
    """BatchNorm U-Net: two conv-BN-ReLU per level, max-pool down, transposed-conv up."""

    def __init__(self, in_channels: int = 1, base: int = 32, depth: int = 4):
        super().__init__()
        self.config = {"in_channels": in_channels, "base": base, "depth": depth}
        widths = [base * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(nn.Sequential(_cbr(cin, w), _cbr(w, w)))
            cin = w
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(depth)])
        self.dec = nn.ModuleList([nn.Sequential(_cbr(widths[i] * 2, widths[i]), _cbr(widths[i], widths[i]))
                                  for i in range(depth)])
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for i in reversed(range(len(self.up))):
            x = self.up[i](x)
            x = self.dec[i](torch.cat([x, skips[i]], dim=1))
        return self.head(x)


# ------------------------------------------------------------------------------------------
class _ResBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, dilation=1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm2d(cout))
        self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
                      if (stride != 1 or cin != cout) else nn.Identity())

    def forward(self, x):
        return F.relu(self.body(x) + self.short(x))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ with a ResNet-18-like encoder (output stride 16), ASPP rates 6/12/18."""

    def __init__(self, in_channels: int = 1, base: int = 64, aspp: int = 256):
        super().__init__()
        self.config = {"in_channels": in_channels, "base": base, "aspp": aspp}
        b = base
        self.stem = nn.Sequential(_cbr(in_channels, b // 2), _cbr(b // 2, b))        # full resolution
        self.layer1 = nn.Sequential(_ResBlock(b, b, stride=2), _ResBlock(b, b))       # /2
        self.layer2 = nn.Sequential(_ResBlock(b, b * 2, stride=2), _ResBlock(b * 2, b * 2))   # /4 low-level
        self.layer3 = nn.Sequential(_ResBlock(b * 2, b * 4, stride=2), _ResBlock(b * 4, b * 4))  # /8
        self.layer4 = nn.Sequential(_ResBlock(b * 4, b * 8, stride=2), _ResBlock(b * 8, b * 8, dilation=2))  # /16
        c = b * 8
        self.aspp = nn.ModuleList([_cbr(c, aspp, 1)] + [_cbr(c, aspp, 3, dilation=r) for r in (6, 12, 18)])
        self.aspp_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, aspp, 1, bias=False), nn.ReLU(inplace=True))
        self.aspp_proj = _cbr(aspp * 5, aspp, 1)
        self.low = _cbr(b * 2, 48, 1)
        self.decoder = nn.Sequential(_cbr(aspp + 48, aspp), _cbr(aspp, aspp))
        self.head = nn.Conv2d(aspp, 1, 1)

    def forward(self, x):
        size = x.shape[-2:]
        x = self.layer1(self.stem(x))
        low = self.layer2(x)
        x = self.layer4(self.layer3(low))
        pooled = F.interpolate(self.aspp_pool(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = self.aspp_proj(torch.cat([m(x) for m in self.aspp] + [pooled], dim=1))
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        x = self.decoder(torch.cat([x, self.low(low)], dim=1))
        return F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)


# ------------------------------------------------------------------------------------------
def _cin3(cin, cout):
    return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.InstanceNorm3d(cout, affine=True),
                         nn.LeakyReLU(0.01, inplace=True))


class UNet3D(nn.Module):
    """A small 3D U-Net (Cicek et al., MICCAI 2016) with instance norm and leaky ReLU as in
    nnU-Net (Isensee et al., Nat Methods 2021): (B, 1, D, H, W) in, (B, 1, D, H, W) logits out.
    Instance norm because 3D batches are small. D, H and W must be multiples of ``2 ** depth``."""

    def __init__(self, in_channels: int = 1, base: int = 12, depth: int = 3):
        super().__init__()
        self.config = {"in_channels": in_channels, "base": base, "depth": depth}
        widths = [base * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(nn.Sequential(_cin3(cin, w), _cin3(w, w)))
            cin = w
        self.up = nn.ModuleList([nn.ConvTranspose3d(widths[i + 1], widths[i], 2, stride=2) for i in range(depth)])
        self.dec = nn.ModuleList([nn.Sequential(_cin3(widths[i] * 2, widths[i]), _cin3(widths[i], widths[i]))
                                  for i in range(depth)])
        self.head = nn.Conv3d(widths[0], 1, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = F.max_pool3d(x, 2)
        for i in reversed(range(len(self.up))):
            x = self.dec[i](torch.cat([self.up[i](x), skips[i]], dim=1))
        return self.head(x)


NETWORKS = {"iannet": IANNet, "unet": UNet, "deeplabv3plus": DeepLabV3Plus, "unet3d": UNet3D}
THREE_D = {"unet3d"}


def is_3d(name: str) -> bool:
    """Whether a network reads 3D patches (B, 1, D, H, W) instead of 2D slices."""
    return name.lower() in THREE_D


def build_network(name: str, **config) -> nn.Module:
    """Build a network by name with its settings (e.g. ``in_channels=3`` for 2.5D input)."""
    key = name.lower()
    if key in NETWORKS:
        return NETWORKS[key](**config)
    if key in PLANNED:
        raise ValueError(f"network {name!r} ({PLANNED[key]}) is one of the paper's comparators not "
                         f"implemented yet; available: {', '.join(NETWORKS)}")
    raise ValueError(f"unknown network {name!r}; available: {', '.join(NETWORKS)}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, shape=(1, 1, 256, 256)) -> int:
    """Multiply-accumulates of convolutions (incl. transposed) for one forward pass of ``shape``."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.ConvTranspose2d):
            total += inp[0].numel() // inp[0].shape[0] * mod.out_channels * mod.kernel_size[0] * mod.kernel_size[1] // mod.groups
        else:
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            total += out.numel() // out.shape[0] * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(shape))
    model.train(was_training)
    for h in handles:
        h.remove()
    return int(total)
