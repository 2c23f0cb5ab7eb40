"""DICOM series folders (classic single-frame and Enhanced multi-frame MR) into canonical volumes.

The geometry comes from the headers alone: ImageOrientationPatient gives the row and column
directions, ImagePositionPatient the position of every slice, PixelSpacing the in-plane size.
Slices are sorted along the slice normal and the slice step is measured from the real
positions (SliceThickness is not spacing). Anything that is not one regular 3D grid is refused
with one line naming the folder or file and the problem, never read with a wrong geometry.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from .errors import GeometryMissingError, VolumeReadError
from .phi import identifiers_of
from .volume import Geometry, Volume

# Relative tolerances for the geometry checks. Scanners write positions with ~1e-5 mm noise;
# a missing slice shows as a 100 % gap, so 1 % separates the two with a wide margin.
ORIENTATION_TOL = 1e-4
SPACING_RTOL = 0.01
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclasses.dataclass
class SeriesSummary:
    """One series found in a folder (for listing, before any pixel data is read)."""

    series_uid: str
    description: str
    modality: str
    files: list
    n_frames: int

    def line(self) -> str:
        desc = self.description or "(no description)"
        return f"{desc} [{self.modality}, {len(self.files)} file(s), {self.n_frames} frame(s), UID …{self.series_uid[-12:]}]"


def _is_image(ds) -> bool:
    return "PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds


def _n_frames(ds) -> int:
    """NumberOfFrames, or 1 when absent or not a number (some files hold e.g. '1A')."""
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def _read_header(path):
    try:
        return pydicom.dcmread(path, stop_before_pixels=False, defer_size="1 KB")
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, AttributeError, KeyError):
        return None


def scan_folder(folder, recursive: bool = True) -> tuple[list[SeriesSummary], list[str]]:
    """Find the DICOM image series in a folder (and its subfolders when ``recursive``).

    Returns
    -------
    series : list of SeriesSummary
        Image series, largest first.
    non_image : list of str
        DICOM files without pixel data (structured reports, RT structures, DICOMDIR, ...).
    """
    folder = Path(folder)
    groups: dict[str, SeriesSummary] = {}
    non_image: list[str] = []
    for root, dirs, names in os.walk(folder):
        if not recursive:
            dirs.clear()
        for name in sorted(names):
            path = os.path.join(root, name)
            ds = _read_header(path)
            if ds is None:
                continue
            if not _is_image(ds):
                non_image.append(path)
                continue
            uid = str(ds.get("SeriesInstanceUID", "")) or f"(no SeriesInstanceUID) {path}"
            summary = groups.get(uid)
            if summary is None:
                summary = groups[uid] = SeriesSummary(
                    uid, str(ds.get("SeriesDescription", "")), str(ds.get("Modality", "")), [], 0)
            summary.files.append(path)
            summary.n_frames += _n_frames(ds)
    series = sorted(groups.values(), key=lambda s: -s.n_frames)
    return series, non_image


def read_dicom_folder(folder, series_uid: str | None = None, recursive: bool = True) -> Volume:
    """Read one DICOM image series from a folder (or a single Enhanced multi-frame file).

    Parameters
    ----------
    folder : path-like
        A folder holding one series, or one multi-frame DICOM file.
    series_uid : str, optional
        Which series to read when the folder holds several (otherwise that is an error that
        lists them).

    Returns
    -------
    Volume
        Canonical (AP, SI, RL) array (float32 when a rescale applies), spacing in mm, geometry.

    Raises
    ------
    VolumeReadError
        No DICOM, several series, non-image DICOM, a 2D image, slices that are not parallel,
        missing/duplicate/unevenly spaced slices, mixed sizes, or compressed pixel data with no
        decoder installed.
    """
    path = Path(folder)
    if not path.exists():
        raise VolumeReadError(path, "no such file or folder")
    if path.is_file():
        ds = _read_header(path)
        if ds is None:
            raise VolumeReadError(path, "not a DICOM file")
        if not _is_image(ds):
            raise VolumeReadError(path, f"a DICOM {_sop_name(ds)} without pixel data, not an image")
        if _n_frames(ds) > 1:
            return _read_multiframe(path)
        # a single classic slice: read the series around it from its folder
        # its siblings only: a file in a large folder must not trigger a scan of the whole tree
        return read_dicom_folder(path.parent, series_uid=str(ds.get("SeriesInstanceUID", "")) or None,
                                 recursive=False)

    series, non_image = scan_folder(path, recursive=recursive)
    if series_uid is not None:
        series = [s for s in series if s.series_uid == series_uid]
        if not series:
            raise VolumeReadError(path, f"no image series with SeriesInstanceUID {series_uid}")
    if not series:
        if non_image:
            raise VolumeReadError(path, f"{len(non_image)} DICOM file(s) but none is an image "
                                        f"(e.g. {os.path.basename(non_image[0])})")
        raise VolumeReadError(path, "no DICOM files in this folder")
    if len(series) > 1:
        listing = "; ".join(f"{i + 1}) {s.line()}" for i, s in enumerate(series))
        raise VolumeReadError(path, f"{len(series)} image series in one folder, none loaded: "
                                    f"{listing}. Open one series folder (or pass series_uid).")
    s = series[0]
    if len(s.files) == 1:
        ds = _read_header(s.files[0])
        if _n_frames(ds) > 1:
            return _read_multiframe(Path(s.files[0]))
        raise VolumeReadError(s.files[0], "a single 2D slice, not a 3D volume")
    multi = [f for f in s.files if _n_frames(_read_header(f)) > 1]
    if multi:
        raise VolumeReadError(path, f"series mixes {len(multi)} multi-frame file(s) with single "
                                    "frames; open the multi-frame file itself")
    return _read_classic(path, s)


# ------------------------------------------------------------------------------------------
def _sop_name(ds) -> str:
    uid = ds.get("SOPClassUID", None)
    try:
        return uid.name if uid is not None else "file"
    except Exception:
        return "file"


def _direction_cosines(iop, where) -> tuple[np.ndarray, np.ndarray]:
    try:
        v = np.asarray([float(x) for x in iop], dtype=float)
    except (TypeError, ValueError):
        raise VolumeReadError(where, "ImageOrientationPatient is missing or not numeric") from None
    if v.shape != (6,):
        raise VolumeReadError(where, "ImageOrientationPatient must have 6 values")
    row, col = v[:3], v[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3 or abs(row @ col) > 1e-3:
        raise VolumeReadError(where, "ImageOrientationPatient is not two orthonormal directions")
    return row / np.linalg.norm(row), col / np.linalg.norm(col)


def _pixel_spacing(ps, where) -> tuple[float, float]:
    try:
        r, c = (float(x) for x in ps)
    except (TypeError, ValueError):
        raise VolumeReadError(where, "PixelSpacing is missing or not two numbers") from None
    if r <= 0 or c <= 0:
        raise VolumeReadError(where, f"PixelSpacing {r} \\ {c} is not positive")
    return r, c


def _stack_geometry(positions: np.ndarray, row: np.ndarray, col: np.ndarray, where,
                    names=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort slices along the normal; check duplicates, gaps and straightness.

    Returns the sort order, the first position and the slice step vector (LPS mm).
    """
    normal = np.cross(row, col)
    d = positions @ normal
    order = np.argsort(d, kind="stable")
    d_sorted = d[order]
    steps = np.diff(d_sorted)
    label = (lambda i: os.path.basename(str(names[i]))) if names is not None else (lambda i: f"frame {i + 1}")
    dup = np.flatnonzero(steps < 1e-3)
    if dup.size:
        i, j = order[dup[0]], order[dup[0] + 1]
        n_same = int(np.sum(np.abs(d - d_sorted[dup[0]]) < 1e-3))
        raise VolumeReadError(where, f"{dup.size + 1 if dup.size == 1 else dup.size} duplicate slice "
                                     f"position(s), e.g. {label(i)} and {label(j)} at {d_sorted[dup[0]]:.3f} mm "
                                     f"({n_same} slices there: a 4D/multi-echo series or a copied file?)")
    step = float(np.median(steps))
    bad = np.flatnonzero(np.abs(steps - step) > SPACING_RTOL * step)
    if bad.size:
        k = bad[0]
        # a gap of about two or more steps is a missing slice; anything else is uneven spacing
        kind = "missing slice(s)" if steps[k] > 1.5 * step else "unevenly spaced slices"
        raise VolumeReadError(where, f"{kind}: slice step {steps[k]:.3f} mm between {label(order[k])} and "
                                     f"{label(order[k + 1])}, where the series' step is {step:.3f} mm")
    first = positions[order[0]]
    n = len(order)
    step_vec = (positions[order[-1]] - first) / (n - 1)
    expected = first + np.outer(np.arange(n), step_vec)
    off = np.linalg.norm(positions[order] - expected, axis=1)
    if off.max() > max(0.05 * step, 1e-3) + 1e-6:
        raise VolumeReadError(where, "slice positions do not lie on one straight line "
                                     f"(off by up to {off.max():.2f} mm)")
    return order, first, step_vec


