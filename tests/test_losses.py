from __future__ import annotations

import pytest
import torch

from napari_ian.trainer.losses import (IGNORE, LOSSES, bce_loss, dice_ce_loss, dice_loss, focal_tversky_loss, get_loss,
                                      skeleton_recall_loss)


def _tiny_target(n=4):
    """A batch where a nerve of 2 pixels sits in half the images (as in training crops)."""
    t = torch.zeros(n, 1, 16, 16)
    t[::2, 0, 7, 7:9] = 1
    return t


def test_focal_tversky_form_and_weights():
    t = torch.zeros(1, 1, 4, 4)
    t[0, 0, 1, 1:3] = 1
    perfect = torch.where(t > 0, torch.tensor(20.0), torch.tensor(-20.0))
    assert focal_tversky_loss(perfect, t) < 1e-6
    # missing the nerve (FN) costs more than the same amount of false alarm (FP): alpha 0.7 > beta 0.3
    miss = torch.full_like(t, -20.0)
    fp = perfect.clone()
    fp[0, 0, 3, 0:2] = 20.0
    assert focal_tversky_loss(miss, t) > focal_tversky_loss(fp, t)
    # gamma = 2 squares (1 - TI)
    l1 = focal_tversky_loss(fp, t, gamma=1.0).item()
    assert focal_tversky_loss(fp, t, gamma=2.0).item() == pytest.approx(l1 ** 2, rel=1e-5)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_ranks_right_above_empty_above_wrong_and_pulls_toward_the_nerve(name):
    fn = get_loss(name)
    t = _tiny_target()
    right = torch.where(t > 0, torch.tensor(8.0), torch.tensor(-8.0))
    empty = torch.full_like(t, -8.0)
    wrong = torch.where(t > 0, torch.tensor(-8.0), torch.tensor(8.0))
    assert fn(right, t) < fn(empty, t) < fn(wrong, t)
    # from an undecided start, one gradient step raises the nerve's logits and lowers the rest
    x = torch.zeros_like(t, requires_grad=True)
    fn(x, t).backward()
    assert (x.grad[t > 0] < 0).all() and (x.grad[t == 0] >= 0).all()


def test_dice_ce_counts_the_batch_not_each_image():
    t = _tiny_target()
    right = torch.where(t > 0, torch.tensor(8.0), torch.tensor(-8.0))
    # an empty image predicted empty is no better or worse on its own: the batch count decides
    assert dice_ce_loss(right, t) < 0.05
    assert dice_loss(right, t) < 0.05 and bce_loss(right, t) < 0.05


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("hinge")


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_ignored_voxels_count_for_nothing(name):
    """Fine-tuning a 3D network marks the slices nobody corrected IGNORE: whatever the network says
    there must neither change the loss nor receive a gradient."""
    fn = get_loss(name)
    t = _tiny_target()
    t[:, :, 12:] = IGNORE                         # the last rows of every image were not corrected
    x = torch.where(t == 1, torch.tensor(2.0), torch.tensor(-1.0))
    x_other = x.clone()
    x_other[t == IGNORE] = torch.randn(int((t == IGNORE).sum())) * 10
    assert fn(x, t).item() == pytest.approx(fn(x_other, t).item(), rel=1e-6)
    x.requires_grad_(True)
    fn(x, t).backward()
    assert (x.grad[t == IGNORE] == 0).all() and (x.grad[t != IGNORE] != 0).any()
    if name == "bce":   # its mean runs over the counted voxels only: the same as cropping them out
        assert fn(x.detach(), t).item() == pytest.approx(fn(x.detach()[:, :, :12], t[:, :, :12]).item(), rel=1e-5)


def test_skeleton_recall_weighs_each_stretch_of_nerve_by_its_length_not_its_voxels():
    """A nerve thick along half its length and one voxel thin along the other half, predicted
    along its thick half only: nine tenths of its voxels are found, so Dice hardly minds, but half
    its length is missed, and the skeleton recall loss says so; the whole nerve found costs
    nothing, and so does a batch without nerve."""
    t = torch.zeros(1, 1, 40, 15, 15)
    t[0, 0, 2:20, 4:11, 4:11] = 1                 # thick ...
    t[0, 0, 20:38, 7, 7] = 1                      # ... then thin
    thick_only = torch.where((t > 0) & (torch.arange(40).view(1, 1, 40, 1, 1) < 20), 20.0, -20.0)
    found = (torch.sigmoid(thick_only) * t).sum() / t.sum()
    assert found > 0.9 and dice_loss(thick_only, t) < 0.06
    assert skeleton_recall_loss(thick_only, t).item() == pytest.approx(0.5, abs=0.1)
    assert skeleton_recall_loss(torch.where(t > 0, 20.0, -20.0), t).item() < 0.05
    assert skeleton_recall_loss(torch.randn(1, 1, 40, 15, 15), torch.zeros(1, 1, 40, 15, 15)).item() == 0.0
    # the pull is on the missed stretch's centre
    x = thick_only.clone().requires_grad_(True)
    skeleton_recall_loss(x, t).backward()
    assert (x.grad[0, 0, 22:36, 7, 7] < 0).all() and (x.grad[0, 0, :, :, :6] == 0).all()


def test_the_command_lines_loss_names_are_the_losses():
    from napari_ian.trainer.cli import LOSS_CHOICES

    assert sorted(LOSS_CHOICES) == sorted(LOSSES)


def test_the_skeleton_terms_weight_scales_only_that_term():
    """``loss_params={"skeleton_weight": w}`` (``ian train --skeleton-weight``) gives Dice + BCE plus
    w times the skeleton recall, through the same lookup training uses."""
    torch.manual_seed(0)
    logits, target = torch.randn(2, 1, 12, 9, 9), torch.zeros(2, 1, 12, 9, 9)
    target[:, :, 2:10, 3:6, 3:6] = 1
    base, skel = get_loss("dice_ce")(logits, target), skeleton_recall_loss(logits, target)
    for w in (0.3, 1.0):
        got = get_loss("dice_ce_skeleton", skeleton_weight=w)(logits, target)
        assert torch.isclose(got, base + w * skel, atol=1e-6)
    assert skel.item() > 0.1            # the term is not negligible, so the weight shows
