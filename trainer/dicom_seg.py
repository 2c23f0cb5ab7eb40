"""DICOM SEG export (and import) of IAN labels, referencing the source MR series, via highdicom.

A DICOM Segmentation is what reaches a clinician's PACS viewer: one segment per nerve, coded as
SNOMED CT "Inferior alveolar nerve" with its laterality, each frame referencing the source
image it was drawn on (study, series, frame of reference, SOP instance), and the algorithm that
made it (a model's name and version) or "manual".

**This is the one napari-ian output that carries patient identifiers**: a SEG must hold the
patient and study modules of its source to be filed with it, so highdicom copies them. Every
other output of the tool stays identifier-free; callers must say so to the user before writing.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import VolumeReadError, VolumeWriteError
from .io_nrrd import SCT_ANATOMICAL_STRUCTURE, SCT_IAN, SEGMENTS
from .segment_sides import IGNORE, LEFT, RIGHT, SegmentInfo, assign_sides
from .volume import Geometry, Volume

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
IDENTIFIERS_NOTE = ("a DICOM SEG carries the patient's identifiers (name, ID, birth date) and study of its "
                    "source series, as it must to be filed with it in PACS; every other napari-ian output is "
                    "identifier-free")
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# patient/study attributes a SEG must hold (DICOM type 2: present, possibly empty); a source that
# lacks one gets it empty in the SEG, never a made-up value
_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                 "StudyDate", "StudyTime", "ReferringPhysicianName")


def is_dicom_seg_path(path) -> bool:
    """True for a ``.dcm`` output name (DICOM SEG)."""
    return str(path).lower().endswith(".dcm")


def is_dicom_seg_file(path) -> bool:
    """True when ``path`` is a DICOM file of the Segmentation Storage class."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:
        return False
    return str(ds.get("SOPClassUID", "")) == SEG_SOP_CLASS


def _source_slices(geometry: Geometry, where) -> tuple[list, list]:
    """The source series' datasets (headers) and, for each, its slice index in the native array.

    The series is found by its case key (the hash of its series and instance UIDs), so the
    headers are those of exactly the image the labels were drawn on; each file's slice index is
    computed from its ImagePositionPatient on the image's own affine.
    """
    import pydicom

    from .io_dicom import _case_key, scan_folder

    if geometry.kind == "dicom-enhanced":
        raise VolumeWriteError(where, "DICOM SEG for an Enhanced (multi-frame) source file is not supported yet; "
                                      "save as .seg.nrrd or NIfTI")
    if geometry.kind != "dicom":
        raise VolumeWriteError(where, f"a DICOM SEG needs the source DICOM series, but the image is {geometry.kind or 'not DICOM'} "
                                      "(pass the DICOM folder as the reference)")
    folder = Path(geometry.source)
    if not folder.is_dir():
        raise VolumeWriteError(where, f"the source DICOM series {folder} is not there any more; a DICOM SEG "
                                      "references its files")
    series, *_ = scan_folder(folder)
    for s in series:
        dss = [pydicom.dcmread(f, stop_before_pixels=True) for f in s.files]
        if _case_key([s.series_uid] + sorted(str(d.get("SOPInstanceUID", "")) for d in dss)) == geometry.case_key:
            break
    else:
        raise VolumeWriteError(where, f"the DICOM series the image was read from is no longer in {folder}")
    for d in dss:
        for attr in _TYPE2_COPIED:
            if attr not in d:
                setattr(d, attr, "")
    aff = _LPS_TO_RAS @ np.asarray(geometry.native_affine, float)
    step, origin = aff[:3, 0], aff[:3, 3]
    ks = []
    for d in dss:
        k = (np.asarray([float(v) for v in d.ImagePositionPatient]) - origin) @ step / (step @ step)
        ks.append(int(round(k)))
        if abs(k - ks[-1]) > 0.01 or not 0 <= ks[-1] < geometry.native_shape[0]:
            raise VolumeWriteError(where, f"{os.path.basename(str(d.filename))} does not lie on the image's slice grid")
    if len(set(ks)) != len(ks):
        raise VolumeWriteError(where, "two source files at one slice position")
    return dss, ks


