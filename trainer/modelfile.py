"""Model files: weights + everything needed to use them, loaded without executing code.

One ``.pt`` file holds a plain dict: ``format``, ``version``, ``metadata`` (a JSON string:
network name and settings, preprocessing, label meaning, training data summary, metrics, parent
model, split-attention variant, date; see :class:`~.model_metadata.ModelMetadata`),
``state_dict`` (tensors) and ``sha256``, a checksum of the metadata text and every weight. It is
read with ``torch.load(weights_only=True)``, which refuses pickled code; the checksum, the
metadata and the weights (finite, the shapes the described network has) are checked before a
network is built. Files are written atomically and, unless asked to replace, only under a name
no other file has (also against another process saving at the same moment).
"""
from __future__ import annotations

import datetime
import hashlib
import itertools
import json
from pathlib import Path

import torch

from .atomic import atomic_path
from .errors import VolumeReadError, describe
from .model_metadata import LABEL_MEANING, MetadataError, validate_metadata
from .nets import build_network

FORMAT = "napari-ian-model"
VERSION = 1
__all__ = ["FORMAT", "VERSION", "LABEL_MEANING", "ModelFileError", "ModelExistsError", "save_model",
           "save_model_unique",
           "read_metadata", "load_model", "weights_checksum"]


class ModelFileError(VolumeReadError):
    """A model file that is missing, corrupt, or does not match its own architecture."""


class ModelExistsError(FileExistsError):
    """A model file with this name exists (or was created meanwhile by another process)."""

    def __init__(self, path):
        self.path = Path(path)
        super().__init__(f"{self.path}: a model with this name exists already")


def weights_checksum(metadata_text: str, state: dict) -> str:
    """Hex SHA-256 of the metadata text and every tensor (name, dtype, shape and bytes, by name)."""
    h = hashlib.sha256(metadata_text.encode("utf-8"))
    for key in sorted(state):
        t = state[key]
        h.update(f"\0{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_model(path, model: torch.nn.Module, metadata: dict, overwrite: bool = False) -> Path:
    """Write ``model`` and ``metadata`` to ``path`` atomically (never a half-written file).

    Parameters
    ----------
    path : path-like
    model : torch.nn.Module
    metadata : dict
        Checked by :class:`~.model_metadata.ModelMetadata`; ``created`` and ``labels`` are added
        when missing.
    overwrite : bool
        Replace an existing file. Without it the file is created only if no file has the name,
        checked at the moment of writing, so two runs saving one name never both succeed.

    Raises
    ------
    ModelExistsError
        ``path`` exists (and ``overwrite`` is False); nothing was written.
    ValueError
        Metadata that does not describe a usable model.
    VolumeWriteError
        The file cannot be written (full disk, read-only folder), naming ``path``.
    """
    path = Path(path)
    meta = dict(metadata)
    meta.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    meta.setdefault("labels", LABEL_MEANING)
    try:
        meta = validate_metadata(meta)
    except MetadataError as exc:
        raise ValueError(f"model metadata: {exc}") from None
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _check_finite(path, state)
    text = json.dumps(meta)
    payload = {"format": FORMAT, "version": VERSION, "metadata": text, "state_dict": state,
               "sha256": weights_checksum(text, state)}
    try:
        with atomic_path(path, exclusive=not overwrite) as tmp:
            torch.save(payload, tmp)
    except FileExistsError:
        raise ModelExistsError(path) from None
    return path


def save_model_unique(path, model: torch.nn.Module, metadata: dict, tries: int = 1000) -> Path:
    """Save as ``path`` or, when that name is taken, under the first free alternative name.

    The alternatives are :func:`~napari_ian.trainer.registry.alternative_names` of the stem
    (``<base>-ft2`` after ``<base>-ft1``, ``<name>-2`` otherwise) in the same folder; every
    attempt is exclusive, so a process saving the same name at the same moment makes this one
    move on, never replace it. A ``name`` in the metadata follows the name used.

    Returns
    -------
    Path
        The file written; its stem differs from ``path``'s when the name was taken.
    """
    from .registry import alternative_names

    path = Path(path)
    for name in itertools.islice(itertools.chain([path.stem], alternative_names(path.stem)), tries):
        meta = {**metadata, "name": name} if "name" in metadata else metadata
        try:
            return save_model(path.with_name(f"{name}.pt"), model, meta)
        except ModelExistsError:
            continue
    raise ModelExistsError(path)


def read_metadata(path) -> dict:
    """The checked metadata of a model file (loads and checks the file safely, builds nothing)."""
    return _load_payload(path)[0]


def _check_finite(path, state: dict) -> None:
    for key, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ModelFileError(path, f"weights {key!r} hold NaN or infinite values: the model cannot predict")


def _load_payload(path):
    """``(metadata, state_dict)`` of a model file, every check passed, or ModelFileError."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "model file not found" if not path.exists() else "not a regular file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise ModelFileError(path, "not enough memory to read this model file") from None
    except Exception as exc:
        raise ModelFileError(path, f"not a readable napari-ian model file ({describe(exc, with_type=True)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(path, "not a napari-ian model file (no 'napari-ian-model' format tag)")
    version = payload.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFileError(path, f"model file version {version!r} is not a number: a damaged or foreign file")
    if version > VERSION:
        raise ModelFileError(path, f"model file version {version} is newer than this napari-ian reads "
                                   f"({VERSION}); update napari-ian")
    text, state = payload.get("metadata"), payload.get("state_dict")
    if not isinstance(text, str):
        raise ModelFileError(path, "model metadata is missing or not JSON text")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ModelFileError(path, "its weights (state_dict) are missing or not a set of named tensors")
    # files written before checksums were stored (the first bundled model) have none: accepted;
    # a checksum that is there must match
    stored = payload.get("sha256")
    if stored is not None and stored != weights_checksum(text, state):
        raise ModelFileError(path, "its checksum does not match its contents: the file is damaged "
                                   "(copy it again, or retrain)")
    try:
        meta = validate_metadata(json.loads(text))
    except ValueError as exc:  # JSONDecodeError and MetadataError
        raise ModelFileError(path, f"model metadata is not valid: {exc}") from None
    _check_finite(path, state)
    return meta, state


def load_model(path, device="cpu"):
    """Build the network a model file describes and load its weights (strictly).

    The network is first laid out without memory (PyTorch's ``meta`` device) and its weight
    shapes compared with the file's, so a file describing a huge network fails at once
    instead of allocating it.

    Returns
    -------
    model : torch.nn.Module (eval mode, on ``device``)
    metadata : dict

    Raises
    ------
    ModelFileError
        Missing, damaged (checksum), malformed metadata, non-finite weights, or weights that
        do not match the described architecture.
    """
    meta, state = _load_payload(path)
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in build_network(meta["network"], **meta["network_config"])
                      .state_dict().items()}
    except (TypeError, ValueError) as exc:
        raise ModelFileError(path, f"its architecture cannot be built ({exc})") from None
    found = {k: tuple(v.shape) for k, v in state.items()}
    if shapes != found:
        diff = sorted(set(shapes) ^ set(found)) or sorted(k for k in shapes if shapes[k] != found[k])
        raise ModelFileError(path, f"its weights do not match its architecture {meta['network']!r} "
                                   f"({len(diff)} tensor(s) differ, e.g. {diff[0]!r})")
    model = build_network(meta["network"], **meta["network_config"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(path, f"its weights do not match its architecture {meta['network']!r} "
                                   f"({describe(exc)})") from None
    return model.to(device).eval(), meta
