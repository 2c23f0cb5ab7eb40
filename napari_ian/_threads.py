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


EXIT_WAIT_MS = 60_000
_exit_wait = False


def wait_for_workers_at_exit() -> None:
    """Once per process: at interpreter exit, wait (at most ``EXIT_WAIT_MS``) for the workers still
    running in the global pool.

    A worker that ends while Python is tearing down emits into signal objects already deleted, and
    the process aborts ("wrapped C/C++ object of type WorkerBaseSignals has been deleted"): a
    script that closes its viewer while the panels are still loading torch in the background
    ended that way. Waiting at exit lets such work end first; the panels' long runs (a prediction,
    a fine-tune) are asked to stop first, as closing the viewer does, so the wait is short even
    when a script ends with its viewer still open.
    """
    global _exit_wait
    if _exit_wait:
        return
    _exit_wait = True
    import atexit

    def wait():
        from qtpy.QtCore import QThreadPool

        from ._progress_bridge import cancel_running

        cancel_running()
        QThreadPool.globalInstance().waitForDone(EXIT_WAIT_MS)

    # atexit runs the last registered first: this runs before Qt's own clean-up at exit
    atexit.register(wait)
