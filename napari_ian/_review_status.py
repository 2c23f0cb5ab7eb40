"""Review status of a prediction's slices (unreviewed / accepted / corrected), kept with the case.

The status lives in the case's workspace folder (:func:`napari_ian.trainer.review.status_file`),
written atomically after every change; each save is announced on the plugin hub so the Fine-tune
panel counts the corrected slices anew. Layers without a case (not opened with napari-ian) keep
their status in the panel only.
"""
from __future__ import annotations

import numpy as np
from napari.utils.notifications import show_error

from ._layers import geometry_of
from .trainer.review import load_status, new_status, status_file, status_to_json


class StatusFile:
    """Where the status of ``layer``'s slices along ``axis`` is kept."""

    def __init__(self, layer, axis: int):
        geom = geometry_of(layer)
        self.case_key = geom.case_key if geom is not None else ""
        self.name = layer.name
        self.axis = axis
        self.n = int(layer.data.shape[axis])

    def load(self) -> tuple[np.ndarray, str]:
        """The saved status, or all unreviewed; and a note when a saved one could not be used."""
        if not self.case_key:
            return new_status(self.n), ""
        try:
            saved = load_status(self.case_key, self.name, self.n, self.axis)
        except ValueError as exc:
            return new_status(self.n), f"review status not used ({exc})"
        return (saved if saved is not None else new_status(self.n)), ""

    def save(self, status: np.ndarray) -> bool:
        """Write ``status`` (atomically); one error line when it cannot be written."""
        from ._hub import hub
        from .trainer.atomic import atomic_write_text

        if not self.case_key:
            return False
        try:
            atomic_write_text(status_file(self.case_key, self.name, self.axis), status_to_json(status))
        except OSError as exc:
            show_error(f"napari-ian: review status not saved ({exc.strerror or exc})")
            return False
        hub.status_changed.emit()     # the Fine-tune panel counts the corrected slices anew
        return True
