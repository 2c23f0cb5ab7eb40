"""The canonical volume: one orientation, spacing in mm, and the geometry to write results back.

Every part of napari-ian (readers, phantom, trainer, CLI, plugin) holds a volume as a numpy
array in the **canonical orientation** ``CANONICAL_AXCODES = ("P", "I", "L")``:

* axis 0 runs anterior -> posterior; a fixed index on it is a **coronal** slice, the plane
  the paper evaluates on and dentists read, so it is napari's slider axis by default;
* axis 1 runs superior -> inferior (row 0 of a coronal slice is the top of the head);
* axis 2 runs from the patient's right to the patient's left, so a coronal slice is shown in
  radiological convention (patient's right on the viewer's left).

The codes follow nibabel's convention: each letter names the direction in which the index grows.
Spacing is kept beside the array in millimetres, in the same axis order. :class:`Geometry` keeps
the source file's own voxel grid (its affine in RAS+ mm and shape) and the axis flips/permutation
between it and the canonical array, so a mask is always written back on the input's own grid.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
from nibabel import orientations as ornt

CANONICAL_AXCODES = ("P", "I", "L")
AXIS_NAMES = ("anterior-posterior (coronal slices)", "superior-inferior", "right-left")
CORONAL_AXIS = 0
RIGHT, LEFT = 1, 2                      # the label values of the two nerves, everywhere
SIDES = {RIGHT: "right", LEFT: "left"}
LABELS = {0: "background", **{k: f"{v} IAN" for k, v in SIDES.items()}}


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Where a canonical array sits in the patient, and how to get back to the source grid.

    Attributes
    ----------
    native_affine : (4, 4) ndarray
        Voxel-to-world affine of the source file's own array, world = RAS+ mm (NIfTI convention;
        DICOM's LPS is converted when read).
    native_shape : tuple of int
        Shape of the source file's own array.
    source : str
        Path the volume came from ("" for generated volumes).
    kind : str
        ``"nifti"``, ``"dicom"``, ``"dicom-enhanced"`` or ``"phantom"``.
    series_description : str
        DICOM SeriesDescription or NIfTI ``descrip``; may be empty.
    frame_of_reference_uid : str
        DICOM FrameOfReferenceUID, kept so a later DICOM SEG export can refer to it.
    case_key : str
        A hash of the series/instance UIDs (DICOM) or of the file content (NIfTI): a stable key
        for the case that carries no patient identifier.
    sform_code, qform_code : int
        NIfTI codes to write back (1 = scanner, 2 = aligned); DICOM sources use 1.
    unit_mm : float
        Millimetres per unit of the source file's own affine (NIfTI ``xyzt_units``: 1000 for
        metres, 0.001 for micrometres, else 1). ``native_affine`` is always in mm; a mask is
        written back in the source's unit, so its affine is the source's, number for number.
    """

    native_affine: np.ndarray
    native_shape: tuple
    source: str = ""
    kind: str = ""
    series_description: str = ""
    frame_of_reference_uid: str = ""
    case_key: str = ""
    sform_code: int = 1
    qform_code: int = 1
    unit_mm: float = 1.0

    # -- derived ---------------------------------------------------------------------------
    @property
    def native_axcodes(self) -> tuple:
        """Orientation codes of the source array, e.g. ``('R', 'A', 'S')``."""
        return ornt.aff2axcodes(self.native_affine)

    @property
    def _to_canonical(self) -> np.ndarray:
        return ornt.ornt_transform(ornt.io_orientation(self.native_affine),
                                   ornt.axcodes2ornt(CANONICAL_AXCODES))

    @property
    def canonical_shape(self) -> tuple:
        order = self._to_canonical[:, 0].astype(int)
        shape = [0, 0, 0]
        for src_axis, dst_axis in enumerate(order):
            shape[dst_axis] = self.native_shape[src_axis]
        return tuple(int(s) for s in shape)

    @property
    def canonical_affine(self) -> np.ndarray:
        """Voxel-to-RAS+ affine of the canonical array."""
        return self.native_affine @ ornt.inv_ornt_aff(self._to_canonical, self.native_shape)

    @property
    def spacing(self) -> tuple:
        """Voxel size in mm along the canonical axes."""
        return spacing_from_affine(self.canonical_affine)

    def canonical_index(self, canonical_axis: int, native_indices) -> np.ndarray:
        """Indices along the source file's own voxel axis that becomes ``canonical_axis``, as canonical indices.

        A file whose anterior-posterior axis runs posterior to anterior numbers its slices the other
        way round from the canonical array; this maps its numbers (what any viewer of that file
        shows) to ours.
        """
        tf = self._to_canonical
        src = int(np.flatnonzero(tf[:, 0].astype(int) == canonical_axis)[0])
        n = int(self.native_shape[src])
        idx = np.asarray(native_indices, dtype=int)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"slice {int(idx.max() if idx.max() >= n else idx.min())} is outside the file's "
                             f"{n} slices along that axis")
        return idx if tf[src, 1] > 0 else n - 1 - idx

    # -- array transforms --------------------------------------------------------------------
    def to_canonical(self, native: np.ndarray) -> np.ndarray:
        """Reorient an array on the source grid into the canonical orientation (a view)."""
        if tuple(native.shape) != tuple(self.native_shape):
            raise ValueError(f"array shape {native.shape} is not the source shape {self.native_shape}")
        return ornt.apply_orientation(native, self._to_canonical)

    def to_native(self, canonical: np.ndarray) -> np.ndarray:
        """Put a canonical array (e.g. a mask) back on the source file's own grid."""
        if tuple(canonical.shape) != self.canonical_shape:
            raise ValueError(
                f"array shape {canonical.shape} does not match the image's shape {self.canonical_shape}")
        back = ornt.ornt_transform(ornt.axcodes2ornt(CANONICAL_AXCODES),
                                   ornt.io_orientation(self.native_affine))
        return np.ascontiguousarray(ornt.apply_orientation(canonical, back))

    # -- serialisation (napari layer metadata, model files, workspaces) ----------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["native_affine"] = np.asarray(self.native_affine, dtype=float).tolist()
        d["native_shape"] = [int(s) for s in self.native_shape]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Geometry":
        d = dict(d)
        d["native_affine"] = np.asarray(d["native_affine"], dtype=float)
        d["native_shape"] = tuple(int(s) for s in d["native_shape"])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


