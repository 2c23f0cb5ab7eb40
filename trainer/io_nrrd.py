"""3D Slicer segmentations (``.seg.nrrd``) and label ``.nrrd`` files: read any, write Slicer's own.

Reading follows the NRRD format (any anatomical ``space``, any axis order and direction, a
``list`` axis of layers when segments overlap) and 3D Slicer's segmentation header convention
(``SegmentN_Name``, ``_ID``, ``_LabelValue``, ``_Layer``, ``_Color``, ``_Extent``, ``_Tags``),
documented in Slicer's developer guide under "Segmentation labelmap file format". Segments
become our labels (1 = right IAN, 2 = left IAN) by name (see :mod:`.segment_sides`).

Writing produces what Slicer writes itself: ``space: left-posterior-superior``, the source
image's own voxel grid (``space directions``, ``space origin``), one layer with label values
1 and 2, and a segment header for each nerve (name, colour, extent, SNOMED CT terminology), so
Slicer opens it in place on the image it was drawn on.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import VolumeReadError, VolumeWriteError
from .io_nifti import file_sha256
from .segment_sides import IGNORE, LEFT, RIGHT, SCT_LEFT, SCT_RIGHT, SegmentInfo, assign_sides
from .volume import Geometry, Volume

NRRD_SUFFIXES = (".seg.nrrd", ".nrrd")

# NRRD "space" -> matrix taking that space's coordinates to RAS+ (the world of Geometry)
_SPACE_TO_RAS = {
    "right-anterior-superior": np.diag([1.0, 1.0, 1.0]),
    "left-anterior-superior": np.diag([-1.0, 1.0, 1.0]),
    "left-posterior-superior": np.diag([-1.0, -1.0, 1.0]),
}
_SPACE_ALIASES = {"ras": "right-anterior-superior", "las": "left-anterior-superior",
                  "lps": "left-posterior-superior"}
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

# Segment descriptions written for our labels. SNOMED CT 280261005 "Inferior alveolar nerve" is
# the concept UBERON:0018405 (inferior alveolar nerve) is cross-referenced to in UBERON's SNOMED CT
# bridge (obophenotype/uberon, src/ontology/bridge/uberon-bridge-to-sctid); 91723000 "Anatomical
# structure" is the category DICOM CID 7150 gives for anatomy.
SCT_ANATOMICAL_STRUCTURE = ("SCT", "91723000", "Anatomical Structure")
SCT_IAN = ("SCT", "280261005", "Inferior alveolar nerve")
SEGMENTS = {
    RIGHT: {"name": "right IAN", "id": "right_IAN", "color": (0.95, 0.8, 0.1), "laterality": SCT_RIGHT},
    LEFT: {"name": "left IAN", "id": "left_IAN", "color": (0.1, 0.75, 0.95), "laterality": SCT_LEFT},
}


def is_nrrd_path(path) -> bool:
    """True for names ending in ``.nrrd`` (``.seg.nrrd`` included)."""
    return str(path).lower().endswith(".nrrd")


@dataclasses.dataclass
class NrrdSegmentation:
    """A segmentation file as stored: its layers on its own grid, and its segments.

    Attributes
    ----------
    layers : (L, I, J, K) ndarray
        One 3D label volume per layer, indexed as the file's own axes (fastest first).
    affine : (4, 4) ndarray
        Voxel-to-RAS+ affine of the 3D axes.
    segments : list of SegmentInfo
        Empty for a plain label volume (no ``SegmentN_`` fields).
    """

    layers: np.ndarray
    affine: np.ndarray
    segments: list

    @property
    def shape(self) -> tuple:
        return tuple(int(s) for s in self.layers.shape[1:])


def _codes_from_tags(tags: str) -> tuple:
    """(scheme, value, meaning) triplets of a ``TerminologyEntry`` tag (laterality codes among them)."""
    codes = []
    for tag in str(tags).split("|"):
        key, _, value = tag.partition(":")
        if key.strip() != "TerminologyEntry":
            continue
        for part in value.split("~"):
            bits = part.split("^")
            if len(bits) == 3 and bits[1]:
                codes.append(tuple(bits))
    return tuple(codes)


def _segments_from_header(header: dict, where) -> list:
    fields: dict[int, dict] = {}
    for key, value in header.items():
        if key.startswith("Segment") and "_" in key:
            head, _, field = key.partition("_")
            if head[7:].isdigit():
                fields.setdefault(int(head[7:]), {})[field] = str(value)
    segments = []
    for idx in sorted(fields):
        f = fields[idx]
        try:
            segments.append(SegmentInfo(name=f.get("Name", "").strip(), id=f.get("ID", "").strip(),
                                        label_value=int(f.get("LabelValue", 1)), layer=int(f.get("Layer", 0)),
                                        codes=_codes_from_tags(f.get("Tags", ""))))
        except ValueError:
            raise VolumeReadError(where, f"segment {idx} has a LabelValue or Layer that is not a whole number") from None
    return segments


def read_nrrd_segmentation(path) -> NrrdSegmentation:
    """Read a ``.seg.nrrd`` or label ``.nrrd`` as stored (no resampling, no side mapping).

    Raises
    ------
    VolumeReadError
        Missing or unreadable file, no anatomical space (``scanner-xyz``, ``3D-right-handed`` or
        no ``space`` at all: its voxels cannot be placed in the patient), not 3D, non-integer
        voxels, or segments pointing at layers that do not exist.
    """
    import nrrd

    path = Path(path)
    if not path.exists():
        raise VolumeReadError(path, "no such file")
    try:
        data, header = nrrd.read(str(path), index_order="F")
    except Exception as exc:  # pynrrd raises NRRDError, ValueError, OSError, zlib errors...
        raise VolumeReadError(path, f"not a readable NRRD file ({' '.join(str(exc).split())})") from None
    space = str(header.get("space", "")).strip().lower()
    space = _SPACE_ALIASES.get(space, space).removesuffix("-time")
    if space not in _SPACE_TO_RAS:
        what = f"space '{header['space']}'" if "space" in header else "no 'space' field"
        raise VolumeReadError(path, f"{what}: its voxels are not placed in patient coordinates "
                                    "(need right-anterior-superior, left-anterior-superior or left-posterior-superior)")
    if not np.issubdtype(data.dtype, np.integer) and data.dtype != bool:
        raise VolumeReadError(path, f"voxels are {data.dtype}, not labels (whole numbers)")
    if "space directions" not in header:
        raise VolumeReadError(path, "no 'space directions': its voxel size and axis directions are unknown")
    dirs = np.asarray(header["space directions"], dtype=float)
    spatial = [i for i in range(data.ndim) if i < len(dirs) and np.all(np.isfinite(dirs[i]))]
    if len(spatial) != 3 or data.ndim not in (3, 4):
        raise VolumeReadError(path, f"a {len(spatial)}D image with {data.ndim} axes, not a 3D label volume "
                                    "(with an optional list axis of layers)")
    other = [i for i in range(data.ndim) if i not in spatial]
    layers = np.moveaxis(data, other, [0] * len(other)) if other else data[np.newaxis]
    rot = _SPACE_TO_RAS[space] @ dirs[spatial].T    # columns: step of each spatial axis, in RAS
    if abs(np.linalg.det(rot)) < 1e-9:
        raise VolumeReadError(path, "its space directions do not span 3D (zero or parallel axes)")
    affine = np.eye(4)
    affine[:3, :3] = rot
    affine[:3, 3] = _SPACE_TO_RAS[space] @ np.asarray(header.get("space origin", np.zeros(3)), dtype=float)
    segments = _segments_from_header(header, path)
    for s in segments:
        if not 0 <= s.layer < layers.shape[0]:
            raise VolumeReadError(path, f"segment '{s.name or s.id}' is in layer {s.layer}, the file has "
                                        f"{layers.shape[0]}")
    return NrrdSegmentation(layers=np.asarray(layers), affine=affine, segments=segments)


def segmentation_labels(seg: NrrdSegmentation, side_map: dict | None, where) -> tuple[np.ndarray, list[str]]:
    """Our labels (0/1/2) on the segmentation's own grid, and one report line per segment.

    A file without segment headers is a plain label volume: its values 1 and 2 are taken as our
    right and left (said so in the report); other values need ``side_map`` (by label value).

    Raises
    ------
    ValueError
        A segment whose side is unknown (one line asking which side), or voxels in both a right
        and a left segment.
    """
    segments = seg.segments
    report = []
    if not segments:
        values = [int(v) for v in np.unique(seg.layers[0]) if v != 0]
        segments = [SegmentInfo(name="", label_value=v) for v in values]
        if not side_map and set(values) <= {RIGHT, LEFT}:
            side_map = {str(RIGHT): RIGHT, str(LEFT): LEFT}
            report.append("no segment names in the file: label values read as napari-ian's 1 = right IAN, "
                          "2 = left IAN")
    sides, lines = assign_sides(segments, side_map, where)
    report += lines
    masks = {RIGHT: np.zeros(seg.shape, bool), LEFT: np.zeros(seg.shape, bool)}
    for i, s in enumerate(segments):
        if sides[i] != IGNORE:
            masks[sides[i]] |= seg.layers[s.layer] == s.label_value
    both = int(np.count_nonzero(masks[RIGHT] & masks[LEFT]))
    if both:
        raise ValueError(f"{where}: {both} voxels are in both a right and a left segment; "
                         "fix the segments, or set one of them to be ignored")
    labels = np.zeros(seg.shape, np.uint8)
    labels[masks[RIGHT]] = RIGHT
    labels[masks[LEFT]] = LEFT
    return labels, report


def segmentation_geometry(path, seg: NrrdSegmentation) -> Geometry:
    """The geometry of a segmentation's own grid (for output on that grid when no image is given)."""
    return Geometry(native_affine=seg.affine, native_shape=seg.shape, source=os.fspath(path), kind="nrrd",
                    case_key=file_sha256(path))


