"""A tiny untrained 3D network for tests about what surrounds the model (splits, metadata,
saving, cancelling, panels): those do not depend on the network's skill, and this one predicts a
whole phantom in a fraction of a second where the bundled model takes seconds."""
from __future__ import annotations


def tiny3d():
    """``(model, metadata)``: a 3D patch U-Net (base 4, depth 2) on a coarse 2 x 1.5 x 1.5 mm grid
    that says "no nerve" everywhere (random weights would make the post-processing slow)."""
    import torch

    from napari_ian.trainer.pipeline import Patches3D
    from napari_ian.trainer.train import TrainConfig, build_model

    pipe = Patches3D(patch=(16, 32, 32), spacing_mm=(2.0, 1.5, 1.5))
    cfg = TrainConfig(network="unet3d", network_config={"base": 4, "depth": 2}, pipeline=pipe.to_dict())
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        model.head.bias.fill_(-4.0)
    meta = {"network": "unet3d", "network_config": {"base": 4, "depth": 2}, "preprocessing": pipe.to_dict(),
            "training": {**cfg.to_dict(), "patch": [16, 32, 32], "batch_size": 2, "loss": "dice_ce"},
            "trained_on": "nothing (a test network)"}
    return model, meta


def tiny25d():
    """``(model, metadata)``: a 2.5D half-slice U-Net (base 4, depth 2, 32 x 80 half slices, one
    slice of context) that says "no nerve" everywhere."""
    import torch

    from napari_ian.trainer.pipeline import HalfSlices
    from napari_ian.trainer.train import TrainConfig, build_model

    pipe = HalfSlices(size=(32, 80), context=1)
    cfg = TrainConfig(network="unet", network_config={"base": 4, "depth": 2}, size=(32, 80), context=1,
                      pipeline=pipe.to_dict())
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        model.head.bias.fill_(-4.0)
    meta = {"network": "unet", "network_config": {"base": 4, "depth": 2, "in_channels": 1},
            "preprocessing": pipe.to_dict(), "training": {**cfg.to_dict(), "batch_size": 8},
            "trained_on": "nothing (a test network)"}
    return model, meta


def _save_in_registry(name: str, model, meta):
    from napari_ian.trainer.modelfile import save_model
    from napari_ian.trainer.registry import user_models_dir

    user_models_dir().mkdir(parents=True, exist_ok=True)
    path = user_models_dir() / f"{name}.pt"
    save_model(path, model, meta)
    return path


def save_tiny3d(name: str = "tiny3d"):
    """Save :func:`tiny3d` into the user registry (``NAPARI_IAN_HOME``) as ``name``; its path."""
    return _save_in_registry(name, *tiny3d())


def save_tiny25d(name: str = "tiny25d"):
    """Save :func:`tiny25d` into the user registry (``NAPARI_IAN_HOME``) as ``name``; its path."""
    return _save_in_registry(name, *tiny25d())
