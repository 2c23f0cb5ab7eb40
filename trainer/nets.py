"""Segmentation networks, chosen by name; one interface: (B, C, H, W) slices in, (B, 1, H, W) logits out.

* ``iannet`` — the source paper's network (Choi et al., Sci Rep 2026), written from its
  description and from what the authors' public model file shows: a full-resolution stem, four
  encoder stages (2x2 max-pool keeping indices, then a ResNeSt-style bottleneck whose middle conv
  is the multi split-pool aggregation (MSPA) module), a max-unpooling decoder with skip
  concatenation and conv-BN-ReLU stacks, and a 1-channel logit head. The paper describes split
  attention inside the blocks; the public file builds those layers but never calls them.
  ``split_attention=False`` (default) is the public file's behaviour; ``True`` applies
  ResNeSt-style attention across the four MSPA branches. Model files record which.
  ``init="public"`` starts the encoder as the public file does (see :class:`IANNet`).
* ``unet`` — a BatchNorm U-Net (Ronneberger 2015 with BN), width set by ``base``; the default
  bundled model is a small one.
* ``deeplabv3plus`` — DeepLabV3+ (Chen 2018): a residual encoder with output stride 16, atrous
  spatial pyramid pooling and the low-level-feature decoder, written here (no torchvision).
* the source paper's other comparators, in :mod:`.nets_comparators`: ``caranet``,
  ``ds-transunet``, ``duck-net``, ``hardnet-mseg``, ``meganet``.
* ``unet3d`` — a 3D U-Net for the working-grid 3D pipeline.

2D networks take any H and W that are multiples of 16 (the preprocessing pads to that; the
comparators with deeper strides pad internally). :data:`NETWORK_INFO` says which paper defines
each network and what it publishes about its size; ``ian networks`` prints it.
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import ResNet
from .nets_blocks import MatMul, matmul_macs
from .nets_blocks import cbr as _cbr
from .nets_blocks import supervised_loss  # noqa: F401 (the training loop's entry to deep supervision)

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
    """The paper's network; see the module docstring.

    ``init="pytorch"`` leaves PyTorch's default initialisation; ``init="public"`` starts the four
    encoder stages as the authors' public ``ResNet.__init__`` does: every convolution weight drawn
    from N(0, sqrt(2 / (k * k * C_out))), BatchNorm scale 1 and shift 0 (the stem and decoder keep
    PyTorch's defaults there too). It changes only the starting point, never the architecture.
    """

    INITS = ("pytorch", "public")

    def __init__(self, in_channels: int = 1, stem: int = 64, split_attention: bool = False, init: str = "pytorch"):
        super().__init__()
        if init not in self.INITS:
            raise ValueError(f"iannet init must be one of {', '.join(self.INITS)}, not {init!r}")
        self.config = {"in_channels": in_channels, "stem": stem, "split_attention": split_attention, "init": init}
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
        if init == "public":
            for m in self.enc.modules():
                if isinstance(m, nn.Conv2d):
                    fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                    nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

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
    """DeepLabV3+ (Chen, Zhu, Papandreou, Schroff & Adam, ECCV 2018): an encoder at output stride
    16, atrous spatial pyramid pooling (1x1, 3x3 at rates 6/12/18, image pooling), and a decoder
    that joins the upsampled ASPP features with 48 channels of stride-4 features.

    ``backbone="resnet101"`` is the paper's ResNet-101 (ImageNet-pretrained in the original; from
    scratch here), its last stage dilated. ``backbone="resnet18s"`` (default; older model files
    use it) is a small ResNet-18-like encoder with a full-resolution stem. ``pool_bn=True`` puts
    the paper's BatchNorm in the image-pooling branch (older files have none).
    """

    BACKBONES = ("resnet18s", "resnet101")

    def __init__(self, in_channels: int = 1, base: int = 64, aspp: int = 256, backbone: str = "resnet18s",
                 pool_bn: bool = False):
        super().__init__()
        if backbone not in self.BACKBONES:
            raise ValueError(f"deeplabv3plus backbone must be one of {', '.join(self.BACKBONES)}, not {backbone!r}")
        self.config = {"in_channels": in_channels, "base": base, "aspp": aspp, "backbone": backbone, "pool_bn": pool_bn}
        b = base
        if backbone == "resnet101":
            self.encoder = ResNet(in_channels, stem=b)
            low_c, c = self.encoder.channels[0], self.encoder.channels[3]
        else:
            self.stem = nn.Sequential(_cbr(in_channels, b // 2), _cbr(b // 2, b))        # full resolution
            self.layer1 = nn.Sequential(_ResBlock(b, b, stride=2), _ResBlock(b, b))       # /2
            self.layer2 = nn.Sequential(_ResBlock(b, b * 2, stride=2), _ResBlock(b * 2, b * 2))   # /4 low-level
            self.layer3 = nn.Sequential(_ResBlock(b * 2, b * 4, stride=2), _ResBlock(b * 4, b * 4))  # /8
            self.layer4 = nn.Sequential(_ResBlock(b * 4, b * 8, stride=2), _ResBlock(b * 8, b * 8, dilation=2))  # /16
            low_c, c = b * 2, b * 8
        self.aspp = nn.ModuleList([_cbr(c, aspp, 1)] + [_cbr(c, aspp, 3, dilation=r) for r in (6, 12, 18)])
        self.aspp_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, aspp, 1, bias=False),
                                       *([nn.BatchNorm2d(aspp)] if pool_bn else []), nn.ReLU(inplace=True))
        self.aspp_proj = _cbr(aspp * 5, aspp, 1)
        self.low = _cbr(low_c, 48, 1)
        self.decoder = nn.Sequential(_cbr(aspp + 48, aspp), _cbr(aspp, aspp))
        self.head = nn.Conv2d(aspp, 1, 1)

    def _features(self, x):
        if self.config["backbone"] == "resnet101":
            feats = self.encoder(x)
            return feats[0], feats[3]
        low = self.layer2(self.layer1(self.stem(x)))
        return low, self.layer4(self.layer3(low))

    def forward(self, x):
        size = x.shape[-2:]
        low, x = self._features(x)
        pooled = F.interpolate(self.aspp_pool(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = self.aspp_proj(torch.cat([m(x) for m in self.aspp] + [pooled], dim=1))
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        x = self.decoder(torch.cat([x, self.low(low)], dim=1))
        return F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)


# ------------------------------------------------------------------------------------------
class InstanceNorm3dCL(nn.InstanceNorm3d):
    """Affine 3D instance norm (same parameters and outputs as :class:`torch.nn.InstanceNorm3d`)
    with a faster path for channels-last inputs: in inference, and in float32 training on a CPU.

    PyTorch's CPU instance norm is about four times slower on a channels-last 3D tensor than on a
    contiguous one (it copies the input into the contiguous layout and the result back, in the
    forward and the backward pass), and the 3D network runs channels-last because its convolutions
    are faster so (``BENCHMARKS.md``). Here the statistics come from the channels-last memory read
    as (N, voxels, C) in float32 and the normalisation is one multiply-add in the input's dtype
    (bf16 under autocast, as PyTorch's returns), which keeps the layout. With gradients, in float32
    on a CPU, the backward pass is written out the same way (:class:`_InstanceNormCLFunction`: a
    training step took a quarter less time on a 2-core CPU); bf16 training keeps PyTorch's kernel
    (where bf16 is converted in software, an earlier version of ours was slower there) and so do
    other devices (not measured).
    """

    def forward(self, x):
        if not self.affine or x.dim() != 5 or not x.is_contiguous(memory_format=torch.channels_last_3d):
            return super().forward(x)
        if torch.is_grad_enabled():
            if x.device.type != "cpu" or x.dtype != torch.float32:
                return super().forward(x)
            return _InstanceNormCLFunction.apply(x, self.weight, self.bias, self.eps, self._statistics)
        return _normalised(x, self.weight, self.bias, self.eps, self._statistics)[0]

    @staticmethod
    def _statistics(x):
        """(variance, mean) per sample and channel, (N, C) float32 each, of a channels-last input."""
        return _channel_var_mean(x)


class _InstanceNormCLFunction(torch.autograd.Function):
    """Affine instance norm of a channels-last (N, C, D, H, W) tensor with its backward pass.

    With ``xhat = (x - mean) * rstd`` per sample and channel over the ``m`` voxels:
    ``dx = weight * rstd * (dy - sum(dy) / m - xhat * sum(dy * xhat) / m)``,
    ``dweight = sum(dy * xhat)``, ``dbias = sum(dy)`` (summed over the batch too). The sums run
    over the channels-last memory (:func:`_channel_sums`) in float32.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps, statistics):
        y, mean, rstd = _normalised(x, weight, bias, eps, statistics)
        ctx.save_for_backward(x, mean, rstd, weight)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        x, mean, rstd, weight = ctx.saved_tensors
        n, c = x.shape[:2]
        m = x[0, 0].numel()
        cl = torch.channels_last_3d
        xhat = ((x - mean.view(n, c, 1, 1, 1)) * rstd.view(n, c, 1, 1, 1)).contiguous(memory_format=cl)
        dy = dy.contiguous(memory_format=cl)
        s_dy = _channel_sums(dy)
        s_dyx = _channel_sums(dy * xhat)
        dx = None
        if ctx.needs_input_grad[0]:
            a = weight * rstd
            dx = torch.addcmul((-a * s_dy / m).view(n, c, 1, 1, 1), xhat, (-a * s_dyx / m).view(n, c, 1, 1, 1))
            dx.addcmul_(dy, a.view(n, c, 1, 1, 1))
        return dx, s_dyx.sum(0), s_dy.sum(0), None, None


