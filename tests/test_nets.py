"""Networks by name: shapes, parameter counts and MACs against the paper's figures."""
from __future__ import annotations

import pytest
import torch

from napari_ian.trainer.nets import NETWORKS, PLANNED, THREE_D, build_network, count_macs, count_parameters


@pytest.mark.parametrize("name", sorted(set(NETWORKS) - THREE_D))
@pytest.mark.parametrize("in_channels", [1, 3])
def test_one_interface_slices_in_logits_out(name, in_channels):
    net = build_network(name, in_channels=in_channels, **({"base": 8} if name == "unet" else {}))
    y = net(torch.randn(2, in_channels, 32, 48))
    assert y.shape == (2, 1, 32, 48)


@pytest.mark.parametrize("name", sorted(THREE_D))
def test_3d_networks_take_patches_in_and_give_logits_of_the_same_size(name):
    net = build_network(name, in_channels=1)
    y = net(torch.randn(2, 1, 16, 32, 48))
    assert y.shape == (2, 1, 16, 32, 48)


def test_iannet_matches_the_paper_size():
    plain = build_network("iannet")
    attn = build_network("iannet", split_attention=True)
    # the authors' file: about 15.3 M parameters (its unused attention layers included), ~41.5 GMAC
    assert count_parameters(plain) == pytest.approx(15.08e6, rel=0.01)
    assert count_parameters(attn) == pytest.approx(15.3e6, rel=0.01)
    assert count_macs(plain, (1, 1, 256, 256)) == pytest.approx(41.5e9, rel=0.01)
    # the four encoder stages end in 128/256/512/512 channels
    assert [b.expand[0].out_channels for b in plain.enc] == [128, 256, 512, 512]


def test_split_attention_changes_the_output():
    torch.manual_seed(0)
    a = build_network("iannet", split_attention=True).eval()
    x = torch.randn(1, 1, 32, 32)
    y1 = a(x)
    for blk in a.enc:
        torch.nn.init.normal_(blk.mspa.fc2.weight, std=1.0)
    assert not torch.allclose(y1, a(x))


def test_comparators_and_planned_names():
    assert count_parameters(build_network("unet")) == pytest.approx(7.76e6, rel=0.01)
    assert count_parameters(build_network("deeplabv3plus")) > 10e6
    with pytest.raises(ValueError, match="not implemented yet"):
        build_network(next(iter(PLANNED)))
    with pytest.raises(ValueError, match="unknown network"):
        build_network("resnet9000")
