"""Phantom panel: make another synthetic patient from a seed, off the GUI thread, and add it.

Generating a patient takes about 4-5 s; it runs in a napari thread worker (shown in napari's activity
bar) with Cancel, and the layers are added only from the GUI thread, when the worker returns.
"""
from __future__ import annotations

from napari.qt.threading import thread_worker
from qtpy.QtWidgets import QFormLayout, QHBoxLayout, QPushButton, QSpinBox

from ._panel import Panel, while_alive
from ._panel_layout import panel_layout, wrapping_label


class PhantomWidget(Panel):
    """Make one synthetic patient (seed) off the GUI thread and add image + ground truth."""

    TITLE = "Phantom"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.seed = QSpinBox()
        self.seed.setRange(0, 10_000_000)
        self.go = QPushButton("Make phantom")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.status = wrapping_label("Synthetic MRN of the lower jaw with IAN ground truth (not patient data).")
        form = QFormLayout()
        form.addRow("Seed", self.seed)
        row = QHBoxLayout()
        row.addWidget(self.go)
        row.addWidget(self.cancel)
        lay, footer = panel_layout(self, 40)
        lay.addLayout(form)
        lay.addStretch(1)
        footer.addLayout(row)
        footer.addWidget(self.status)
        self.go.clicked.connect(self.start)
        self.cancel.clicked.connect(self.stop)
        self.worker = None
        self._cancelled = False

    def start(self):
        from ._sample_data import phantom_layers

        seed = int(self.seed.value())

        @thread_worker(progress={"total": 0, "desc": f"phantom {seed}"}, ignore_errors=True)
        def make():
            return phantom_layers(seed)

        self.worker = make()
        self.worker.returned.connect(while_alive(self, self._add))
        self.worker.errored.connect(while_alive(self, self._failed))
        self.worker.finished.connect(while_alive(self, self._done))
        self.go.setEnabled(False)
        self.cancel.setEnabled(True)
        self.status.setText(f"Making phantom {seed} (a few seconds)...")
        self.worker.start()
        return self.worker

    def stop(self):
        if self.worker is not None:
            self._cancelled = True
            self.worker.quit()
            self.status.setText("Cancelled: nothing was added.")

    def closing(self):
        if self.worker is not None:
            self._cancelled = True
            self.worker.quit()

    def _add(self, layers):
        if self._cancelled:
            return
        for data, kwargs, kind in layers:
            getattr(self.viewer, f"add_{kind}")(data, **kwargs)
        self.status.setText(f"Added {layers[0][1]['name']}.")

    def _failed(self, exc):
        from napari.utils.notifications import show_error

        msg = f"phantom failed: {' '.join(str(exc).split())}"
        show_error(f"napari-ian: {msg}")
        self.status.setText(msg.capitalize())

    def _done(self):
        self.worker = None
        self._cancelled = False
        self.go.setEnabled(True)
        self.cancel.setEnabled(False)
