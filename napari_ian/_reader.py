"""npe2 reader: NIfTI files, DICOM series folders and multi-frame DICOM files; label files from
3D Slicer (``.seg.nrrd``, ``.nrrd``) and DICOM SEG, put onto an open image of the viewer."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from napari.utils.notifications import show_error, show_warning

from ._layers import volume_layer_data
from .trainer.dicom_seg import is_dicom_seg_file
from .trainer.errors import VolumeReadError, VolumeWarning
from .trainer.io import read_volume
from .trainer.io_dicom import has_dicom_magic
from .trainer.io_nifti import is_nifti_path
from .trainer.io_nrrd import is_nrrd_path
from .trainer.phi import safe_name

# folders holding these are left to napari's own readers (image stacks)
_OTHER_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".npy", ".zarr"}


def _claims_folder(folder: Path) -> bool:
    """A folder with DICOM files, or one napari's own readers would not read either."""
    other = False
    for i, (root, _dirs, names) in enumerate(os.walk(folder)):
        for name in names[:200]:
            p = Path(root) / name
            if p.suffix.lower() in _OTHER_IMAGE_SUFFIXES:
                other = True
            elif has_dicom_magic(p) or p.suffix.lower() == ".dcm":
                return True
        if i > 20:
            break
    return not other


def get_reader(path):
    """Return a reader function for paths napari-ian can open, else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if is_nifti_path(p):
        return read_layers
    if is_nrrd_path(p):
        return read_label_file
    if p.is_dir():
        return read_layers if _claims_folder(p) else None
    if p.is_file() and (p.suffix.lower() == ".dcm" or has_dicom_magic(p)):
        return read_label_file if is_dicom_seg_file(p) else read_layers
    return None


def _layer_name(p: Path, vol) -> str:
    """The file or folder name, unless it (or the series description) names the patient.

    DICOM exports are often filed under the patient's name or ID; the layer name travels into
    autosaves and default export names, so then a neutral name with a hash of the series is used.
    """
    name = p.name
    for suffix in (".nii.gz", ".nii", ".dcm"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    neutral = f"MR series {vol.geometry.case_key[:8]}" if vol.geometry.case_key else "MR volume"
    description = safe_name(vol.geometry.series_description, vol.identifiers, "")
    return safe_name(name, vol.identifiers, "") or description or neutral


def read_layers(path):
    """Read one volume as a layer in canonical orientation with scale = spacing (mm).

    Problems are shown as one notification line naming the path; nothing is loaded then.
    """
    if isinstance(path, (list, tuple)):
        path = path[0]
    p = Path(path)
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always", VolumeWarning)
            vol = read_volume(p)
    except VolumeReadError as exc:
        show_error(str(exc))
        return []
    for w in said:   # non-finite voxels, not MR, a sheared grid: one notification each
        if issubclass(w.category, VolumeWarning):
            show_warning(f"napari-ian: {w.message}")
    return [volume_layer_data(vol, _layer_name(p, vol))]


OWN_GRID = "(its own grid, no image)"


def _ask(title: str, question: str, items: list) -> str | None:
    """One choice from a list in a small dialog; None when cancelled."""
    from qtpy.QtWidgets import QInputDialog

    choice, ok = QInputDialog.getItem(None, title, question, items, 0, False)
    return choice if ok else None


def _reference_layer(path: Path, needs_dicom: bool):
    """The open image the labels go onto: the only one, or the user's choice; OWN_GRID or None (cancelled).

    A DICOM SEG can only go onto a DICOM series in its own frame of reference.
    """
    import napari
    import pydicom
    from napari.layers import Image

    from ._layers import geometry_of

    frame_uid = str(pydicom.dcmread(path, stop_before_pixels=True).get("FrameOfReferenceUID", "")) if needs_dicom else ""
    viewer = napari.current_viewer()
    images = [ly for ly in (viewer.layers if viewer is not None else []) if isinstance(ly, Image)
              and ly.ndim == 3 and geometry_of(ly) is not None
              and (not needs_dicom or (geometry_of(ly).kind == "dicom"
                                       and geometry_of(ly).frame_of_reference_uid in ("", frame_uid)))]
    if not images:
        return OWN_GRID
    if len(images) == 1 and needs_dicom:
        return images[0]
    names = [ly.name for ly in reversed(images)] + ([] if needs_dicom else [OWN_GRID])
    choice = _ask("napari-ian: open labels", f"Put the labels of {path.name} onto which image?", names)
    if choice is None or choice == OWN_GRID:
        return choice
    return next(ly for ly in images if ly.name == choice)


def read_label_file(path):
    """A Slicer segmentation or DICOM SEG as an IAN labels layer on an open image's grid.

    The user chooses the image when several are open (a ``.seg.nrrd`` may also stay on its own
    grid); segments whose names do not say their side are asked for, one by one; the mapping used
    is shown. Problems are one notification line; nothing is loaded then.
    """
    from napari.utils.notifications import show_info

    from ._layers import geometry_of, labels_layer_data
    from .trainer.label_io import read_labels
    from .trainer.segment_sides import SIDE_NAMES, UnknownSideError
    from .trainer.volume import Volume

    if isinstance(path, (list, tuple)):
        path = path[0]
    p = Path(path)
    is_seg = not is_nrrd_path(p)
    ref_layer = _reference_layer(p, needs_dicom=is_seg)
    if ref_layer is None:
        return []
    if ref_layer == OWN_GRID and is_seg:
        show_error(f"{p}: a DICOM SEG goes onto the DICOM series it references, which is not open: open that "
                   "series first")
        return []
    reference = None if ref_layer == OWN_GRID else Volume(data=ref_layer.data, geometry=geometry_of(ref_layer))
    side_map = {}
    while True:
        try:
            vol, report = read_labels(p, reference, side_map)
            break
        except UnknownSideError as exc:
            for name in exc.names:
                sides = {SIDE_NAMES[v]: v for v in (1, 2, 0)}
                choice = _ask("napari-ian: which side?", f"Which side is segment '{name}'? Its name does not say.",
                              list(sides))
                if choice is None:
                    show_info(f"napari-ian: {p.name} not loaded (no side chosen for '{name}')")
                    return []
                side_map[name.strip().lower()] = sides[choice]
        except (VolumeReadError, ValueError) as exc:
            show_error(" ".join(str(exc).split()))
            return []
    show_info(f"napari-ian: {p.name}: " + "; ".join(report))
    base = p.name[: -len(".seg.nrrd")] if p.name.lower().endswith(".seg.nrrd") else p.stem
    name = f"{ref_layer.name} IAN labels ({'DICOM SEG' if is_seg else 'Slicer'})" if reference is not None else base
    data, kwargs, kind = labels_layer_data(vol.data, vol.geometry, name)
    if reference is not None:
        kwargs["scale"], kwargs["translate"] = tuple(ref_layer.scale), tuple(ref_layer.translate)
    return [(data, kwargs, kind)]
