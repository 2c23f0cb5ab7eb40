"""npe2 sample data: the synthetic MRN jaw phantom with its IAN ground truth."""
from __future__ import annotations

from ._layers import image_layer_data, labels_layer_data
from .sample_data.dataset import phantom_geometry
from .sample_data.phantom import make_phantom

SAMPLE_SEED = 0


def phantom_layers(seed: int = SAMPLE_SEED) -> list:
    """Image + ground-truth labels of phantom patient ``seed`` (scale = spacing in mm)."""
    image, labels, spacing, _info = make_phantom(seed)
    geom = phantom_geometry(image.shape, spacing, case_key=f"phantom-seed-{seed}")
    return [image_layer_data(image, geom, f"phantom {seed}"),
            labels_layer_data(labels, geom, f"phantom {seed} ground truth")]


def phantom_sample() -> list:
    """File > Open Sample > napari-ian > IAN MRN phantom."""
    return phantom_layers(SAMPLE_SEED)
