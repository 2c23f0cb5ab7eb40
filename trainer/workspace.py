"""The per-user workspace: autosaved labels, keyed to the image by a hash (no patient identifiers).

Layout: ``<user home>/workspace/<case key>/labels-<name hash>.npz`` + ``.json``. The case key is
the image's :attr:`Geometry.case_key` (a hash of its DICOM UIDs or file content); file names
hold only hashes, never a patient's name or ID. Every write is atomic, so a crash during an
autosave leaves the previous one intact.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes, atomic_write_text
from .registry import user_home


def workspace_dir() -> Path:
    return user_home() / "workspace"


def _safe_key(case_key: str) -> str:
    return hashlib.sha256(case_key.encode()).hexdigest()[:24]


def case_dir(case_key: str) -> Path:
    """The folder of one case (named by a hash of its key)."""
    if not case_key:
        raise ValueError("this image has no case key (it was not opened with napari-ian)")
    return workspace_dir() / _safe_key(case_key)


@dataclasses.dataclass
class Autosave:
    path: Path          # the .npz
    layer_name: str
    saved_at: float
    shape: tuple

    def describe(self) -> str:
        return f"{self.layer_name} ({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.saved_at))})"


def save_labels(case_key: str, layer_name: str, data: np.ndarray) -> Path:
    """Autosave one labels array for a case, atomically (data first, then its description)."""
    folder = case_dir(case_key)
    stem = "labels-" + hashlib.sha256(layer_name.encode()).hexdigest()[:12]
    buf = io.BytesIO()
    np.savez_compressed(buf, labels=np.asarray(data, dtype=np.uint8))
    npz = folder / f"{stem}.npz"
    atomic_write_bytes(npz, buf.getvalue())
    atomic_write_text(folder / f"{stem}.json", json.dumps(
        {"layer_name": layer_name, "saved_at": time.time(), "shape": [int(s) for s in np.shape(data)]}))
    return npz


def list_autosaves(case_key: str) -> list[Autosave]:
    """Autosaves of a case, newest first (entries whose files are incomplete are skipped)."""
    try:
        folder = case_dir(case_key)
    except ValueError:
        return []
    out = []
    for meta_p in folder.glob("labels-*.json"):
        npz = meta_p.with_suffix(".npz")
        try:
            meta = json.loads(meta_p.read_text())
        except (OSError, ValueError):
            continue
        if npz.exists():
            out.append(Autosave(npz, meta.get("layer_name", "labels"), float(meta.get("saved_at", 0)),
                                tuple(meta.get("shape", ()))))
    return sorted(out, key=lambda a: -a.saved_at)


def load_labels(entry: Autosave) -> np.ndarray:
    with np.load(entry.path) as z:
        return z["labels"]


def remember_export(case_key: str, path) -> None:
    """Record where a case's labels were exported (the case's folder and the last folder used)."""
    path = str(Path(path).resolve())
    atomic_write_text(case_dir(case_key) / "export.json", json.dumps({"path": path, "saved_at": time.time()}))
    atomic_write_text(workspace_dir() / "last_export_dir.json", json.dumps({"dir": str(Path(path).parent)}))


def last_export(case_key: str) -> Path | None:
    """Where this case's labels were last exported, or None."""
    try:
        return Path(json.loads((case_dir(case_key) / "export.json").read_text())["path"])
    except (OSError, ValueError, KeyError):
        return None


def last_export_dir() -> Path | None:
    """The folder of the most recent export of any case, or None."""
    try:
        return Path(json.loads((workspace_dir() / "last_export_dir.json").read_text())["dir"])
    except (OSError, ValueError, KeyError):
        return None
