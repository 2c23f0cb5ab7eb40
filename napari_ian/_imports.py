"""torch imported once, one thread at a time.

The first import of torch is not safe in two threads at once: two napari workers importing it
together hung in our tests. Workers that need torch call :func:`import_torch` first; it imports
it under one process-wide lock (a no-op once torch is loaded).
"""
from __future__ import annotations

import threading

_LOCK = threading.Lock()


def import_torch() -> None:
    """Import torch under a process-wide lock."""
    with _LOCK:
        import torch  # noqa: F401
