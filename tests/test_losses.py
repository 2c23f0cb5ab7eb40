from __future__ import annotations

import pytest
import torch

from napari_ian.trainer.losses import IGNORE, bce_loss, dice_ce_loss, dice_loss, focal_tversky_loss, get_loss


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


@pytest.mark.parametrize("name", ["focal_tversky", "dice", "bce", "dice_ce"])
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


@pytest.mark.parametrize("name", ["focal_tversky", "dice", "bce", "dice_ce"])
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
