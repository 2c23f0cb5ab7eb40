"""The Review panel's 3D figures (3D DSC, HD95, volumetric similarity per side), measured off the GUI thread.

A full volume takes seconds, so requests wait until edits settle (0.4 s), one worker runs at a
time (a request while it runs measures again when it ends), and a result measured before the
latest review or edit is dropped instead of shown.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from napari.qt.threading import thread_worker
from qtpy.QtCore import QObject, QTimer

from ._panel import while_alive
from .trainer.metrics import SIDES

SETTLE_MS = 400


class NerveFigures3D(QObject):
    """Background 3D figures for one Review panel (its child: it goes when the panel goes).

    Parameters
    ----------
    panel : QWidget
        The Review panel.
    inputs : callable
        ``inputs()`` on the GUI thread: ``(reference labels, prediction labels, spacing, axis)``
        of the current review, or None when there is nothing to measure.
    show : callable
        ``show(figures, note)`` on the GUI thread: ``figures`` maps a side name to
        :func:`napari_ian.trainer.metrics.nerve_metrics`' dict (``{}`` with a note on failure).
    """

    def __init__(self, panel, inputs: Callable, show: Callable):
        super().__init__(panel)
        self._inputs, self._show = inputs, show
        self._worker, self._dirty, self._generation = None, False, 0
        self.last = None              # the figures last shown
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SETTLE_MS)
        self._timer.timeout.connect(self._run)

    def request(self) -> None:
        """Measure again once edits have settled."""
        self._timer.start()

    def new_review(self) -> None:
        """Another review replaced the current one: what is being measured now is stale."""
        self._generation += 1

    def stop(self) -> None:
        self._timer.stop()

    def _run(self):
        if self._worker is not None:
            self._dirty = True
            return
        got = self._inputs()
        if got is None:
            return
        ref, pred, spacing, axis = got
        rdata, pdata = np.asarray(ref).copy(), np.asarray(pred).copy()   # the worker must not see later edits
        generation = self._generation

        @thread_worker(ignore_errors=True)
        def measure():
            from .trainer.metrics import nerve_metrics

            return {side: nerve_metrics(rdata, pdata, lab, spacing, axis) for lab, side in SIDES.items()}

        worker = measure()
        worker.returned.connect(while_alive(self, lambda res: self._measured(res, generation)))
        worker.errored.connect(while_alive(self, lambda exc: self._show({}, f"3D figures failed: {exc}")))
        worker.finished.connect(while_alive(self, self._finished))
        self._worker, self._dirty = worker, False
        worker.start()

    def _finished(self):
        self._worker = None
        if self._dirty:
            self._run()

    def _measured(self, figures, generation):
        if self._dirty or generation != self._generation:
            return    # stale: newer edits are being measured, or another review replaced this one
        self.last = figures
        self._show(figures, "")
