"""Networks by name: one interface, a bf16 training step each, sizes against the published figures."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from napari_ian.trainer.nets import (NETWORK_INFO, NETWORKS, PAPER_NETWORKS, THREE_D, build_network, count_macs,
                                     count_parameters, supervised_loss)
from napari_ian.trainer.nets_blocks import MatMul

TWO_D = sorted(set(NETWORKS) - THREE_D)
# small settings of every 2D network, so that a forward and a training step take a second
SMALL = {"iannet": {"stem": 16}, "unet": {"base": 8, "depth": 3}, "deeplabv3plus": {"base": 16, "aspp": 32},
         "caranet": {"backbone": "res2net50", "stem": 16, "channel": 16},
         "ds-transunet": {"primary": "swin-mini", "secondary": "swin-mini"},
         "duck-net": {"filters": 4}, "hardnet-mseg": {"channel": 16}, "meganet": {"stem": 16}}


def _small(name, **kw):
    torch.manual_seed(0)
    return build_network(name, **{**SMALL[name], **kw})


def test_every_network_is_described_and_none_is_a_placeholder():
    assert set(NETWORK_INFO) == set(NETWORKS)
    assert set(TWO_D) == set(SMALL)
    assert PAPER_NETWORKS[0] == "iannet" and len(PAPER_NETWORKS) == 7 and set(PAPER_NETWORKS) <= set(NETWORKS)
    with pytest.raises(ValueError, match="unknown network 'resnet9000'; available: iannet"):
        build_network("resnet9000")


@pytest.mark.parametrize("name", TWO_D)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_one_interface_slices_in_logits_out(name, in_channels):
    net = _small(name, in_channels=in_channels).eval()
    with torch.no_grad():
        y = net(torch.randn(2, in_channels, 32, 48))   # 48: not a multiple of 32, nor of 64
    assert torch.is_tensor(y) and y.shape == (2, 1, 32, 48)
    assert torch.isfinite(y).all()


class _Slices:
    """Four 32 x 32 training slices with a square nerve (an ``ArraySampler`` set)."""

    def __init__(self, rng):
        self.x = rng.normal(size=(4, 1, 32, 32)).astype(np.float16)
        self.y = np.zeros((4, 32, 32), np.uint8)
        self.y[:, 12:18, 14:20] = 1
        self.positive = np.ones(4, bool)


@pytest.mark.parametrize("name", TWO_D)
def test_a_bf16_training_step_on_the_cpu_moves_every_output_head(name):
    """The real training loop (fit), bf16 autocast on the CPU: loss finite, the weights of every
    head that feeds the loss (the auxiliary ones of deep supervision too) updated."""
    from napari_ian.trainer.train import ArraySampler, TrainConfig, fit

    net = _small(name)
    cfg = TrainConfig(network=name, network_config=SMALL[name], context=1, epochs=1, batch_size=4, device="cpu",
                      bf16=True, augment=False)
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    model, history, best = fit(net, ArraySampler([_Slices(np.random.default_rng(0))], 4, 0.0), None, cfg)
    assert best["bf16"] and history[0]["batches"] == 1 and np.isfinite(history[0]["loss"])
    after = model.state_dict()
    weights = getattr(model, "supervision_weights", None)
    heads = [k for k in after if k.endswith("weight") and after[k].ndim == 4 and after[k].shape[0] == 1]
    assert len(heads) >= (len(weights) if weights else 1)
    for k in heads:
        assert not torch.equal(before[k], after[k]), f"{name}: {k} was not trained"


def test_validation_runs_every_nth_epoch_and_after_the_last():
    """``validate_every``: the other epochs report NaN and never become the best."""
    from napari_ian.trainer.train import ArraySampler, TrainConfig, fit

    calls = []

    def validate(model, device, bf16, channels_last):
        calls.append(len(calls))
        return 0.1 * len(calls)

    cfg = TrainConfig(network="unet", network_config=SMALL["unet"], context=1, epochs=5, batch_size=4, device="cpu",
                      bf16=False, augment=False, validate_every=3)
    _, history, best = fit(_small("unet"), ArraySampler([_Slices(np.random.default_rng(0))], 4, 0.0), validate, cfg)
    vals = [h["val_dsc"] for h in history]
    assert len(calls) == 2 and np.isnan(vals[0]) and np.isnan(vals[1]) and np.isnan(vals[3])
    assert vals[2] == pytest.approx(0.1) and vals[4] == pytest.approx(0.2) and best["epoch"] == 5
    # early stopping is decided on scored epochs only, so training never ends on an unscored one
    calls.clear()

    def worse(model, device, bf16, channels_last):
        calls.append(len(calls))
        return 0.5 - 0.1 * len(calls)

    cfg = dataclasses.replace(cfg, epochs=9, patience=1)
    _, history, best = fit(_small("unet"), ArraySampler([_Slices(np.random.default_rng(0))], 4, 0.0), worse, cfg)
    assert len(history) == 6 and best["epoch"] == 3 and np.isfinite(history[-1]["val_dsc"])


@pytest.mark.parametrize("name", ["caranet", "ds-transunet", "meganet"])
def test_deep_supervision_outputs_only_while_training(name):
    net = _small(name)
    x = torch.randn(2, 1, 32, 64)
    outs = net.train()(x)
    assert isinstance(outs, tuple) and len(outs) == len(net.supervision_weights)
    assert outs[0].shape == (2, 1, 32, 64)
    assert torch.is_tensor(net.eval()(x))
    plain = _small(name, deep_supervision=False)
    assert plain.supervision_weights is None and torch.is_tensor(plain.train()(x))


def test_supervised_loss_weighs_outputs_and_resizes_the_reference_for_coarse_ones():
    from napari_ian.trainer.losses import get_loss

    loss = get_loss("dice")
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:6, 2:6] = 1
    logits = torch.randn(1, 1, 8, 8)
    single = loss(logits, target)
    assert supervised_loss(loss, logits, target) == pytest.approx(single.item())
    assert supervised_loss(loss, (logits, logits), target, (0.6, 0.2)).item() == pytest.approx(0.8 * single.item())
    coarse = torch.full((1, 1, 4, 4), -20.0)
    coarse[..., 1:3, 1:3] = 20.0                       # the reference's square at half resolution
    assert supervised_loss(loss, (logits, coarse), target, (0.0, 1.0)).item() < 0.01
    with pytest.raises(ValueError, match="2 deep-supervision outputs but 3 weights"):
        supervised_loss(loss, (logits, logits), target, (1, 1, 1))


def _meta_count(name, **config):
    with torch.device("meta"):
        return count_parameters(build_network(name, **config))


def test_backbones_have_their_published_sizes():
    """Each comparator's encoder, with the ImageNet classifier its paper counts, against the
    figure published for it: a check that the encoders are built as published."""
    from napari_ian.trainer.backbones import HarDNet, Res2Net, ResNet, SwinEncoder

    def with_head(enc, width):
        return count_parameters(enc) + width * 1000 + 1000

    with torch.device("meta"):
        assert with_head(Res2Net(3, "res2net50"), 2048) == pytest.approx(25.7e6, rel=0.005)
        assert with_head(Res2Net(3, "res2net101"), 2048) == pytest.approx(45.2e6, rel=0.005)
        assert with_head(ResNet(3), 2048) == pytest.approx(44.5e6, rel=0.005)
        assert with_head(HarDNet(3), 1024) == pytest.approx(17.6e6, rel=0.005)
        for variant, published in (("swin-t", 28.3e6), ("swin-b", 87.8e6)):
            enc = SwinEncoder(3, variant)
            # the classifier keeps one final norm where the encoder norms each stage's output
            extra_norms = sum(2 * c for c in enc.channels[:3])
            assert with_head(enc, enc.channels[-1]) - extra_norms == pytest.approx(published, rel=0.005)


def test_comparators_at_their_published_settings():
    counts = {n: _meta_count(n) for n in PAPER_NETWORKS}
    assert counts["iannet"] == 15_084_801
    # the networks as built here, at their papers' settings (single-channel input)
    assert counts == {"iannet": 15_084_801, "caranet": 44_592_984, "ds-transunet": 171_424_881,
                      "duck-net": 38_865_556, "deeplabv3plus": 16_619_201, "hardnet-mseg": 17_423_261,
                      "meganet": 44_191_605}
    assert _meta_count("duck-net", filters=34) == 155_299_287
    assert _meta_count("deeplabv3plus", backbone="resnet101", pool_bn=True) == 59_332_897


def test_iannet_matches_the_paper_size():
    plain = build_network("iannet")
    attn = build_network("iannet", split_attention=True)
    # the authors' file: about 15.3 M parameters (its unused attention layers included), ~41.5 GMAC
    assert count_parameters(plain) == pytest.approx(15.08e6, rel=0.01)
    assert count_parameters(attn) == pytest.approx(15.3e6, rel=0.01)
    assert count_macs(plain, (1, 1, 256, 256)) == pytest.approx(41.5e9, rel=0.01)
    # the four encoder stages end in 128/256/512/512 channels
    assert [b.expand[0].out_channels for b in plain.enc] == [128, 256, 512, 512]


def test_iannet_public_initialisation_is_the_authors_encoder_start():
    torch.manual_seed(0)
    default = build_network("iannet")
    public = build_network("iannet", init="public")
    conv = public.enc[0].reduce[0]                    # encoder 1's 1x1 conv, 32 outputs
    assert conv.weight.std().item() == pytest.approx((2 / 32) ** 0.5, rel=0.05)
    assert default.enc[0].reduce[0].weight.std().item() < 0.1
    assert public.enc[2].mspa.branches[3][0].weight.std().item() == pytest.approx((2 / (49 * 128)) ** 0.5, rel=0.05)
    # the stem and the decoder keep PyTorch's defaults; the architecture is the same
    assert public.stem[0][0].weight.std().item() == pytest.approx(default.stem[0][0].weight.std().item(), rel=0.2)
    assert public.config["init"] == "public" and count_parameters(public) == count_parameters(default)
    with pytest.raises(ValueError, match="init must be one of pytorch, public"):
        build_network("iannet", init="xavier")


def test_split_attention_changes_the_output():
    torch.manual_seed(0)
    a = build_network("iannet", split_attention=True).eval()
    x = torch.randn(1, 1, 32, 32)
    y1 = a(x)
    for blk in a.enc:
        torch.nn.init.normal_(blk.mspa.fc2.weight, std=1.0)
    assert not torch.allclose(y1, a(x))


def test_macs_count_attention_products_and_linear_layers():
    class Attn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.mm = torch.nn.Linear(4, 5), MatMul()

        def forward(self, x):                     # x: (B, 2, 3, 4)
            return self.mm(x, self.lin(x).transpose(-2, -1)[..., :4, :])

    assert count_macs(Attn(), (1, 2, 3, 4)) == 2 * 3 * 4 * 5 + 2 * 3 * 4 * 3
    small = _small("ds-transunet")
    convs_only = sum(m.weight.numel() for m in small.modules() if isinstance(m, torch.nn.Conv2d))
    assert count_macs(small, (1, 1, 64, 64)) > convs_only


@pytest.mark.parametrize("name, config, message", [
    ("caranet", {"backbone": "resnet50"}, "backbone must be one of res2net50, res2net101"),
    ("caranet", {"channel": 24}, "channel must be a multiple of 16"),
    ("ds-transunet", {"primary": "swin-l"}, "encoders must be swin-t, swin-s, swin-b, swin-mini"),
    ("deeplabv3plus", {"backbone": "xception"}, "backbone must be one of resnet18s, resnet101"),
])
def test_unknown_settings_say_what_is_possible(name, config, message):
    with pytest.raises(ValueError, match=message):
        build_network(name, **config)


@pytest.mark.parametrize("name", ["caranet", "ds-transunet", "duck-net", "hardnet-mseg", "meganet"])
def test_a_comparator_model_file_loads_back_to_the_same_network(tmp_path, name):
    from napari_ian.trainer.modelfile import load_model, save_model

    net = _small(name).eval()
    meta = {"network": name, "network_config": dict(net.config), "preprocessing": {"size": [32, 32], "context": 1}}
    path = save_model(tmp_path / f"{name}.pt", net, meta)
    loaded, back = load_model(path)
    assert back["network_config"] == net.config
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


@pytest.mark.slow
def test_ian_networks_lists_every_network_with_its_size_cost_and_paper(capsys):
    from napari_ian.trainer.cli import main

    assert main(["networks"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name in NETWORKS:
        row = next(ln for ln in lines if ln.startswith(name + " "))
        params, gmac = row.split()[1:3]
        with torch.device("meta"):
            assert int(params.replace(",", "")) == count_parameters(build_network(name))
        assert float(gmac) > 0 and NETWORK_INFO[name].paper in row
    assert "15,084,801" in out and "41.4" in out and "15,314,945 in the authors' IANNet.py" in out
    assert "59,332,897" in out          # DeepLabV3+ as in the paper's comparison (ResNet-101)
    assert "planned" not in out.lower() and "nan" not in out.lower()


@pytest.mark.parametrize("name", sorted(THREE_D))
def test_3d_networks_take_patches_in_and_give_logits_of_the_same_size(name):
    net = build_network(name, in_channels=1)
    y = net(torch.randn(2, 1, 16, 32, 48))
    assert y.shape == (2, 1, 16, 32, 48)


def _norm_pair():
    """The network's instance norm and PyTorch's with the same affine parameters, and an input
    whose channels differ in spread."""
    from napari_ian.trainer.nets import InstanceNorm3dCL

    torch.manual_seed(0)
    ours, ref = InstanceNorm3dCL(6, affine=True), torch.nn.InstanceNorm3d(6, affine=True)
    with torch.no_grad():
        for m in (ours, ref):
            m.weight.copy_(torch.linspace(0.5, 2.0, 6))
            m.bias.copy_(torch.linspace(-1.0, 1.0, 6))
    return ours, ref, torch.randn(2, 6, 8, 12, 10) * torch.arange(1, 7).view(1, 6, 1, 1, 1) + 3.0


def test_channels_last_instance_norm_gives_torchs_output_and_keeps_the_layout():
    ours, ref, x = _norm_pair()
    xcl = x.contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        want = ref(x)
        fast = ours(xcl)                 # the channels-last path
        plain = ours(x)                  # contiguous input: PyTorch's kernel
    assert fast.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(fast, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain, want)
    # a mean far larger than the spread: the statistics must not cancel (a plain difference of
    # squares in float32 is off by several per cent here)
    far = (x + 1000.0).contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        torch.testing.assert_close(ours(far), ref(x + 1000.0), atol=1e-3, rtol=1e-3)
    # bf16 (inference under autocast on CPUs with native bf16): bf16 out, as PyTorch's kernel gives
    xb = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fast_b, want_b = ours(xb), ref(xb)
    assert fast_b.dtype == want_b.dtype == torch.bfloat16
    torch.testing.assert_close(fast_b.float(), want_b.float(), atol=0.05, rtol=0.02)


def test_channels_last_instance_norm_gives_torchs_gradients_and_keeps_the_layout():
    """float32 training on a CPU runs the channels-last path too: its hand-written backward pass
    gives PyTorch's gradients (the input's, the weight's, the bias's), also with a mean far larger
    than the spread, and the input's gradient stays channels-last."""
    ours, ref, x = _norm_pair()
    dy = torch.randn_like(x)
    for offset, tol in ((0.0, 1e-4), (1000.0, 2e-3)):
        for m in (ours, ref):
            m.zero_grad()
        a = (x + offset).requires_grad_()
        (ref(a) * dy).sum().backward()
        b = (x + offset).contiguous(memory_format=torch.channels_last_3d).requires_grad_()
        out = ours(b)
        (out * dy).sum().backward()
        assert out.grad_fn is not None and "InstanceNormCL" in type(out.grad_fn).__name__   # not PyTorch's kernel
        assert b.grad.is_contiguous(memory_format=torch.channels_last_3d)
        torch.testing.assert_close(b.grad, a.grad, atol=tol, rtol=tol)
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad, atol=tol * 10, rtol=tol)
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad, atol=tol * 10, rtol=tol)
    # bf16 training (under autocast) keeps PyTorch's kernel, which was faster there (BENCHMARKS.md)
    b = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert "InstanceNormCL" not in type(ours(b).grad_fn).__name__


def test_the_3d_unet_infers_alike_in_both_memory_layouts():
    torch.manual_seed(0)
    net = build_network("unet3d", in_channels=1).eval()
    x = torch.randn(1, 1, 16, 32, 32)
    with torch.no_grad():
        want = net(x)
        got = net.to(memory_format=torch.channels_last_3d)(x.contiguous(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
