"""Checks on where a command will write, made before any work starts.

An output must never be one of the command's inputs (``ian predict x.nii.gz --probability
x.nii.gz`` would replace the image) nor another of its outputs, whatever the spelling: relative
paths and symbolic links are resolved, and hard links to an existing file are recognised. An
output must also be writable where it goes, without creating any folder yet: a run that then
fails on a missing input leaves nothing behind. A file that exists already may be the user's own
work (hand-corrected labels saved under the name a command is told to write): the commands that
write labels or tables refuse it unless ``--overwrite`` (:func:`refuse_existing`).
"""
from __future__ import annotations

import os
from pathlib import Path


class OutputPathError(ValueError):
    """An output path that would overwrite an input or another output, or cannot be written.

    ``str(err)`` is one line, ``"<path>: <problem>"``.
    """

    def __init__(self, path, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def same_file(a, b) -> bool:
    """True when ``a`` and ``b`` name one file: same resolved path, or hard links of one file."""
    a, b = Path(a), Path(b)
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_writable(path, label: str, folder: bool = False) -> None:
    """Refuse an output that cannot be written there, creating nothing.

    Parameters
    ----------
    path : path-like
        The file (or, with ``folder``, the folder) the command will write.
    label : str
        How the user named it (``--out``), for the message.
    folder : bool
        The output is a folder (``ian phantom --out``) rather than a file.

    Raises
    ------
    OutputPathError
        The file is an existing folder (or the folder an existing file), a parent is a file,
        or the nearest existing parent folder is not writable.
    """
    p = Path(path)
    if p.exists() and not folder and p.is_dir():
        raise OutputPathError(p, f"{label} is an existing folder; give a file name")
    if p.exists() and folder and not p.is_dir():
        raise OutputPathError(p, f"{label} is an existing file, not a folder")
    parent = p if folder and p.exists() else p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(p, f"{label} cannot be written: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(p, f"{label} cannot be written: folder {parent} is not writable")


def check_outputs(inputs: dict, outputs: dict, folders=()) -> None:
    """Refuse, before any work, outputs that are inputs or each other, or not writable.

    Parameters
    ----------
    inputs : dict
        ``{description: path}`` of what the command reads, e.g. ``{"the input image": x}``;
        ``None`` paths are skipped.
    outputs : dict
        ``{label: path}`` of what it writes, e.g. ``{"--out": o, "--probability": p}``.
    folders : iterable of str
        Labels of ``outputs`` that are folders, not files.

    Raises
    ------
    OutputPathError
        With one line naming the output and the clash.
    """
    ins = [(d, p) for d, p in inputs.items() if p is not None]
    outs = [(lab, p) for lab, p in outputs.items() if p is not None]
    for i, (label, out) in enumerate(outs):
        for desc, src in ins:
            if same_file(out, src):
                raise OutputPathError(out, f"{label} is {desc}; choose another file")
        for other_label, other in outs[:i]:
            if same_file(out, other):
                raise OutputPathError(out, f"{other_label} and {label} are the same file; give each its own")
        check_writable(out, label, folder=label in folders)


def refuse_existing(outputs: dict, overwrite: bool) -> None:
    """Refuse, before any work, outputs that exist already, unless ``overwrite``.

    Parameters
    ----------
    outputs : dict
        ``{label: path}`` as for :func:`check_outputs`; ``None`` paths are skipped.
    overwrite : bool
        The user passed ``--overwrite``: existing files may be replaced.

    Raises
    ------
    OutputPathError
        ``"<path>: <label> exists; pass --overwrite to replace it"``.
    """
    if overwrite:
        return
    for label, p in outputs.items():
        if p is not None and os.path.lexists(p):
            raise OutputPathError(p, f"{label} exists; pass --overwrite to replace it")
