"""npe2 writer: a labels layer to NIfTI on its source image's own grid and affine."""
from __future__ import annotations

import numpy as np

from ._layers import GEOMETRY_KEY
from .trainer.errors import VolumeWriteError
from .trainer.io_nifti import write_nifti
from .trainer.output_paths import OutputPathError, check_outputs
from .trainer.volume import Geometry
from .trainer.workspace import remember_export


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Save labels (0 background, 1 right IAN, 2 left IAN) as NIfTI on the source grid.

    The layer must carry the geometry of the image it belongs to (layers opened or created
    with napari-ian do); without it the mask's position in the patient is unknown, and it is
    refused rather than written with a made-up affine.
    """
    geom_d = (meta.get("metadata") or {}).get(GEOMETRY_KEY)
    if not geom_d:
        raise VolumeWriteError(path, "this labels layer has no source-image geometry; create it with "
                                     "napari-ian's 'New IAN labels' on the image, or open it with napari-ian")
    geometry = Geometry.from_dict(geom_d)
    try:  # never over the image the labels belong to (a save dialog pointed at the MR file)
        check_outputs({"the image these labels belong to": geometry.source or None}, {"the labels file": path})
    except OutputPathError as exc:
        raise VolumeWriteError(path, exc.problem) from None
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise VolumeWriteError(path, f"labels must be 3D, got shape {arr.shape}")
    write_nifti(path, arr, geometry, dtype=np.uint8 if arr.max(initial=0) < 256 else np.uint16,
                description="napari-ian IAN labels 1=R 2=L")
    if geometry.case_key:
        try:  # so the Case panel offers this place next time; the export itself already succeeded
            remember_export(geometry.case_key, path)
        except OSError:
            pass
    return [str(path)]
