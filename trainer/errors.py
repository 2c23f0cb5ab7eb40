"""Errors that carry one clear line for the user: the file and the problem."""
from __future__ import annotations

import os


def describe(exc: BaseException, with_type: bool = False) -> str:
    """An exception in a few words: the first line of its message (200 characters at most), or its
    type's name when it has none (``MemoryError()`` would otherwise read as empty brackets)."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    if with_type and text:
        return f"{type(exc).__name__}: {text}"
    return text or type(exc).__name__


class VolumeReadError(ValueError):
    """A file or folder could not be read as a 3D MR volume.

    ``str(err)`` is one line: ``"<path>: <problem>"``. The CLI prints it, the napari reader
    shows it as a notification; neither shows a traceback.
    """

    def __init__(self, path, problem: str):
        self.path = os.fspath(path) if path is not None else ""
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(f"{self.path}: {self.problem}" if self.path else self.problem)


class GeometryMissingError(VolumeReadError):
    """The file is an image but records too little geometry to place it in patient space.

    ``facts`` holds what the header does say (frames, sizes, spacings that are present), so
    ``ian info`` can still describe it truthfully.
    """

    def __init__(self, path, problem: str, facts: dict):
        super().__init__(path, problem)
        self.facts = facts


class VolumeWriteError(OSError):
    """An output could not be written; nothing half-written is left behind.

    ``str(err)`` is ``"<path>: <problem>"``; ``err.strerror`` is the problem alone, so code that
    wraps OS errors as ``exc.strerror or exc`` does not name the file twice.
    """

    def __init__(self, path, problem: str):
        self.path = os.fspath(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")
        self.strerror = self.problem


class VolumeWarning(UserWarning):
    """Something about an input that the user should know but that does not stop the work
    (non-finite voxels ignored, a modality other than MR, a slightly sheared grid).

    The message is one line, ``"<path>: <what>"``. The CLI prints each once to stderr; napari
    shows it as a notification.
    """