def _normalised(x, weight, bias, eps, statistics):
    """The affine instance norm of a channels-last input, one multiply-add in its dtype (which keeps
    the layout), and the float32 (N, C) mean and 1 / standard deviation it used."""
    n, c = x.shape[:2]
    var, mean = statistics(x)
    rstd = torch.rsqrt(var + eps)
    scale = rstd * weight
    shift = bias - mean * scale
    y = torch.addcmul(shift.to(x.dtype).view(n, c, 1, 1, 1), x, scale.to(x.dtype).view(n, c, 1, 1, 1))
    return y, mean, rstd


def _channel_sums(t: torch.Tensor) -> torch.Tensor:
    """Sums per sample and channel, (N, C), of a channels-last float32 (N, C, D, H, W) tensor."""
    n, c, d, h, w = t.shape
    return _row_sums(t.permute(0, 2, 3, 4, 1).reshape(n, d * h, w * c), w, c)


def _row_sums(rows: torch.Tensor, w: int, c: int) -> torch.Tensor:
    """(N, C) sums of channels-last memory viewed as (N, D x H, W x C) rows: summed over the rows
    first (a few channels alone are too narrow to vectorise), then over W."""
    n = rows.shape[0]
    return rows.sum(1).view(n, w, c).sum(1)


def _channel_var_mean(x: torch.Tensor):
    """Biased variance and mean per sample and channel of a channels-last (N, C, D, H, W) tensor,
    in float32, as (N, C) each.

    ``torch.var_mean`` over the voxels of a channels-last tensor took 30 % of a prediction's time
    on a 2-core CPU (``BENCHMARKS.md``, eleventh stop); plain sums are several times faster, the
    more so over rows of W x C values (:func:`_row_sums`). They are taken about a rough
    per-channel mean (every 97th voxel's) so that the difference of squares does not cancel when
    the mean is large against the spread."""
    n, c, d, h, w = x.shape
    y = x.permute(0, 2, 3, 4, 1).reshape(n, d * h * w, c).float()
    k = y[:, ::97].mean(1, keepdim=True)
    dev = (y - k).view(n, d * h, w * c)
    s1 = _row_sums(dev, w, c)
    s2 = _row_sums(dev.square_(), w, c)
    count = d * h * w
    md = s1 / count
    return (s2 / count - md * md).clamp_(min=0.0), md + k[:, 0]


