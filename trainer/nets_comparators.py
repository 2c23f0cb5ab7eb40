"""The source paper's comparators (its Table 1), each written from its own paper and checked against
its authors' public model code; same interface as every network here: (B, C, H, W) slices in,
(B, 1, H, W) logits out, any H and W (inputs are zero-padded to the network's output stride and
the logits cropped back).

The originals start from ImageNet-pretrained backbones, which cannot ship or download here: all
start from scratch. The originals train with their own losses (named in each docstring); the
source study trained all of them with its Focal Tversky loss, and so does ``ian cv``. Where an
original supervises several outputs, ``deep_supervision=True`` (the default) keeps them, with the
original's weights, through :func:`napari_ian.trainer.nets_blocks.supervised_loss`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import SWIN, HarDNet, Res2Net, SwinEncoder, SwinStage
from .nets_blocks import MatMul, PartialDecoder, cbr, crop_to, linear_rates, pad_to_multiple


def _up(x, ref_or_size, mode="bilinear"):
    size = ref_or_size.shape[-2:] if torch.is_tensor(ref_or_size) else ref_or_size
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def _centre_channel(x):
    return x[:, x.shape[1] // 2:x.shape[1] // 2 + 1]


# ------------------------------------------------------------------------------------------
# CaraNet
def _conv_bnprelu(cin, cout, k=3, dilation=1, groups=1):
    """CaraNet's conv + BN (eps 1e-3) + PReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation, groups=groups,
                                   bias=False), nn.BatchNorm2d(cout, eps=1e-3), nn.PReLU(cout))


