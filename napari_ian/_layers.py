"""Turn canonical volumes into napari layer data (scale = spacing in mm, geometry in metadata)."""
from __future__ import annotations

import numpy as np

from .trainer.volume import LABELS, Geometry, Volume

GEOMETRY_KEY = "ian_geometry"
# napari's names for the canonical array axes (nibabel codes P, I, L: the index grows that way)
AXIS_LABELS = ("AP", "SI", "RL")
UNITS = ("mm", "mm", "mm")
# a reference (ground truth) in other colours than napari's for labels 1 and 2, which predictions
# and hand labels get: gold for the right nerve, green for the left
REFERENCE_COLOURS = {None: "transparent", 0: "transparent", 1: "gold", 2: "lawngreen"}


def on_grid_of(layer) -> dict:
    """Layer kwargs that put a new layer on ``layer``'s grid: scale and position in mm, axis names."""
    kwargs = {"scale": tuple(layer.scale), "translate": tuple(layer.translate)}
    if layer.ndim == 3:
        kwargs.update(axis_labels=AXIS_LABELS, units=UNITS)
    return kwargs


def looks_like_labels(data: np.ndarray) -> bool:
    """Integer volumes with a handful of values (0/1/2 masks) open as Labels layers."""
    if not (np.issubdtype(data.dtype, np.integer) or data.dtype == bool):
        return False
    sample = data[:: max(1, data.shape[0] // 16)]
    values = np.unique(sample)
    return values.size <= 16 and values.min() >= 0 and values.max() <= 255


def image_layer_data(data: np.ndarray, geometry: Geometry, name: str) -> tuple:
    """(data, kwargs, 'image') for an MR volume in canonical orientation."""
    sample = data[:: max(1, data.shape[0] // 32)]
    finite = sample[np.isfinite(sample)] if np.issubdtype(sample.dtype, np.inexact) else sample
    # NaN/Inf voxels are ignored (napari cannot draw a contrast range of NaN)
    lo, hi = (float(v) for v in np.percentile(finite, (0.5, 99.7))) if finite.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    meta = {GEOMETRY_KEY: geometry.to_dict()}
    return (data, {"name": name, "scale": tuple(geometry.spacing), "axis_labels": AXIS_LABELS, "units": UNITS,
                   "colormap": "gray", "contrast_limits": (lo, hi), "metadata": meta}, "image")


def labels_layer_data(data: np.ndarray, geometry: Geometry, name: str) -> tuple:
    """(data, kwargs, 'labels') for an IAN mask (1 = right, 2 = left)."""
    meta = {GEOMETRY_KEY: geometry.to_dict(), "ian_label_meaning": {str(k): v for k, v in LABELS.items()}}
    return (np.asarray(data).astype(np.uint8, copy=False),
            {"name": name, "scale": tuple(geometry.spacing), "axis_labels": AXIS_LABELS, "units": UNITS,
             "metadata": meta, "opacity": 0.6}, "labels")


def volume_layer_data(vol: Volume, name: str) -> tuple:
    if looks_like_labels(vol.data):
        return labels_layer_data(vol.data, vol.geometry, name)
    return image_layer_data(vol.data, vol.geometry, name)


def geometry_of(layer) -> Geometry | None:
    """The source geometry stored on a layer by napari-ian, or None."""
    d = (getattr(layer, "metadata", None) or {}).get(GEOMETRY_KEY)
    return Geometry.from_dict(d) if d else None


def image_layers(viewer) -> list:
    """The viewer's 3D grey-value image layers (what a case can be)."""
    from napari.layers import Image

    return [ly for ly in viewer.layers if isinstance(ly, Image) and ly.ndim == 3 and not ly.rgb]


def labels_layers(viewer) -> list:
    """The viewer's 3D labels layers."""
    from napari.layers import Labels

    return [ly for ly in viewer.layers if isinstance(ly, Labels) and ly.ndim == 3]