def _cin3(cin, cout):
    return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1, bias=False), InstanceNorm3dCL(cout, affine=True),
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


def _comparators():
    from . import nets_comparators as c

    return {"caranet": c.CaraNet, "ds-transunet": c.DSTransUNet, "duck-net": c.DUCKNet,
            "hardnet-mseg": c.HarDNetMSEG, "meganet": c.MEGANet}


NETWORKS = {"iannet": IANNet, "unet": UNet, "deeplabv3plus": DeepLabV3Plus, **_comparators(), "unet3d": UNet3D}
THREE_D = {"unet3d"}


@dataclasses.dataclass(frozen=True)
class NetworkInfo:
    """What ``ian networks`` says about a network besides what it measures.

    Attributes
    ----------
    title : str
        Its usual name.
    paper : str
        The paper that defines it.
    published : str
        The parameter count its paper (or its authors' code) gives, and where; empty when neither
        gives one that we could check.
    backbone : tuple or None
        ``(name, published parameters)`` of the published encoder a network is built on (counted
        with its 1000-class ImageNet classifier, as published); tests/test_nets.py checks ours.
    """

    title: str
    paper: str
    published: str = ""
    backbone: tuple | None = None


NETWORK_INFO = {
    "iannet": NetworkInfo("IANNet", "Choi, Han, Lee et al., Sci Rep 2026 (the source study)",
                          "15,314,945 in the authors' IANNet.py, of which 230,144 are in layers it never calls"),
    "unet": NetworkInfo("U-Net", "Ronneberger, Fischer & Brox, MICCAI 2015 (here with BatchNorm)"),
    "deeplabv3plus": NetworkInfo("DeepLabV3+", "Chen, Zhu, Papandreou, Schroff & Adam, ECCV 2018",
                                 backbone=("ResNet-101 (He et al., CVPR 2016)", 44.5e6)),
    "caranet": NetworkInfo("CaraNet", "Lou, Guan & Loew, J Med Imaging 10:014005, 2023",
                           backbone=("Res2Net-101 v1b (Gao et al., IEEE TPAMI 2021)", 45.2e6)),
    "ds-transunet": NetworkInfo("DS-TransUNet", "Lin, Chen, Xu, Zhang, Lu & Zhang, IEEE TIM 71, 2022",
                                backbone=("Swin-B + Swin-T (Liu et al., ICCV 2021)", 88e6 + 28e6)),
    "duck-net": NetworkInfo("DUCK-Net", "Dumitru, Peteleaza & Craciun, Sci Rep 13:9803, 2023"),
    "hardnet-mseg": NetworkInfo("HarDNet-MSEG", "Huang, Wu & Lin, arXiv 2101.07172, 2021",
                                backbone=("HarDNet-68 (Chao et al., ICCV 2019)", 17.6e6)),
    "meganet": NetworkInfo("MEGANet", "Bui, Hoang, Nguyen, Tran & Le, WACV 2024",
                           backbone=("Res2Net-50 v1b (Gao et al., IEEE TPAMI 2021)", 25.7e6)),
    "unet3d": NetworkInfo("3D U-Net", "Cicek et al., MICCAI 2016, with nnU-Net's instance norm"),
}
# the seven networks of the source study's comparison (its Table 1), the reference first
PAPER_NETWORKS = ("iannet", "caranet", "ds-transunet", "duck-net", "deeplabv3plus", "hardnet-mseg", "meganet")


