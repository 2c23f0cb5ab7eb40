"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A crash, a full disk or a Ctrl-C mid-write leaves the previous file untouched and no partial
file under the target's name.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# read once at import: setting the umask is process-wide, and writes happen in worker threads
_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(target, suffix: str | None = None):
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success.

    Parameters
    ----------
    target : path-like
        Final file name.
    suffix : str, optional
        Suffix of the temporary file (libraries such as nibabel pick the format from it);
        defaults to the target's full suffix (``.nii.gz`` stays ``.nii.gz``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(target.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem.split('.')[0]}.", suffix=suffix,
                               dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:  # data on disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(target, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        Path(tmp).write_bytes(data)


def atomic_write_text(target, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))