def _affine_lps(first: np.ndarray, step_vec: np.ndarray, row: np.ndarray, col: np.ndarray,
                ps_row: float, ps_col: float) -> np.ndarray:
    """Affine of the array indexed [slice k, row j, column i] in LPS mm."""
    aff = np.eye(4)
    aff[:3, 0] = step_vec
    aff[:3, 1] = col * ps_row   # moving down one row goes along the column direction
    aff[:3, 2] = row * ps_col   # moving right one column goes along the row direction
    aff[:3, 3] = first
    return aff


def _pixels(ds, where) -> np.ndarray:
    try:
        return ds.pixel_array
    except Exception as exc:
        ts = ds.file_meta.get("TransferSyntaxUID", None) if hasattr(ds, "file_meta") else None
        if ts is not None and getattr(ts, "is_compressed", False):
            raise VolumeReadError(where, f"pixel data is compressed ({ts.name}) and no decoder for it is "
                                         "installed: pip install pylibjpeg pylibjpeg-libjpeg "
                                         "pylibjpeg-openjpeg (or python-gdcm)") from None
        raise VolumeReadError(where, f"pixel data could not be decoded ({exc})") from None


def _case_key(uids) -> str:
    h = hashlib.sha256()
    for u in uids:
        h.update(str(u).encode())
        h.update(b"\0")
    return h.hexdigest()