def read_nrrd_labels(path, side_map: dict | None = None) -> tuple[Volume, list[str]]:
    """A ``.seg.nrrd`` / label ``.nrrd`` as our labels on its own grid, canonical orientation.

    Returns
    -------
    (Volume, report)
        Canonical labels with the segmentation's geometry, and the segment -> label report.
    """
    seg = read_nrrd_segmentation(path)
    labels, report = segmentation_labels(seg, side_map, path)
    geom = segmentation_geometry(path, seg)
    return Volume(data=np.ascontiguousarray(geom.to_canonical(labels)), geometry=geom), report


# -- writing ---------------------------------------------------------------------------------
def _extent(mask: np.ndarray) -> str:
    """Slicer's ``SegmentN_Extent``: min/max index per axis of the non-empty region (empty: 0 -1 ...)."""
    if not mask.any():
        return "0 -1 0 -1 0 -1"
    out = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        out += [int(hit[0]), int(hit[-1])]
    return " ".join(map(str, out))


def _terminology(side: int) -> str:
    """A Slicer ``TerminologyEntry`` tag: anatomical structure / inferior alveolar nerve / laterality."""
    code = "^".join
    return ("TerminologyEntry:Segmentation category and type - DICOM master list"
            f"~{code(SCT_ANATOMICAL_STRUCTURE)}~{code(SCT_IAN)}~{code(SEGMENTS[side]['laterality'])}"
            "~Anatomic codes - DICOM master list~^^~^^")