class ChannelFeaturePyramid(nn.Module):
    """CFP module (Lou & Loew, CFPNet 2021): four branches of three small grouped dilated convs
    (rates 1, d/4+1, d/2+1, d+1), summed hierarchically, fused by a 1x1 conv, residual."""

    def __init__(self, c, d=8):
        super().__init__()
        if c % 16:
            raise ValueError(f"CaraNet channel must be a multiple of 16, not {c}")
        g = c // 16
        self.pre = nn.Sequential(nn.BatchNorm2d(c, eps=1e-3), nn.PReLU(c), _conv_bnprelu(c, c // 4, 3))
        self.branches = nn.ModuleList([
            nn.ModuleList([_conv_bnprelu(c // 4, c // 16, 3, r, g), _conv_bnprelu(c // 16, c // 16, 3, r, g),
                           _conv_bnprelu(c // 16, c // 8, 3, r, g)])
            for r in (1, d // 4 + 1, d // 2 + 1, d + 1)])
        self.post = nn.Sequential(nn.BatchNorm2d(c, eps=1e-3), nn.PReLU(c), nn.Conv2d(c, c, 1, bias=False))

    def forward(self, x):
        y = self.pre(x)
        outs, acc = [], None
        for a, b, c in self.branches:
            o1 = a(y)
            o2 = b(o1)
            branch = torch.cat([o1, o2, c(o2)], 1)
            acc = branch if acc is None else acc + branch
            outs.append(acc)
        return self.post(torch.cat(outs, 1)) + x


class AxialAttention(nn.Module):
    """Self-attention along one axis (``"h"``: rows attend to rows, each row one token of all its
    channels and columns; ``"w"``: columns), sigmoid-gated and added with a learned weight that
    starts at 0, as CaraNet's axial attention (after UACANet)."""

    def __init__(self, c, axis):
        super().__init__()
        self.axis = axis
        self.q, self.k = nn.Conv2d(c, max(c // 8, 1), 1, bias=False), nn.Conv2d(c, max(c // 8, 1), 1, bias=False)
        self.v = nn.Conv2d(c, c, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.qk, self.av = MatMul(), MatMul()

    def _tokens(self, t):
        b, c, h, w = t.shape
        if self.axis == "h":
            return t.permute(0, 2, 1, 3).reshape(b, h, c * w)
        return t.permute(0, 3, 1, 2).reshape(b, w, c * h)

    def forward(self, x):
        b, c, h, w = x.shape
        attn = torch.sigmoid(self.qk(self._tokens(self.q(x)), self._tokens(self.k(x)).transpose(1, 2)))
        out = self.av(attn, self._tokens(self.v(x)))
        out = (out.view(b, h, c, w).permute(0, 2, 1, 3) if self.axis == "h"
               else out.view(b, w, c, h).permute(0, 2, 3, 1))
        return self.gamma * out + x


class AxialReverseAttention(nn.Module):
    """A-RA: the coarser map's reverse attention (1 - sigmoid) weighs axially attended features,
    three conv-BN-PReLU layers make a residual correction of that map."""

    def __init__(self, c):
        super().__init__()
        self.pre = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.Conv2d(c, c, 3, padding=1, bias=False))
        self.rows, self.cols = AxialAttention(c, "h"), AxialAttention(c, "w")
        self.refine = nn.Sequential(_conv_bnprelu(c, c), _conv_bnprelu(c, c), _conv_bnprelu(c, 1))

    def forward(self, feat, coarse):
        coarse = _up(coarse, feat)
        att = self.cols(self.rows(self.pre(feat)))
        return self.refine((1 - torch.sigmoid(coarse)) * att) + coarse


class CaraNet(nn.Module):
    """CaraNet (Lou, Guan & Loew, J Med Imaging 10:014005, 2023; arXiv 2108.07368).

    Backbone Res2Net-101 v1b 26w4s (ImageNet-pretrained in the original; from scratch here). Its
    three deepest features are reduced to ``channel`` (32) by conv-BN-PReLU; a cascaded partial
    decoder makes a global map at stride 8; then, from the deepest level up, each level's
    features pass a channel-wise feature pyramid (CFP, dilation 8) and an axial reverse attention
    module (axial self-attention weighted by the reverse of the coarser map) that corrects the map.
    Deep supervision: the final map and the three others (levels 3, 4 and the global map), upsampled,
    weighted equally; the original loss is weighted BCE + weighted IoU ("structure loss") on each.
    The authors' code applies one CFP module to two levels and leaves the third unused; here
    each level has its own, as the paper describes (the parameter count is the same).
    """

    def __init__(self, in_channels: int = 1, backbone: str = "res2net101", stem: int = 64, channel: int = 32,
                 deep_supervision: bool = True):
        super().__init__()
        self.config = {"in_channels": in_channels, "backbone": backbone, "stem": stem, "channel": channel,
                       "deep_supervision": deep_supervision}
        self.backbone = Res2Net(in_channels, backbone, stem)
        c2, c3, c4 = self.backbone.channels[2:]
        self.reduce = nn.ModuleList([_conv_bnprelu(ch, channel) for ch in (c2, c3, c4)])
        self.decoder = PartialDecoder(channel, lambda a, b: nn.Conv2d(a, b, 3, padding=1, bias=False))
        self.cfp = nn.ModuleList([ChannelFeaturePyramid(channel, 8) for _ in range(3)])
        self.ara = nn.ModuleList([AxialReverseAttention(channel) for _ in range(3)])
        self.supervision_weights = (1.0, 1.0, 1.0, 1.0) if deep_supervision else None

    def forward(self, x):
        x, hw = pad_to_multiple(x, 32)
        f2, f3, f4 = (r(f) for r, f in zip(self.reduce, self.backbone(x)[2:]))
        global_map = self.decoder(f4, f3, f2)
        maps, m, feats = [], global_map, (f2, f3, f4)
        for i in (2, 1, 0):            # deepest level first
            m = self.ara[i](self.cfp[i](feats[i]), m)
            maps.append(m)
        final = crop_to(_up(maps[-1], x), hw)
        if not (self.training and self.supervision_weights):
            return final
        return (final, *(crop_to(_up(m, x), hw) for m in (maps[1], maps[0], global_map)))


# ------------------------------------------------------------------------------------------
# HarDNet-MSEG
def _conv_bn(cin, cout, k=3, padding=0, dilation=1):
    """HarDNet-MSEG's "BasicConv2d": conv + BN, no activation."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=padding, dilation=dilation, bias=False), nn.BatchNorm2d(cout))


class ReceptiveFieldBlock(nn.Module):
    """RFB (modified, after Liu et al. ECCV 2018): a 1x1 branch and three 1xk/kx1 + dilated-3x3 branches
    (k = 3, 5, 7), concatenated, fused by a 3x3 conv and added to a 1x1 shortcut."""

    def __init__(self, cin, c):
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn(cin, c, 1)] + [
            nn.Sequential(_conv_bn(cin, c, 1), _conv_bn(c, c, (1, k), (0, k // 2)), _conv_bn(c, c, (k, 1), (k // 2, 0)),
                          _conv_bn(c, c, 3, k, k))
            for k in (3, 5, 7)])
        self.fuse = _conv_bn(4 * c, c, 3, 1)
        self.short = _conv_bn(cin, c, 1)

    def forward(self, x):
        return F.relu(self.fuse(torch.cat([b(x) for b in self.branches], 1)) + self.short(x))


class HarDNetMSEG(nn.Module):
    """HarDNet-MSEG (Huang, Wu & Lin, arXiv 2101.07172, 2021).

    Backbone HarDNet-68 (Chao et al., ICCV 2019; ImageNet-pretrained in the original, from scratch
    here). The features at strides 8, 16 and 32 pass receptive-field blocks to ``channel`` (32)
    channels; a cascaded partial decoder (Wu et al., CVPR 2019) makes the logits at stride 8, upsampled
    x8. No attention and no deep supervision; the original loss is weighted BCE + weighted IoU.
    The authors' file also builds reverse-attention layers that its forward never calls; they are
    left out here.
    """

    def __init__(self, in_channels: int = 1, channel: int = 32):
        super().__init__()
        self.config = {"in_channels": in_channels, "channel": channel}
        self.backbone = HarDNet(in_channels)
        self.rfb = nn.ModuleList([ReceptiveFieldBlock(c, channel) for c in self.backbone.channels[1:]])
        self.decoder = PartialDecoder(channel, lambda a, b: _conv_bn(a, b, 3, 1))

    def forward(self, x):
        x, hw = pad_to_multiple(x, 32)
        f2, f3, f4 = (r(f) for r, f in zip(self.rfb, self.backbone(x)[1:]))
        return crop_to(_up(self.decoder(f4, f3, f2), x), hw)


# ------------------------------------------------------------------------------------------
# MEGANet
class LaplacianEdges(nn.Module):
    """Laplacian-pyramid band-pass of an image (5x5 binomial blur, decimate, re-expand, subtract)."""

    def __init__(self):
        super().__init__()
        k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
        self.register_buffer("kernel", (torch.outer(k, k) / 256.0)[None, None], persistent=False)

    def _blur(self, x, gain=1.0):
        mode = "reflect" if min(x.shape[-2:]) > 2 else "replicate"
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode=mode), self.kernel.to(x.dtype) * gain)

    def band(self, x):
        """One pyramid level: ``x`` minus its blurred, decimated and re-expanded self; and the decimated image."""
        down = self._blur(x)[..., ::2, ::2]
        up = torch.zeros_like(x)
        up[..., ::2, ::2] = down
        return x - self._blur(up, 4.0), down

    def forward(self, x, level=1):
        for _ in range(level):
            x = self.band(x)[1]
        return self.band(x)[0]


class ChannelSpatialGate(nn.Module):
    """CBAM (Woo et al., ECCV 2018): channel gate (shared MLP on average- and max-pooled features),
    then spatial gate (7x7 conv on channel max and mean)."""

    def __init__(self, c, reduction=16):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(c, max(c // reduction, 1)), nn.ReLU(), nn.Linear(max(c // reduction, 1), c))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x):
        gate = self.mlp(x.mean((2, 3))) + self.mlp(x.amax((2, 3)))
        x = x * torch.sigmoid(gate)[:, :, None, None]
        s = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.spatial(s))


class EdgeGuidedAttention(nn.Module):
    """EGA: the features weighted by the reverse of the coarser prediction, by that prediction's
    Laplacian edges and by the input image's high-frequency band, fused, spatially gated,
    residual, then CBAM."""

    def __init__(self, c, edges: LaplacianEdges):
        super().__init__()
        self.edges = edges              # one module, shared by every EGA
        self.fuse = nn.Sequential(nn.Conv2d(3 * c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.gate = nn.Sequential(nn.Conv2d(c, 1, 3, padding=1), nn.BatchNorm2d(1), nn.Sigmoid())
        self.cbam = ChannelSpatialGate(c)

    def forward(self, image_edges, x, pred):
        p = torch.sigmoid(pred)
        pred_edges = self.edges.band(p)[0]
        fused = self.fuse(torch.cat([x * (1 - p), x * pred_edges, x * _up(image_edges, x)], 1))
        return self.cbam(fused * self.gate(fused) + x)


def _conv_bn_relu(cin, cout, k=3):
    return cbr(cin, cout, k, bias=True)


class _MegaUp(nn.Module):
    """Concatenate skip and decoder features, two conv-BN-ReLU (via a quarter width), upsample x2."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Sequential(_conv_bn_relu(cin, cin // 4), _conv_bn_relu(cin // 4, cout))

    def forward(self, deep, skip):
        y = self.conv(torch.cat([skip, deep], 1))
        return F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=True)


def _mega_out(c):
    return nn.Sequential(_conv_bn_relu(c, c // 4), nn.Conv2d(c // 4, 1, 1))


class MEGANet(nn.Module):
    """MEGANet (Bui, Hoang, Nguyen, Tran & Le, WACV 2024; arXiv 2309.03329), its Res2Net version.

    Backbone Res2Net-50 v1b (ImageNet-pretrained in the original; from scratch here); its four deepest
    features reduced by 3x3 conv-BN-ReLU to 512/256/128/64 channels. A U-shaped decoder: at each
    scale the coarser prediction guides an edge-guided attention module (EGA: reverse attention,
    the Laplacian edges of that prediction, the input's Laplacian band at half resolution, a
    fusion gate and CBAM) on the skip features before they are concatenated and upsampled.
    Deep supervision: five predictions (full resolution to stride 16), each against the reference
    resized to it, weighted equally; the original loss is BCE + Dice on each. A several-slice
    (2.5D) input takes its edges from the centre slice (the original: the grey-scale image).
    """

    def __init__(self, in_channels: int = 1, backbone: str = "res2net50", stem: int = 64,
                 deep_supervision: bool = True):
        super().__init__()
        self.config = {"in_channels": in_channels, "backbone": backbone, "stem": stem,
                       "deep_supervision": deep_supervision}
        s = stem
        self.backbone = Res2Net(in_channels, backbone, stem)
        _, c2, c3, c4, c5 = self.backbone.channels
        self.reduce = nn.ModuleList([_conv_bn_relu(c, w) for c, w in ((c2, s), (c3, 2 * s), (c4, 4 * s), (c5, 8 * s))])
        self.edges = LaplacianEdges()
        self.up5 = _conv_bn_relu(8 * s, 8 * s)
        self.ups = nn.ModuleList([_MegaUp(2 * s, s), _MegaUp(3 * s, s), _MegaUp(6 * s, 2 * s), _MegaUp(12 * s, 4 * s)])
        self.ega = nn.ModuleList([EdgeGuidedAttention(w, self.edges) for w in (s, s, 2 * s, 4 * s)])
        self.outs = nn.ModuleList([_mega_out(w) for w in (s, s, 2 * s, 4 * s, 8 * s)])
        self.supervision_weights = (1.0,) * 5 if deep_supervision else None

    def forward(self, x):
        x, hw = pad_to_multiple(x, 32)
        image_edges = self.edges(_centre_channel(x), level=1)
        e1, *deep = self.backbone(x)
        skips = [e1] + [r(f) for r, f in zip(self.reduce, deep)]          # strides 2, 4, 8, 16, 32
        d = F.interpolate(self.up5(skips[4]), scale_factor=2, mode="bilinear", align_corners=True)
        preds = [self.outs[4](d)]                                          # stride 16
        for i in (3, 2, 1, 0):
            guided = self.ega[i](image_edges, skips[i], preds[-1])
            d = self.ups[i](d, guided)
            preds.append(self.outs[i](d))
        final = crop_to(preds[-1], hw)
        if not (self.training and self.supervision_weights):
            return final
        return (final, *(crop_to(p, hw, 2 ** (k + 1)) for k, p in enumerate(preds[-2::-1])))


# ------------------------------------------------------------------------------------------
# DUCK-Net
def _conv_relu_bn(cin, cout, k, dilation=1):
    """Keras order as in DUCK-Net: conv (with bias, "same" padding) + ReLU, then BatchNorm."""
    kh, kw = (k, k) if isinstance(k, int) else k
    th, tw = dilation * (kh - 1), dilation * (kw - 1)
    if th % 2 == 0 and tw % 2 == 0:
        conv = [nn.Conv2d(cin, cout, (kh, kw), padding=(th // 2, tw // 2), dilation=dilation)]
    else:   # an even kernel: Keras puts the odd pixel of padding after
        conv = [nn.ZeroPad2d((tw // 2, tw - tw // 2, th // 2, th - th // 2)),
                nn.Conv2d(cin, cout, (kh, kw), dilation=dilation)]
    return nn.Sequential(*conv, nn.ReLU(inplace=True), nn.BatchNorm2d(cout))


class _DuckResidual(nn.Module):
    """DUCK-Net's residual block: two 3x3 conv-ReLU-BN plus a 1x1 conv-ReLU shortcut, summed, BN."""

    def __init__(self, cin, c):
        super().__init__()
        self.short = nn.Sequential(nn.Conv2d(cin, c, 1), nn.ReLU(inplace=True))
        self.body = nn.Sequential(_conv_relu_bn(cin, c, 3), _conv_relu_bn(c, c, 3))
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return self.bn(self.body(x) + self.short(x))


def _residuals(cin, c, n):
    return nn.Sequential(*[_DuckResidual(cin if i == 0 else c, c) for i in range(n)])


class DuckBlock(nn.Module):
    """DUCK block: six parallel branches (wide-scope 3x3 at dilation 1/2/3, mid-scope at 1/2,
    one/two/three residual blocks, and a 1x6 + 6x1 separated pair) summed, after and before BN."""

    def __init__(self, cin, c):
        super().__init__()
        self.bn_in, self.bn_out = nn.BatchNorm2d(cin), nn.BatchNorm2d(c)
        self.branches = nn.ModuleList([
            nn.Sequential(_conv_relu_bn(cin, c, 3), _conv_relu_bn(c, c, 3, 2), _conv_relu_bn(c, c, 3, 3)),
            nn.Sequential(_conv_relu_bn(cin, c, 3), _conv_relu_bn(c, c, 3, 2)),
            _residuals(cin, c, 1), _residuals(cin, c, 2), _residuals(cin, c, 3),
            nn.Sequential(_conv_relu_bn(cin, c, (1, 6)), _conv_relu_bn(c, c, (6, 1)))])

    def forward(self, x):
        x = self.bn_in(x)
        return self.bn_out(sum(b(x) for b in self.branches))


class DUCKNet(nn.Module):
    """DUCK-Net (Dumitru, Peteleaza & Craciun, Sci Rep 13:9803, 2023).

    Fully convolutional, no pretrained backbone (as in the original). Encoder: five levels, each
    a strided 2x2 conv of the previous level's DUCK-block output added to a "residual
    downsampling" path (strided 2x2 convs straight from the input), then a DUCK block;
    the bottleneck is four residual blocks; the decoder upsamples (nearest), adds the skip and
    applies a DUCK block per level. ``filters`` is the paper's starting width (17 or 34). No
    attention, no deep supervision; the original loss is Dice.
    """

    def __init__(self, in_channels: int = 1, filters: int = 17):
        super().__init__()
        self.config = {"in_channels": in_channels, "filters": filters}
        f = filters
        widths = [f * 2 ** i for i in range(6)]                       # f .. 32f
        self.direct = nn.ModuleList([nn.Conv2d(in_channels if i == 0 else widths[i], widths[i + 1], 2, 2)
                                     for i in range(5)])
        self.down = nn.ModuleList([nn.Conv2d(widths[i], widths[i + 1], 2, 2) for i in range(5)])
        self.enc = nn.ModuleList([DuckBlock(in_channels, f)] + [DuckBlock(widths[i], widths[i]) for i in range(1, 5)])
        self.bottleneck = nn.Sequential(_residuals(widths[5], widths[5], 2), _residuals(widths[5], widths[4], 2))
        # decoder level i: input 2^i f channels (upsampled + skip), output the next level's width
        self.dec = nn.ModuleList([DuckBlock(f, f)] + [DuckBlock(widths[i], widths[i - 1]) for i in range(1, 5)])
        self.head = nn.Conv2d(f, 1, 1)

    def forward(self, x):
        x, hw = pad_to_multiple(x, 32)
        direct, p = [], x
        for conv in self.direct:
            p = conv(p)
            direct.append(p)
        skips = [self.enc[0](x)]
        for i in range(4):
            skips.append(self.enc[i + 1](self.down[i](skips[-1]) + direct[i]))
        y = self.bottleneck(self.down[4](skips[-1]) + direct[4])
        for i in (4, 3, 2, 1, 0):
            y = self.dec[i](F.interpolate(y, scale_factor=2, mode="nearest") + skips[i])
        return crop_to(self.head(y), hw)


# ------------------------------------------------------------------------------------------
# DS-TransUNet
def _gn(c):
    return nn.GroupNorm(math.gcd(32, c), c)


def _conv_gn_relu(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), _gn(cout), nn.ReLU(inplace=True))


class _UpConv(nn.Module):
    """Nearest x2 upsampling, 3x3 conv, GroupNorm, ReLU."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = _conv_gn_relu(cin, cout)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class _TokenAttention(nn.Module):
    """Global multi-head self-attention over a token sequence (B, N, C)."""

    def __init__(self, dim, heads, head_dim):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.scale = heads, head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.out = nn.Identity() if (heads == 1 and head_dim == dim) else nn.Linear(inner, dim)
        self.qk, self.av = MatMul(), MatMul()

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn = self.qk(q * self.scale, k.transpose(-2, -1)).softmax(-1)
        return self.out(self.av(attn, v).transpose(1, 2).reshape(b, n, -1))


class _TokenTransformer(nn.Module):
    """One pre-norm transformer layer: attention, then a GELU MLP, both residual."""

    def __init__(self, dim, heads, head_dim, mlp):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = _TokenAttention(dim, heads, head_dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x):
        x = x + self.attn(self.n1(x))
        return x + self.mlp(self.n2(x))


class TransformerInteractiveFusion(nn.Module):
    """TIF: each branch's pooled summary, projected, joins the other branch's tokens as an extra
    token for one transformer layer (global attention), so the two scales exchange context."""

    def __init__(self, dim_fine, dim_coarse):
        super().__init__()
        self.norm_fine, self.norm_coarse = nn.LayerNorm(dim_fine), nn.LayerNorm(dim_coarse)
        self.fine_to_coarse, self.coarse_to_fine = nn.Linear(dim_fine, dim_coarse), nn.Linear(dim_coarse, dim_fine)
        self.tf_coarse = _TokenTransformer(dim_coarse, 3, 32, 128)
        self.tf_fine = _TokenTransformer(dim_fine, 1, 64, 256)

    def forward(self, fine, coarse):
        """Feature maps of the 4x4-patch (``fine``) and 8x8-patch (``coarse``) encoders at one stage."""
        e = fine.flatten(2).transpose(1, 2)
        r = coarse.flatten(2).transpose(1, 2)
        to_coarse = self.fine_to_coarse(self.norm_fine(e).mean(1))[:, None]
        to_fine = self.coarse_to_fine(self.norm_coarse(r).mean(1))[:, None]
        r = self.tf_coarse(torch.cat([to_coarse, r], 1))[:, 1:]
        e = self.tf_fine(torch.cat([to_fine, e], 1))[:, 1:]
        return e.transpose(1, 2).reshape(fine.shape), r.transpose(1, 2).reshape(coarse.shape)


class _SwinUpBlock(nn.Module):
    """DS-TransUNet's Swin decoder stage: up-conv to half width, two Swin blocks, 1x1 to a quarter;
    the skip reduced to a quarter by 1x1; concatenated and fused by a 3x3 conv."""

    def __init__(self, cin, depth, heads, window):
        super().__init__()
        self.up = _UpConv(cin, cin // 2)
        self.swin = SwinStage(cin // 2, depth, heads, window, linear_rates(0.2, depth))
        self.after = nn.Sequential(nn.Conv2d(cin // 2, cin // 4, 1), nn.ReLU())
        self.skip = nn.Sequential(nn.Conv2d(cin // 2, cin // 4, 1), nn.ReLU())
        self.fuse = nn.Sequential(nn.Conv2d(cin // 2, cin // 2, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x, skip):
        y = self.swin(self.up(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.fuse(torch.cat([self.skip(skip), self.after(y)], 1))


class _ConvUpBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = _UpConv(cin, cout)
        self.fuse = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x, skip):
        return self.fuse(torch.cat([skip, self.up(x)], 1))


class DSTransUNet(nn.Module):
    """DS-TransUNet (Lin, Chen, Xu, Zhang, Lu & Zhang, IEEE TIM 71:1-15, 2022; arXiv 2106.06716), its -B model.

    Two Swin Transformer encoders on the same slice (Swin-B with 4x4 patches and Swin-T with 8x8
    patches; ImageNet-pretrained in the original, from scratch here). At each of the four
    scales a Transformer Interactive Fusion (TIF) module lets the two exchange a pooled summary
    token through one global-attention layer; the coarse branch is upsampled, concatenated and
    fused by two conv-GroupNorm-ReLU layers. Decoder: three Swin decoder stages (up-conv + two
    Swin blocks, heads 8/4/2) and two convolutional ones on a shallow conv path, 1x1 head.
    Deep supervision: the prediction and two auxiliary maps (from the deepest fused features and
    the third decoder stage, upsampled), weighted 0.6 / 0.2 / 0.2; the original loss is weighted
    BCE + weighted IoU on each. The authors' auxiliary heads pass a ReLU before the loss, which
    leaves their logits unable to say "background"; here they are plain 1x1 convs.
    """

    def __init__(self, in_channels: int = 1, primary: str = "swin-b", secondary: str = "swin-t", window: int = 7,
                 deep_supervision: bool = True):
        super().__init__()
        self.config = {"in_channels": in_channels, "primary": primary, "secondary": secondary, "window": window,
                       "deep_supervision": deep_supervision}
        for v in (primary, secondary):
            if v not in SWIN:
                raise ValueError(f"DS-TransUNet encoders must be {', '.join(SWIN)}, not {v!r}")
        self.fine = SwinEncoder(in_channels, primary, 4, window, drop_path=0.5)
        self.coarse = SwinEncoder(in_channels, secondary, 8, window, drop_path=0.2)
        dl, ds = SWIN[primary][0], SWIN[secondary][0]
        dim = dl
        self.tif = nn.ModuleList([TransformerInteractiveFusion(dl * 2 ** i, ds * 2 ** i) for i in range(4)])
        self.merge = nn.ModuleList([nn.Sequential(_conv_gn_relu((dl + ds) * 2 ** i, dim * 2 ** i),
                                                  _conv_gn_relu(dim * 2 ** i, dim * 2 ** i)) for i in range(4)])
        self.dec = nn.ModuleList([_SwinUpBlock(dim * 2 ** i, 2, 2 ** i, window) for i in (3, 2, 1)])
        self.shallow1 = nn.Conv2d(in_channels, dim // 4, 1)
        self.shallow2 = nn.Sequential(nn.MaxPool2d(2), _conv_gn_relu(dim // 4, dim // 2),
                                      _conv_gn_relu(dim // 2, dim // 2))
        self.dec4, self.dec5 = _ConvUpBlock(dim, dim // 2), _ConvUpBlock(dim // 2, dim // 4)
        self.head = nn.Conv2d(dim // 4, 1, 1)
        self.aux_deep, self.aux_dec = nn.Conv2d(dim * 8, 1, 1), nn.Conv2d(dim, 1, 1)
        self.supervision_weights = (0.6, 0.2, 0.2) if deep_supervision else None

    def forward(self, x):
        x, hw = pad_to_multiple(x, 64)
        merged = []
        for i, (e, r) in enumerate(zip(self.fine(x), self.coarse(x))):
            e, r = self.tif[i](e, r)
            merged.append(self.merge[i](torch.cat([e, F.interpolate(r, scale_factor=2, mode="nearest")], 1)))
        d = merged[3]
        for block, skip in zip(self.dec, (merged[2], merged[1], merged[0])):
            d = block(d, skip)
        s1 = self.shallow1(x)
        y = self.dec5(self.dec4(d, self.shallow2(s1)), s1)
        final = crop_to(self.head(y), hw)
        if not (self.training and self.supervision_weights):
            return final
        return (final, crop_to(_up(self.aux_deep(merged[3]), x, "nearest"), hw),
                crop_to(_up(self.aux_dec(d), x, "nearest"), hw))
