"""Keep spare threads in Qt's global thread pool while napari workers run.

napari's ``thread_worker`` runs each worker on ``QThreadPool.globalInstance()``, whose default
size is the number of CPU cores (2 on small machines). Qt also uses that pool for its own work
on the GUI thread: converting a large image for the screen (a repaint of the window, a pixmap)
splits the conversion into tasks on the pool and waits for them. When every pool thread is held
by a Python worker that is waiting for the GIL, and the GUI thread holds the GIL while it waits
for those tasks, napari freezes for good. We saw exactly that in our tests (a fine-tuning worker
and a review worker on a 2-core machine). Spare threads let Qt's tasks run.

The pool is sized once per process, when the first napari-ian session starts: afterwards its
size is left to whoever else sets it (another plugin, napari itself).
"""
from __future__ import annotations

SPARE = 8
_sized = False


def ensure_spare_pool_threads() -> int:
    """Raise the global pool's maximum, once, so Qt's own tasks always find a free thread; returns it."""
    global _sized
    from qtpy.QtCore import QThread, QThreadPool

    pool = QThreadPool.globalInstance()
    if not _sized:
        _sized = True
        want = max(QThread.idealThreadCount(), 1) + SPARE
        if pool.maxThreadCount() < want:
            pool.setMaxThreadCount(want)
    return pool.maxThreadCount()
