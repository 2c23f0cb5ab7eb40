"""Rehearsal for fine-tuning: crops of phantoms like those the base model learnt from.

Fine-tuning on one case's corrections teaches that case and makes the model forget some of what
it knew (catastrophic forgetting). Mixing in a share of crops from the kind of data the base model
was trained on (rehearsal, or replay) keeps that knowledge at no extra training time. For a model
trained on randomised synthetic renders (``ian train`` without ``--data``), those crops come from
random looks of a training anatomy shipped with the package (one of the anatomies such a model was
trained on; rasterising a new one takes ~20 s, rendering a look of it 1-4 s on a 2-core CPU).
The renders depend only on the working grid, their number and the seed, so the last set made is
kept (about 40 MB) and a second fine-tune in the same session, the plugin's usual case, reuses it.
"""
from __future__ import annotations

import json
import threading
from importlib.resources import files

import numpy as np

# the package's data folder (napari_ian/data), in a source tree and when installed alike
ANATOMY_FILE = files("napari_ian") / "data" / "rehearsal_anatomy_100000.npz"


def rehearsal_volumes(pipeline, metadata: dict, n: int = 2, seed: int = 0) -> list:
    """``n`` randomised renders of the shipped training anatomy on ``pipeline``'s working grid,
    as ``(volume, nerve mask 0/1)`` pairs; none (an empty list) when the base model was not
    trained on synthetic renders, the pipeline has no working grid, or the grids differ."""
    from ..sample_data.synth import load_anatomy
    from .synthetic import validation_volumes

    training = metadata.get("training") or {}
    spacing = getattr(pipeline, "spacing_mm", None)
    if n < 1 or training.get("data") != "synthetic" or spacing is None or not ANATOMY_FILE.is_file():
        return []
    key = (json.dumps(pipeline.to_dict(), sort_keys=True), n, seed)
    with _LOCK:
        if _LAST.get("key") != key:
            _LAST.clear()
            anatomy = load_anatomy(ANATOMY_FILE)
            if not np.allclose(anatomy.spacing, spacing):
                return []
            # the renders validation uses, of any style family (looks seeded seed * 1000 + 0, 1, ...)
            looks = validation_volumes([anatomy], pipeline, per_anatomy=n, seed=seed * 1000, families=(None,))
            for prepared, mask in looks:        # shared between fine-tunes: nobody may change them
                prepared.volume.flags.writeable = mask.flags.writeable = False
            _LAST.update(key=key, looks=[(prepared.volume, mask) for prepared, mask in looks])
        return list(_LAST["looks"])


_LOCK = threading.Lock()
_LAST: dict = {}        # the last renders made: {"key": ..., "looks": [(volume, mask), ...]}
