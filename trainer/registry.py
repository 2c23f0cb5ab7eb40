"""Where models live: bundled (read-only, in the package) and the user's own (per-user data dir).

The user directory is ``platformdirs.user_data_dir("napari-ian")/models`` (on Linux
``~/.local/share/napari-ian/models``); ``NAPARI_IAN_HOME`` overrides the base directory.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path


BUNDLED_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = "ian-default"


def user_home() -> Path:
    env = os.environ.get("NAPARI_IAN_HOME")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-ian", appauthor=False))


def user_models_dir() -> Path:
    return user_home() / "models"


@dataclasses.dataclass
class ModelEntry:
    name: str
    path: Path
    source: str       # "bundled" or "user"
    metadata: dict

    def line(self) -> str:
        m = self.metadata
        metrics = m.get("metrics", {})
        dsc = metrics.get("test_dsc_mean")
        return (f"{self.name:<24} {self.source:<8} {m.get('network', '?'):<14} "
                f"{('DSC ' + format(dsc, '.3f')) if dsc is not None else '':<10} {m.get('trained_on', '')}")


def list_models() -> list[ModelEntry]:
    """Bundled models first, then the user's; unreadable files are skipped."""
    from .modelfile import ModelFileError, read_metadata  # torch: only when models are asked for

    out = []
    for source, folder in (("bundled", BUNDLED_DIR), ("user", user_models_dir())):
        if not folder.is_dir():
            continue
        for p in sorted(folder.glob("*.pt")):
            try:
                out.append(ModelEntry(p.stem, p, source, read_metadata(p)))
            except ModelFileError:
                continue
    return out


def resolve_model(name_or_path: str | None) -> Path:
    """A model file path from a registry name (user models shadow nothing bundled) or a path."""
    if not name_or_path:
        name_or_path = DEFAULT_MODEL
    p = Path(name_or_path)
    if p.suffix == ".pt" and p.exists():
        return p
    for folder in (BUNDLED_DIR, user_models_dir()):
        cand = folder / f"{name_or_path}.pt"
        if cand.exists():
            return cand
    from .modelfile import ModelFileError

    names = ", ".join(e.name for e in list_models()) or "none"
    raise ModelFileError(name_or_path, f"no such model (available: {names})")


def user_model_path(name: str) -> Path:
    """Where a new user model called ``name`` goes; bundled names are refused."""
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"model name {name!r}: use letters, digits, '-', '_' and '.'")
    if (BUNDLED_DIR / f"{name}.pt").exists():
        raise ValueError(f"model name {name!r} is a bundled model; choose another name")
    return user_models_dir() / f"{name}.pt"