def _finish(native: np.ndarray, aff_lps: np.ndarray, where, kind, ds0, case_key) -> Volume:
    geom = Geometry(native_affine=LPS_TO_RAS @ aff_lps, native_shape=tuple(native.shape),
                    source=os.fspath(where), kind=kind,
                    series_description=str(ds0.get("SeriesDescription", "")),
                    frame_of_reference_uid=str(ds0.get("FrameOfReferenceUID", "")),
                    case_key=case_key, sform_code=1, qform_code=1)
    return Volume(data=np.ascontiguousarray(geom.to_canonical(native)), geometry=geom,
                  identifiers=identifiers_of(ds0))


def _apply_rescale(frames: list, slopes, intercepts) -> np.ndarray:
    identity = all(float(s) == 1.0 for s in slopes) and all(float(b) == 0.0 for b in intercepts)
    if identity:
        return np.stack(frames)
    return np.stack([f.astype(np.float32) * np.float32(s) + np.float32(b)
                     for f, s, b in zip(frames, slopes, intercepts)])


def _read_classic(folder: Path, s: SeriesSummary) -> Volume:
    dss = [pydicom.dcmread(f) for f in s.files]
    ds0 = dss[0]
    row, col = _direction_cosines(ds0.get("ImageOrientationPatient"), s.files[0])
    for f, ds in zip(s.files, dss):
        r, c = _direction_cosines(ds.get("ImageOrientationPatient"), f)
        if np.abs(r - row).max() > ORIENTATION_TOL * 10 or np.abs(c - col).max() > ORIENTATION_TOL * 10:
            raise VolumeReadError(folder, f"slices are not parallel ({os.path.basename(f)} has another "
                                          "ImageOrientationPatient than the first slice): not one 3D volume")
        if (ds.Rows, ds.Columns) != (ds0.Rows, ds0.Columns):
            raise VolumeReadError(folder, f"slices differ in size ({os.path.basename(f)} is "
                                          f"{ds.Rows}x{ds.Columns}, the first is {ds0.Rows}x{ds0.Columns})")
        if "ImagePositionPatient" not in ds:
            raise VolumeReadError(f, "ImagePositionPatient is missing")
    ps_row, ps_col = _pixel_spacing(ds0.get("PixelSpacing"), s.files[0])
    positions = np.asarray([[float(x) for x in ds.ImagePositionPatient] for ds in dss])
    order, first, step_vec = _stack_geometry(positions, row, col, folder, names=s.files)
    frames = [_pixels(dss[i], s.files[i]) for i in order]
    slopes = [float(dss[i].get("RescaleSlope", 1) or 1) for i in order]
    inters = [float(dss[i].get("RescaleIntercept", 0) or 0) for i in order]
    native = _apply_rescale(frames, slopes, inters)
    aff = _affine_lps(first, step_vec, row, col, ps_row, ps_col)
    key = _case_key([s.series_uid] + sorted(str(ds.get("SOPInstanceUID", "")) for ds in dss))
    return _finish(native, aff, folder, "dicom", ds0, key)


