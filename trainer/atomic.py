"""Atomic file writes: write to a temporary file beside the target, then rename it into place.

A crash, a full disk or a Ctrl-C mid-write leaves the previous file untouched and no partial
file under the target's name. Temporary files are hidden and named ``.<target name>.tmp-XXXX``
(plus a format suffix only where a library needs one), so a glob such as ``*.pt`` or ``*.npz``
never takes one for a finished file; :func:`remove_stale_temps` deletes those a killed process
left behind.

Two ways to put the finished file in place:

* :func:`atomic_path` replaces an existing target (a re-export of labels, a table);
* ``atomic_path(..., exclusive=True)`` creates the target only if no file has that name, and
  raises :class:`FileExistsError` otherwise, also when another process creates it at the same
  moment: the finished file is hard-linked to the target name (``link`` fails if the name
  exists), so two writers can never both "succeed" on one name.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import time
from pathlib import Path

from .errors import VolumeWriteError

TEMP_MARK = ".tmp-"
# a temp file of a killed process older than this is removed; a live save rewrites its file
# within seconds, so an hour leaves a wide margin for slow disks
STALE_AFTER_S = 3600.0
# what older napari-ian versions named the temp files of models and store entries:
# ".<stem>.<8 random chars>.pt|.npz"
_LEGACY_TEMP = re.compile(r"^\.[^.]+\.[a-z0-9_]{8}\.(pt|npz)$")


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# read once at import: setting the umask is process-wide, and writes happen in worker threads
_UMASK = _read_umask()


def is_temp_name(name: str) -> bool:
    """True for the name of a temporary file an atomic write makes (or made in older versions)."""
    return name.startswith(".") and (TEMP_MARK in name or bool(_LEGACY_TEMP.match(name)))


def remove_stale_temps(folder, max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete temporary files of interrupted writes in ``folder`` older than ``max_age_s``.

    Meant for folders napari-ian owns (the user's models, the corrections store). Returns the
    paths removed; files that cannot be removed (read-only folder) are left.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for p in folder.iterdir():
        if not is_temp_name(p.name):
            continue
        with contextlib.suppress(OSError):
            if p.is_file() and now - p.stat().st_mtime > max_age_s:
                p.unlink()
                removed.append(p)
    return removed


def _publish_exclusive(tmp: str, target: Path) -> None:
    """Give the finished ``tmp`` the name ``target`` only if that name is free (atomically)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
            raise
        # a file system without hard links: claim the name first (O_EXCL), then fill it by
        # rename; a reader may see an empty file for that instant, but no writer is replaced
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        os.close(fd)
        os.replace(tmp, target)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(target, suffix: str | None = None, exclusive: bool = False):
    """Yield a temporary path in the target's folder; move it onto ``target`` on success.

    Parameters
    ----------
    target : path-like
        Final file name. Its folder is created when missing.
    suffix : str, optional
        Suffix of the temporary file, for libraries that pick the format from it (nibabel:
        ``.nii.gz``). Without one the temporary name ends in random characters.
    exclusive : bool
        Create ``target`` only if no file has that name; otherwise :class:`FileExistsError`
        (the temporary file is removed, nothing is replaced).

    Raises
    ------
    VolumeWriteError
        An OS error while writing (full disk, read-only folder), naming ``target``.
    FileExistsError
        ``exclusive`` and the name is taken.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}{TEMP_MARK}", suffix=suffix or "", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise VolumeWriteError(target, exc.strerror or str(exc)) from None
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:  # data on disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        if exclusive:
            _publish_exclusive(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, (FileExistsError, VolumeWriteError)):
            # an OSError from a write (ENOSPC, EFBIG, EACCES) names no file: name the target
            raise VolumeWriteError(target, exc.strerror or str(exc) or type(exc).__name__) from None
        raise


def atomic_write_bytes(target, data: bytes, exclusive: bool = False) -> None:
    """Write ``data`` to ``target`` atomically (``exclusive``: only if the name is free)."""
    with atomic_path(target, exclusive=exclusive) as tmp:
        Path(tmp).write_bytes(data)


def atomic_write_text(target, text: str, exclusive: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically (``exclusive``: only if the name is free)."""
    atomic_write_bytes(target, text.encode("utf-8"), exclusive=exclusive)
