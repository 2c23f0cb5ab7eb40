"""npe2 sample data: the synthetic MRN jaw phantom with its IAN ground truth, opened in well under 2 s.

Generating a phantom takes about 5 s, which napari would spend frozen (a sample is loaded on the
GUI thread). The sample's patient therefore ships pre-generated in ``data/phantom_seed0.npz``
(intensities stored exactly as the integers they are multiples of); other seeds are generated
by the Phantom panel, off the GUI thread. When the generator changes, regenerate the file with
``make sample-data`` (``python -m napari_ian._sample_data``); a test checks that it still matches.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ._layers import REFERENCE_COLOURS, image_layer_data, labels_layer_data

SAMPLE_SEED = 0
SAMPLE_FILE = Path(__file__).resolve().parent / "data" / f"phantom_seed{SAMPLE_SEED}.npz"


def _phantom(seed: int):
    """(image, labels, geometry) of phantom patient ``seed``, generated (~5 s)."""
    from .sample_data.dataset import phantom_geometry
    from .sample_data.phantom import make_phantom

    image, labels, spacing, _info = make_phantom(seed)
    return image, labels, phantom_geometry(image.shape, spacing, case_key=f"phantom-seed-{seed}")


def write_sample_file(path=SAMPLE_FILE, seed: int = SAMPLE_SEED) -> Path:
    """Generate phantom ``seed`` and store it with its geometry, atomically, as a compressed .npz."""
    from .sample_data.phantom import INTENSITY_SLOPE
    from .trainer.atomic import atomic_write_bytes

    image, labels, geometry = _phantom(seed)
    counts = np.round(image / INTENSITY_SLOPE)
    if not np.array_equal(counts * INTENSITY_SLOPE, image) or counts.max() > np.iinfo(np.uint16).max:
        raise ValueError("the phantom's intensities are no longer multiples of INTENSITY_SLOPE in 16 bits; "
                         "store the image as float32 instead")
    buf = io.BytesIO()
    np.savez_compressed(buf, counts=counts.astype(np.uint16), labels=labels.astype(np.uint8),
                        slope=np.float64(INTENSITY_SLOPE), seed=np.int64(seed), geometry=geometry.to_json())
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def read_sample_file(path=SAMPLE_FILE):
    """(image float32, labels uint8, geometry, seed) from a file made by :func:`write_sample_file`."""
    from .trainer.volume import Geometry

    with np.load(path) as z:
        image = z["counts"].astype(np.float32) * np.float32(z["slope"])
        return image, z["labels"], Geometry.from_dict(json.loads(str(z["geometry"]))), int(z["seed"])


def phantom_layers(seed: int = SAMPLE_SEED) -> list:
    """Image + ground-truth labels of phantom patient ``seed`` (scale = spacing in mm, axes AP/SI/RL).

    The sample's patient is read from the shipped file (the phantom package, with scipy, is not
    even imported); any other seed is generated.
    """
    shipped = read_sample_file() if SAMPLE_FILE.exists() else None
    if shipped is not None and shipped[3] == seed:
        image, labels, geom, _ = shipped
    else:
        image, labels, geom = _phantom(seed)
    truth = labels_layer_data(labels, geom, f"phantom {seed} ground truth")
    truth[1]["colormap"] = REFERENCE_COLOURS  # not the colours of a prediction or hand labels drawn over it
    return [image_layer_data(image, geom, f"phantom {seed}"), truth]


def phantom_sample() -> list:
    """File > Open Sample > napari-ian > IAN MRN phantom."""
    return phantom_layers(SAMPLE_SEED)


if __name__ == "__main__":
    print(write_sample_file())
