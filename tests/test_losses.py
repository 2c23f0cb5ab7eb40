from __future__ import annotations

import pytest
import torch

from napari_ian.trainer.losses import bce_loss, dice_loss, focal_tversky_loss, get_loss


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


def test_alternatives_and_names():
    x, t = torch.randn(2, 1, 8, 8, requires_grad=True), (torch.rand(2, 1, 8, 8) > 0.8).float()
    for fn in (dice_loss, bce_loss, get_loss("focal_tversky", gamma=2.0)):
        loss = fn(x, t)
        loss.backward()
        assert loss.item() > 0
    with pytest.raises(ValueError):
        get_loss("hinge")
