"""npe2 writers: a labels layer to NIfTI, a 3D Slicer segmentation or a DICOM SEG, on its source image's grid."""
from __future__ import annotations

import numpy as np

from ._layers import GEOMETRY_KEY
from .trainer.errors import VolumeWriteError
from .trainer.output_paths import OutputPathError, check_outputs
from .trainer.volume import Geometry
from .trainer.workspace import remember_export


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Save labels (0 background, 1 right IAN, 2 left IAN) on the source grid, in the format of the name.

    ``.nii.gz``/``.nii``: NIfTI; ``.seg.nrrd``/``.nrrd``: a 3D Slicer segmentation; ``.dcm``: a
    DICOM SEG of the source DICOM series, which carries the patient's identifiers (the only
    output that does; the Case panel asks first). The layer must carry the geometry of the image
    it belongs to (layers opened or created with napari-ian do); without it the mask's position
    in the patient is unknown, and it is refused rather than written with a made-up affine.
    """
    from .trainer.dicom_seg import algorithm_of_model, is_dicom_seg_path
    from .trainer.label_io import write_labels as write_any

    layer_meta = meta.get("metadata") or {}
    geom_d = layer_meta.get(GEOMETRY_KEY)
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
    model = (layer_meta.get("ian_model") or {}).get("name")
    algorithm = algorithm_of_model(model, strict=False) if model and is_dicom_seg_path(path) else None
    write_any(path, arr, geometry, algorithm=algorithm)
    if geometry.case_key:
        try:  # so the Case panel offers this place next time; the export itself already succeeded
            remember_export(geometry.case_key, path)
        except OSError:
            pass
    return [str(path)]


def write_slicer_labels(path: str, data, meta: dict) -> list[str]:
    """Save labels as a 3D Slicer segmentation (``.seg.nrrd``) on the source grid."""
    return write_labels(path, data, meta)


def write_dicom_seg_labels(path: str, data, meta: dict) -> list[str]:
    """Save labels as a DICOM SEG of the source series; the file carries the patient's identifiers."""
    from napari.utils.notifications import show_warning

    from .trainer.dicom_seg import IDENTIFIERS_NOTE

    out = write_labels(path, data, meta)
    show_warning(f"napari-ian: {path}: {IDENTIFIERS_NOTE}")
    return out