def algorithm_of_model(name: str, strict: bool = True) -> dict:
    """``{"name": ..., "version": ...}`` of a registry model (version: its creation time), for :func:`write_dicom_seg`.

    An unknown or unreadable model raises the registry's one-line error when ``strict``; otherwise
    (a prediction layer whose model has since been deleted) its version is recorded as unknown.
    """
    from .modelfile import read_metadata
    from .registry import resolve_model

    try:
        meta = read_metadata(resolve_model(name))
    except (OSError, ValueError):
        if strict:
            raise
        return {"name": str(name), "version": "unknown"}
    return {"name": str(name), "version": str(meta.get("created", "unknown"))}


def _descriptions(algorithm: dict | None) -> list:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if algorithm:
        alg_type = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        ident = hd.AlgorithmIdentificationSequence(name=algorithm["name"][:64], family=codes.cid7162.ArtificialIntelligence,
                                                   version=str(algorithm.get("version", "unknown"))[:64],
                                                   source="napari-ian")
    else:
        alg_type, ident = hd.seg.SegmentAlgorithmTypeValues.MANUAL, None
    out = []
    for number, side in enumerate((RIGHT, LEFT), start=1):
        s = SEGMENTS[side]
        d = hd.seg.SegmentDescription(
            segment_number=number, segment_label=s["name"],
            segmented_property_category=_coded(SCT_ANATOMICAL_STRUCTURE), segmented_property_type=_coded(SCT_IAN),
            algorithm_type=alg_type, algorithm_identification=ident,
            tracking_uid=hd.UID(), tracking_id=s["name"],
            display_color=hd.color.CIELabColor(*_rgb_to_lab(s["color"])))
        d.SegmentedPropertyTypeModifierCodeSequence = [_coded(s["laterality"])]
        out.append(d)
    return out


def _coded(triplet):
    """A highdicom coded concept from a (scheme, value, meaning) triplet."""
    import highdicom as hd

    scheme, value, meaning = triplet
    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _rgb_to_lab(rgb) -> tuple:
    """sRGB (0-1) -> CIE L*a*b* (D65), for the segment display colour."""
    c = np.asarray(rgb, float)
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ c
    xyz /= (0.95047, 1.0, 1.08883)
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return float(116 * f[1] - 16), float(500 * (f[0] - f[1])), float(200 * (f[1] - f[2]))


def write_dicom_seg(path, canonical: np.ndarray, geometry: Geometry, algorithm: dict | None = None) -> Path:
    """Write labels (1 = right IAN, 2 = left IAN) as a DICOM SEG of their source series, atomically.

    The SEG carries the source's patient and study identifiers (see the module note): tell the
    user before calling this.

    Parameters
    ----------
    path : path-like
        Output ``.dcm`` file.
    canonical : (AP, SI, RL) ndarray
        Labels on the canonical array of ``geometry``.
    geometry : Geometry
        Geometry of a classic DICOM series read by napari-ian (its folder must still exist).
    algorithm : dict, optional
        ``{"name": model name, "version": ...}`` for a model's output (:func:`algorithm_of_model`);
        None for manual labels.

    Raises
    ------
    VolumeWriteError
        Not a DICOM source, source files missing or changed, labels not on its grid, or empty.
    """
    import highdicom as hd

    from .. import __version__

    path = Path(path)
    arr = np.asarray(canonical)
    bad = sorted(set(np.unique(arr).tolist()) - {0, RIGHT, LEFT})
    if bad:
        raise VolumeWriteError(path, f"label values {bad} are not IAN labels (0, 1 = right, 2 = left)")
    try:
        native = geometry.to_native(arr)
    except ValueError as exc:
        raise VolumeWriteError(path, str(exc)) from None
    if not native.any():
        raise VolumeWriteError(path, "the labels are empty: a DICOM SEG needs at least one labelled voxel")
    dss, ks = _source_slices(geometry, path)
    rows, cols = native.shape[1:]
    if any((int(d.Rows), int(d.Columns)) != (rows, cols) for d in dss):
        raise VolumeWriteError(path, "the source files' rows and columns do not match the labels' grid")
    frames = native[ks]   # frame i belongs to source file i
    stacked = np.stack([frames == RIGHT, frames == LEFT], axis=-1).astype(np.uint8)
    with warnings.catch_warnings():
        # the source's patient name is copied as it is; highdicom's advice on name format is not ours to act on
        warnings.filterwarnings("ignore", message=".*person name.*", category=UserWarning)
        seg = _segmentation(hd, dss, stacked, algorithm, __version__)
    try:
        with atomic_path(path, suffix=".dcm") as tmp:
            seg.save_as(tmp)
    except OSError as exc:
        raise VolumeWriteError(path, exc.strerror or str(exc)) from None
    return path