def seg_nrrd_header(native: np.ndarray, geometry: Geometry) -> dict:
    """The NRRD header (LPS space, the source grid, one segment per nerve) for labels on ``geometry``'s grid."""
    aff_lps = LPS_TO_RAS @ np.asarray(geometry.native_affine, float)
    header = {
        "space": "left-posterior-superior",
        "kinds": ["domain", "domain", "domain"],
        "space directions": aff_lps[:3, :3].T,   # row i: the step of array axis i
        "space origin": aff_lps[:3, 3],
        "encoding": "gzip",
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_SourceRepresentation": "Binary labelmap",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
        "Segmentation_ReferenceImageExtentOffset": "0 0 0",
    }
    for n, side in enumerate((RIGHT, LEFT)):
        s = SEGMENTS[side]
        header.update({
            f"Segment{n}_ID": s["id"], f"Segment{n}_Name": s["name"], f"Segment{n}_NameAutoGenerated": "0",
            f"Segment{n}_Color": " ".join(f"{c:g}" for c in s["color"]), f"Segment{n}_ColorAutoGenerated": "0",
            f"Segment{n}_LabelValue": str(side), f"Segment{n}_Layer": "0",
            f"Segment{n}_Extent": _extent(native == side), f"Segment{n}_Tags": _terminology(side) + "|",
        })
    return header


def write_seg_nrrd(path, canonical: np.ndarray, geometry: Geometry) -> Path:
    """Write labels (1 = right IAN, 2 = left IAN) as a 3D Slicer segmentation on the source grid, atomically.

    Parameters
    ----------
    path : path-like
        ``.seg.nrrd`` (or ``.nrrd``: the same content, which Slicer also opens as a label volume).
    canonical : (AP, SI, RL) ndarray
        Labels on the canonical array of ``geometry``; only 0, 1 and 2.
    geometry : Geometry
        The image the labels belong to: the file takes its own grid, axis order and position.
    """
    import nrrd

    path = Path(path)
    if not is_nrrd_path(path):
        raise VolumeWriteError(path, "output must end in .seg.nrrd or .nrrd")
    arr = np.asarray(canonical)
    bad = sorted(set(np.unique(arr).tolist()) - {0, RIGHT, LEFT})
    if bad:
        raise VolumeWriteError(path, f"label values {bad} are not IAN labels (0, 1 = right, 2 = left)")
    try:
        native = geometry.to_native(arr).astype(np.uint8, copy=False)
    except ValueError as exc:
        raise VolumeWriteError(path, str(exc)) from None
    header = seg_nrrd_header(native, geometry)
    try:
        with atomic_path(path) as tmp:
            # level 1: a label volume is mostly zeros, so it is as small as at level 9 and far faster
            nrrd.write(str(tmp), native, header, index_order="F", compression_level=1)
    except OSError as exc:
        raise VolumeWriteError(path, exc.strerror or str(exc)) from None
    return path
