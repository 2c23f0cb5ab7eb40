"""Where models live: bundled (read-only, in the package) and the user's own (per-user data dir).

The user directory is ``platformdirs.user_data_dir("napari-ian")/models`` (on Linux
``~/.local/share/napari-ian/models``); ``NAPARI_IAN_HOME`` overrides the base directory.
A model's name is its file name without ``.pt``: letters, digits, ``-``, ``_`` and ``.``,
starting with a letter or digit (so no hidden file, temporary file or path is ever a model).
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import re
from pathlib import Path

from .atomic import remove_stale_temps


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


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def valid_model_name(name) -> bool:
    """True for a usable model name (see the module docstring); never a newline, path or dotfile."""
    return isinstance(name, str) and MODEL_NAME.fullmatch(name) is not None


FINETUNE_SUFFIX = re.compile(r"-ft(\d+)$")


def alternative_names(name: str):
    """Names to try, in order, when ``name`` is taken: ``<base>-ft<N+1>``, ``-ft<N+2>``... after a
    fine-tune's ``<base>-ftN``, else ``<name>-2``, ``<name>-3``... (endless; bundled names skipped)."""
    m = FINETUNE_SUFFIX.search(name)
    names = ((f"{name[:m.start()]}-ft{i}" for i in itertools.count(int(m.group(1)) + 1)) if m
             else (f"{name}-{i}" for i in itertools.count(2)))
    return (n for n in names if not (BUNDLED_DIR / f"{n}.pt").exists())


def _one_line(text, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclasses.dataclass
class ModelEntry:
    name: str
    path: Path
    source: str       # "bundled" or "user"
    metadata: dict
    error: str = ""   # why the file cannot be used (then ``metadata`` is empty)

    @property
    def broken(self) -> bool:
        return bool(self.error)

    def line(self) -> str:
        """One line for ``ian models`` (free text from the file cannot add lines)."""
        if self.broken:
            return f"{self.name:<24} {self.source:<8} BROKEN: {_one_line(self.error)}"
        m = self.metadata
        dsc = m.get("metrics", {}).get("test_dsc_mean")
        return _one_line(f"{self.name:<24} {self.source:<8} {m.get('network', '?'):<14} "
                         f"{('DSC ' + format(dsc, '.3f')) if dsc is not None else '':<10} "
                         f"{m.get('trained_on', '')}", 200)


def _model_files(folder: Path):
    """The model files of a folder: ``<name>.pt`` regular files with a valid name."""
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.glob("*.pt")) if valid_model_name(p.stem) and p.is_file()]


def list_models(include_broken: bool = False) -> list[ModelEntry]:
    """Bundled models first, then the user's.

    Parameters
    ----------
    include_broken : bool
        Also list files that cannot be used (damaged, malformed metadata), with the reason in
        :attr:`ModelEntry.error`; otherwise they are left out. Either way one bad file never
        stops the others from being listed.
    """
    from .modelfile import ModelFileError, read_metadata  # torch: only when models are asked for

    remove_stale_temps(user_models_dir())   # left by a save that was killed
    out = []
    for source, folder in (("bundled", BUNDLED_DIR), ("user", user_models_dir())):
        for p in _model_files(folder):
            try:
                out.append(ModelEntry(p.stem, p, source, read_metadata(p)))
            except ModelFileError as exc:
                if include_broken:
                    out.append(ModelEntry(p.stem, p, source, {}, exc.problem))
    return out


def resolve_model(name_or_path: str | None) -> Path:
    """A model file path from a registry name (user models shadow nothing bundled) or a path."""
    if not name_or_path:
        name_or_path = DEFAULT_MODEL
    p = Path(name_or_path)
    if p.suffix == ".pt" and p.exists():
        return p
    for folder in (BUNDLED_DIR, user_models_dir()) if valid_model_name(name_or_path) else ():
        cand = folder / f"{name_or_path}.pt"
        if cand.exists():
            return cand
    from .modelfile import ModelFileError

    names = ", ".join(e.name for e in list_models()) or "none"
    raise ModelFileError(name_or_path, f"no such model (available: {names})")


def user_model_path(name: str) -> Path:
    """Where a new user model called ``name`` goes; bundled and malformed names are refused."""
    if not valid_model_name(name):
        raise ValueError(f"model name {name!r}: use up to 100 letters, digits, '-', '_' and '.', starting "
                         "with a letter or digit")
    if (BUNDLED_DIR / f"{name}.pt").exists():
        raise ValueError(f"model name {name!r} is a bundled model; choose another name")
    return user_models_dir() / f"{name}.pt"