def _segmentation(hd, dss, stacked, algorithm, version):
    return hd.seg.Segmentation(
        source_images=dss, pixel_array=stacked, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_descriptions(algorithm), series_instance_uid=hd.UID(), series_number=9901,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="napari-ian",
        manufacturer_model_name="napari-ian", software_versions=version, device_serial_number="none",
        content_label="IAN", content_description="Inferior alveolar nerves, 1 = right, 2 = left",
        series_description="IAN segmentation (napari-ian)")


def read_dicom_seg(path, reference: Volume, side_map: dict | None = None) -> tuple[np.ndarray, list[str]]:
    """Labels of a DICOM SEG on the canonical grid of the DICOM series it references.

    Parameters
    ----------
    path : path-like
        The SEG file.
    reference : Volume
        The referenced series, read with napari-ian (classic DICOM).
    side_map : dict, optional
        Segment label -> side (:func:`~.segment_sides.parse_side_map`); otherwise each segment's
        side comes from its label or its laterality code.

    Returns
    -------
    (canonical labels uint8, report lines)
    """
    import highdicom as hd

    path = Path(path)
    try:
        seg = hd.seg.segread(path)
    except Exception as exc:
        raise VolumeReadError(path, f"not a readable DICOM SEG ({' '.join(str(exc).split())})") from None
    g = reference.geometry
    if g.kind != "dicom":
        raise VolumeReadError(path, "a DICOM SEG is read onto the DICOM series it references: pass that series' "
                                    "folder as the reference")
    if g.frame_of_reference_uid and str(seg.get("FrameOfReferenceUID", "")) not in ("", g.frame_of_reference_uid):
        raise VolumeReadError(path, "its frame of reference is not the reference series' (another study or scan)")
    try:
        dss, ks = _source_slices(g, path)
    except VolumeWriteError as exc:
        raise VolumeReadError(path, exc.problem) from None
    uids = [str(d.SOPInstanceUID) for d in dss]
    referenced = {str(u[2]) for u in seg.get_source_image_uids()}
    if not referenced & set(uids):
        raise VolumeReadError(path, "it references none of the reference series' images")
    numbers = list(seg.segment_numbers)
    infos = []
    for n in numbers:
        d = seg.get_segment_description(n)
        codes = [(c.CodingSchemeDesignator, c.CodeValue, c.CodeMeaning)
                 for c in d.get("SegmentedPropertyTypeModifierCodeSequence", [])]
        infos.append(SegmentInfo(name=str(d.SegmentLabel), id=str(n), label_value=n, codes=tuple(codes)))
    sides, report = assign_sides(infos, side_map, path)
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=numbers,
                                               assert_missing_frames_are_empty=True)
    frames = np.zeros(pixels.shape[:3], np.uint8)   # frame i: source file i
    for j, side in sides.items():
        if side == IGNORE:
            continue
        hit = pixels[..., j] > 0
        clash = hit & (frames != 0) & (frames != side)
        if clash.any():
            raise ValueError(f"{path}: {int(clash.sum())} voxels are in both a right and a left segment")
        frames[hit] = side
    native = np.zeros(g.native_shape, np.uint8)
    native[ks] = frames
    return np.ascontiguousarray(g.to_canonical(native)), report
