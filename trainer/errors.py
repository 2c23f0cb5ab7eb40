"""Errors that carry one clear line for the user: the file and the problem."""
from __future__ import annotations

import os


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
    """An output could not be written; nothing half-written is left behind."""

    def __init__(self, path, problem: str):
        self.path = os.fspath(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")