def is_3d(name: str) -> bool:
    """Whether a network reads 3D patches (B, 1, D, H, W) instead of 2D slices."""
    return name.lower() in THREE_D


def build_network(name: str, **config) -> nn.Module:
    """Build a network by name with its settings (e.g. ``in_channels=3`` for 2.5D input)."""
    key = name.lower()
    if key in NETWORKS:
        return NETWORKS[key](**config)
    raise ValueError(f"unknown network {name!r}; available: {', '.join(NETWORKS)}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def count_macs(model: nn.Module, shape=(1, 1, 256, 256)) -> int:
    """Multiply-accumulates of one forward pass of ``shape`` (eval mode), per batch element.

    Counts convolutions (incl. transposed, 2D and 3D), linear layers and the attention products
    the networks here compute through :class:`~.nets_blocks.MatMul`; normalisation, activation,
    pooling and interpolation are left out (a few per cent at most). A model built on the
    ``meta`` device is counted without computing anything (``ian networks`` does that).
    """
    total = 0
    device = next(model.parameters(), torch.zeros(0)).device

    def hook(mod, inp, out):
        nonlocal total
        x = inp[0]
        if isinstance(mod, MatMul):
            total += matmul_macs(inp[0], inp[1])
        elif isinstance(mod, nn.Linear):
            total += x.numel() // x.shape[0] * mod.out_features
        elif isinstance(mod, _TRANSPOSED):
            total += x.numel() // x.shape[0] * mod.out_channels * math.prod(mod.kernel_size) // mod.groups
        else:
            total += out.numel() // out.shape[0] * math.prod(mod.kernel_size) * (mod.in_channels // mod.groups)

    kinds = _CONVS + _TRANSPOSED + (nn.Linear, MatMul)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(shape, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return int(total)
