"""The panels' side of the progress convention: a worker's progress events, carried to the GUI thread.

The trainer's long functions take a ``progress`` callable and a ``cancel`` callable
(:mod:`napari_ian.trainer.progress`). A panel runs them in a napari thread worker and hands them one
:class:`WorkerProgress`: calling it from the worker emits a Qt signal, which Qt queues to the GUI
thread, where napari's activity bar moves and the panel's handler sees the event; its
:meth:`~WorkerProgress.cancelled` is the ``cancel`` callable. Layers and widgets are only ever
touched on the GUI thread.
"""
from __future__ import annotations

import weakref
from typing import Callable

from qtpy.QtCore import QObject, Signal

from .trainer.progress import Progress

_RUNNING: weakref.WeakSet = weakref.WeakSet()     # runs whose worker has not finished
SPINNER_SPEED = 10    # per cent of the speed napari turns its activity spinner at (about 3 frames a second)


def cancel_running() -> int:
    """Ask every run whose worker has not finished to stop (at exit); returns how many."""
    runs = list(_RUNNING)
    for run in runs:
        run.cancel()
    return len(runs)


class WorkerProgress(QObject):
    """``progress`` and ``cancel`` for one worker run.

    Parameters
    ----------
    desc : str
        The activity bar's label (napari's activity dock, bottom right).
    counts : str
        The event kind the activity bar counts (``infer`` batches, training ``epoch`` s...).
    handler : callable, optional
        ``handler(event)`` on the GUI thread for every event (e.g. a panel's status line).
    """

    event = Signal(object)

    def __init__(self, desc: str, counts: str, handler: Callable[[Progress], None] | None = None):
        super().__init__()
        self.desc, self.counts, self._handler = desc, counts, handler
        self._cancel = False
        self._activity = None
        self._closed = False
        self.event.connect(self._on_event)
        _RUNNING.add(self)

    # -- any thread ------------------------------------------------------------------------------
    def __call__(self, event: Progress) -> None:
        self.event.emit(event)

    def cancelled(self) -> bool:
        """The ``cancel`` callable: True once :meth:`cancel` was called."""
        return self._cancel

    def cancel(self) -> None:
        self._cancel = True

    # -- GUI thread ------------------------------------------------------------------------------
    def _on_event(self, event: Progress) -> None:
        if self._closed:
            return
        if event.kind == self.counts:
            from napari.utils import progress

            if self._activity is None:
                self._activity = progress(total=event.total or None, desc=self.desc)
                slow_activity_spinners()
            elif event.total and self._activity.total != event.total:
                self._activity.total = event.total
            self._activity.update(max(event.done - self._activity.n, 0))
        if self._handler is not None:
            self._handler(event)

    def close(self) -> None:
        """Close the activity bar (when the worker has finished, whatever the outcome)."""
        self._closed = True
        _RUNNING.discard(self)
        if self._activity is not None:
            self._activity.close()
            self._activity = None


def slow_activity_spinners(speed: int = SPINNER_SPEED) -> int:
    """Turn napari's activity spinners (status bar, bottom right) at ``speed`` per cent; returns how many.

    napari animates one at about 30 frames a second while any progress bar runs. Each frame
    repaints the main window, which composes the OpenGL canvas again: where OpenGL is drawn in
    software (virtual machines, remote desktops, Xvfb) that took most of a CPU core from the run it
    was showing, and a fine-tune in the panel took about twice as long as ``ian finetune``
    (BENCHMARKS.md). Found through Qt by the spinner's widget class; a napari without it is left as is.
    """
    from qtpy.QtWidgets import QApplication, QLabel

    slowed = 0
    for window in QApplication.topLevelWidgets():
        for label in window.findChildren(QLabel):
            movie = label.movie()
            if movie is not None and type(label.parent()).__name__ == "ActivityToggleItem":
                movie.setSpeed(speed)
                slowed += 1
    return slowed


def stages_in(panel, label) -> Callable[[Progress], None]:
    """A :class:`WorkerProgress` handler that shows each ``stage`` event's message in ``label`` (a
    one-time step such as converting a model, which the activity bar does not count), while
    ``panel`` lives."""
    from ._panel import while_alive
    from .trainer.progress import STAGE

    def show(event: Progress) -> None:
        if event.kind == STAGE and event.message:
            label.setText(f"{event.message[:1].upper()}{event.message[1:]}...")

    return while_alive(panel, show)
