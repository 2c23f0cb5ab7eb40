"""An exclusive lock between processes, held on a hidden sidecar file beside what it protects.

The lock is an OS advisory lock (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows) on
``.<name>.lock``, not a lock file whose mere existence means "locked": the OS drops the lock
when its holder exits, also on ``kill -9`` or a power cut, so a crashed process never leaves a
stale lock that someone has to clear. The sidecar itself stays (an empty file): deleting it
while another process waits on it would let two processes hold "the" lock at once.

Advisory locks bind only code that takes them; every napari-ian writer of the protected file
does. They are reliable on local disks; some network file systems ignore them.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

try:  # POSIX
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


def lock_path(target) -> Path:
    """The sidecar lock file of ``target``: ``.<name>.lock`` in the same folder."""
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


def _try_lock(fd) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


def _unlock(fd) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


@contextlib.contextmanager
def locked(target, timeout: float = 60.0, poll: float = 0.05):
    """Hold the exclusive lock of ``target`` for the ``with`` block.

    Parameters
    ----------
    target : path-like
        The file to protect (it need not exist); its folder is created when missing.
    timeout : float
        Seconds to wait for another holder before giving up.

    Raises
    ------
    TimeoutError
        Another process held the lock for ``timeout`` seconds (message names ``target``).
    OSError
        The sidecar cannot be created (read-only folder).
    """
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + timeout
        while not _try_lock(fd):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target}: another napari-ian process has held it for {timeout:.0f} s; "
                                   "try again when it has finished")
            time.sleep(poll)
        try:
            yield path
        finally:
            _unlock(fd)
    finally:
        os.close(fd)
