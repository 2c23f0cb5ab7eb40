"""Model files: weights + everything needed to use them, loaded without executing code.

One ``.pt`` file holds a plain dict: ``format``, ``version``, ``metadata`` (a JSON string:
network name and settings, preprocessing, label meaning, training data summary, metrics, parent
model, split-attention variant, date) and ``state_dict`` (tensors). It is read with
``torch.load(weights_only=True)``, which refuses pickled code, and written atomically.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path

import torch

from .atomic import atomic_path
from .errors import VolumeReadError, VolumeWriteError
from .nets import build_network

FORMAT = "napari-ian-model"
VERSION = 1
LABEL_MEANING = {"0": "background", "1": "right IAN", "2": "left IAN"}


class ModelFileError(VolumeReadError):
    """A model file that is missing, corrupt, or does not match its own architecture."""


def save_model(path, model: torch.nn.Module, metadata: dict) -> Path:
    """Write ``model`` and ``metadata`` to ``path`` atomically (never a half-written file)."""
    path = Path(path)
    meta = dict(metadata)
    meta.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    meta.setdefault("labels", LABEL_MEANING)
    for key in ("network", "network_config", "preprocessing"):
        if key not in meta:
            raise ValueError(f"model metadata needs {key!r}")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "metadata": json.dumps(meta), "state_dict": state}
    try:
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(payload, tmp)
    except OSError as exc:
        raise VolumeWriteError(path, exc.strerror or str(exc)) from None
    return path


def read_metadata(path) -> dict:
    """The metadata of a model file (loads the file safely, builds nothing)."""
    return _load_payload(path)[0]


def _load_payload(path):
    path = Path(path)
    if not path.exists():
        raise ModelFileError(path, "model file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelFileError(path, f"not a readable napari-ian model file ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(path, "not a napari-ian model file (no 'napari-ian-model' format tag)")
    if int(payload.get("version", 0)) > VERSION:
        raise ModelFileError(path, f"model file version {payload.get('version')} is newer than this "
                                   f"napari-ian reads ({VERSION}); update napari-ian")
    try:
        meta = json.loads(payload["metadata"])
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(path, "model metadata is missing or not JSON") from None
    return meta, payload.get("state_dict", {})


def load_model(path, device="cpu"):
    """Build the network a model file describes and load its weights (strictly).

    Returns
    -------
    model : torch.nn.Module (eval mode, on ``device``)
    metadata : dict
    """
    meta, state = _load_payload(path)
    try:
        model = build_network(meta["network"], **meta.get("network_config", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(path, f"its architecture cannot be built ({exc})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:200]
        raise ModelFileError(path, f"its weights do not match its architecture {meta['network']!r} ({first})") from None
    return model.to(device).eval(), meta
