"""Weight averaging: one model whose weights are the mean of several models' weights.

Models fine-tuned from the same start lie close together in weight space, and the mean of their
weights often generalises better than any one of them (a "model soup", Wortsman et al. 2022;
stochastic weight averaging is the same idea along one run). Only models of the same network,
settings and preprocessing can be averaged.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .modelfile import load_model

__all__ = ["average_models"]

_SAME = ("network", "network_config", "preprocessing", "output")


def average_models(paths):
    """The mean of several model files' weights.

    Parameters
    ----------
    paths : sequence of path-like
        Two or more model files of the same network, network settings and preprocessing.

    Returns
    -------
    model : torch.nn.Module
        The last file's network with the averaged weights.
    metadata : dict
        The last file's metadata; ``training["weights_averaged_from"]`` names every file and its
        stored checksum (None for a file saved without one), and ``parent`` the first file.

    Raises
    ------
    ValueError
        Fewer than two files, or files that differ in network, settings or preprocessing.
    """
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ValueError("weight averaging needs at least two model files")
    loaded = [load_model(p) for p in paths]
    first_meta = loaded[0][1]
    for p, (_, meta) in zip(paths[1:], loaded[1:]):
        for key in _SAME:
            if meta.get(key) != first_meta.get(key):
                raise ValueError(f"{p}: its {key.replace('_', ' ')} differs from {paths[0].name}'s; "
                                 "only models of the same network and preprocessing can be averaged")
    states = [m.state_dict() for m, _ in loaded]
    mean = {}
    for key, value in states[-1].items():
        if value.is_floating_point():
            mean[key] = sum(s[key].double() for s in states).div(len(states)).to(value.dtype)
        else:   # counters (e.g. a norm layer's batches seen) are not averaged
            mean[key] = value
    model, meta = loaded[-1]
    model.load_state_dict(mean)
    meta = dict(meta)
    meta["training"] = {**meta.get("training", {}),
                        "weights_averaged_from": [{"file": p.name, "sha256": _checksum(p)} for p in paths]}
    meta["parent"] = paths[0].stem
    return model, meta


def _checksum(path: Path) -> str | None:
    # the stored checksum (files from before checksums have none, and load_model reads them)
    return torch.load(path, map_location="cpu", weights_only=True).get("sha256")