@dataclasses.dataclass
class Volume:
    """A canonical volume with its spacing (mm) and source geometry.

    Attributes
    ----------
    data : (AP, SI, RL) ndarray
        Voxel values in the canonical orientation, rescaled to real values where the source
        defines a rescale (DICOM RescaleSlope/Intercept, NIfTI scl_slope/scl_inter).
    geometry : Geometry
    identifiers : frozenset of str
        Patient identifiers found in the source headers (see :mod:`~napari_ian.trainer.phi`).
    nonfinite : int
        Number of NaN or infinite voxels (every statistic ignores them).
    modality : str
        DICOM Modality (``"MR"``, ``"CT"``...); empty where the format has none (NIfTI).
    notes : tuple of str
        What the reader noticed that the user should know (a slight shear, units converted,
        damaged files skipped), one line each; :attr:`warnings` adds the rest.
    """

    data: np.ndarray
    geometry: Geometry
    # patient identifiers of the source headers (DICOM), only to keep derived names free of them;
    # never stored, printed or written
    identifiers: frozenset = dataclasses.field(default=frozenset(), repr=False, compare=False)
    nonfinite: int = 0
    modality: str = ""
    notes: tuple = ()

    @property
    def spacing(self) -> tuple:
        return self.geometry.spacing

    @property
    def warnings(self) -> list[str]:
        """One line per thing the user should be told about this input (empty when all is well)."""
        out = list(self.notes)
        if self.nonfinite:
            out.append(f"{self.nonfinite} non-finite voxels (NaN/Inf) ignored")
        if self.modality and self.modality.upper() != "MR":
            out.append(f"modality {self.modality}, not MR: napari-ian's models are made for MR neurography, "
                       "so results on this image mean little")
        return out

    def info(self) -> dict[str, Any]:
        """A summary for ``ian info`` and the plugin: no patient identifiers."""
        from .phi import redact

        g = self.geometry
        return {
            "source": redact(g.source, self.identifiers),
            "kind": g.kind,
            "modality": self.modality or "not recorded",
            "series_description": redact(g.series_description, self.identifiers),
            "shape (AP, SI, RL)": tuple(int(s) for s in self.data.shape),
            "spacing_mm (AP, SI, RL)": tuple(round(float(s), 4) for s in self.spacing),
            "coronal_slices": int(self.data.shape[CORONAL_AXIS]),
            "source_shape": tuple(int(s) for s in g.native_shape),
            "source_orientation": "".join(g.native_axcodes),
            "canonical_orientation": "".join(CANONICAL_AXCODES),
            "dtype": str(self.data.dtype),
            "non_finite_voxels": int(self.nonfinite),
            "case_key": g.case_key,
        }


def count_nonfinite(data: np.ndarray) -> int:
    """Number of NaN and infinite values (0 for integer data, which has none)."""
    data = np.asarray(data)
    if not np.issubdtype(data.dtype, np.inexact):
        return 0
    return int(data.size - np.count_nonzero(np.isfinite(data)))


def spacing_from_affine(affine: np.ndarray) -> tuple:
    """Voxel size (mm) along each array axis: the length of each affine column."""
    return tuple(float(v) for v in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))


def canonical_affine_from_spacing(spacing, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    """The RAS+ affine of an axis-aligned canonical (P, I, L) array with this spacing.

    Canonical axis 0 grows toward posterior (-A), axis 1 toward inferior (-S), axis 2 toward
    the patient's left (-R) in RAS+ world coordinates.
    """
    sp = np.asarray(spacing, dtype=float)
    aff = np.zeros((4, 4))
    aff[1, 0] = -sp[0]  # +index along axis 0 -> toward posterior = -y (RAS)
    aff[2, 1] = -sp[1]  # axis 1 -> toward inferior = -z
    aff[0, 2] = -sp[2]  # axis 2 -> toward patient's left = -x
    aff[:3, 3] = origin
    aff[3, 3] = 1.0
    return aff