def _functional(ds, i, seq_name):
    """The first item of a functional-group sequence for frame i (per-frame over shared)."""
    for groups in (ds.get("PerFrameFunctionalGroupsSequence"), ds.get("SharedFunctionalGroupsSequence")):
        if not groups:
            continue
        item = groups[i] if groups is ds.get("PerFrameFunctionalGroupsSequence") else groups[0]
        seq = item.get(seq_name)
        if seq:
            return seq[0]
    return None


def _read_multiframe(path: Path) -> Volume:
    ds = pydicom.dcmread(path)
    n = _n_frames(ds)
    if "PerFrameFunctionalGroupsSequence" not in ds and "SharedFunctionalGroupsSequence" not in ds:
        facts = {
            "kind": f"{_sop_name(ds)}, multi-frame",
            "frames": n,
            "frame size (rows x columns)": f"{ds.get('Rows')} x {ds.get('Columns')}",
            "bits stored": ds.get("BitsStored"),
            "spacing between slices (mm)": ds.get("SpacingBetweenSlices", "not recorded"),
            "slice thickness (mm)": ds.get("SliceThickness", "not recorded"),
            "pixel spacing (mm)": "not recorded",
            "slice positions / orientation": "not recorded (no functional group sequences)",
        }
        raise GeometryMissingError(path, "no pixel spacing, slice positions or orientation recorded "
                                         "(no functional group sequences): its frames cannot be placed "
                                         "in patient space, so it is not opened as a volume", facts)
    positions, rows, cols, slopes, inters = [], [], [], [], []
    spacing = None
    for i in range(n):
        pos = _functional(ds, i, "PlanePositionSequence")
        ori = _functional(ds, i, "PlaneOrientationSequence")
        meas = _functional(ds, i, "PixelMeasuresSequence")
        if pos is None or ori is None or meas is None:
            raise VolumeReadError(path, f"frame {i + 1} lacks position, orientation or pixel spacing")
        positions.append([float(x) for x in pos.ImagePositionPatient])
        r, c = _direction_cosines(ori.ImageOrientationPatient, path)
        rows.append(r)
        cols.append(c)
        sp = _pixel_spacing(meas.get("PixelSpacing"), path)
        if spacing is None:
            spacing = sp
        elif np.abs(np.subtract(sp, spacing)).max() > 1e-4:
            raise VolumeReadError(path, f"frame {i + 1} has another PixelSpacing than frame 1")
        rescale = _functional(ds, i, "PixelValueTransformationSequence")
        src = rescale if rescale is not None else ds
        slopes.append(float(src.get("RescaleSlope", 1) or 1))
        inters.append(float(src.get("RescaleIntercept", 0) or 0))
    rows, cols = np.asarray(rows), np.asarray(cols)
    if np.abs(rows - rows[0]).max() > ORIENTATION_TOL * 10 or np.abs(cols - cols[0]).max() > ORIENTATION_TOL * 10:
        raise VolumeReadError(path, "frames are not parallel (orientation differs between frames): "
                                    "not one 3D volume")
    if n < 2:
        raise VolumeReadError(path, "a single 2D frame, not a 3D volume")
    order, first, step_vec = _stack_geometry(np.asarray(positions), rows[0], cols[0], path)
    pixels = _pixels(ds, path)
    if pixels.ndim == 4:
        raise VolumeReadError(path, "colour (RGB) frames, not an MR magnitude volume")
    native = _apply_rescale([pixels[i] for i in order], [slopes[i] for i in order],
                            [inters[i] for i in order])
    aff = _affine_lps(first, step_vec, rows[0], cols[0], *spacing)
    key = _case_key([ds.get("SeriesInstanceUID", ""), ds.get("SOPInstanceUID", "")])
    return _finish(native, aff, path, "dicom-enhanced", ds, key)
