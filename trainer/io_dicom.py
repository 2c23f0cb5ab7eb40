"""DICOM series folders (classic single-frame and Enhanced multi-frame MR) into canonical volumes.

The geometry comes from the headers alone: ImageOrientationPatient gives the row and column
directions, ImagePositionPatient the position of every slice, PixelSpacing the in-plane size.
Slices are sorted along the slice normal and the slice step is measured from the real
positions (SliceThickness is not spacing). Anything that is not one regular 3D grid is refused
with one line naming the folder or file and the problem, never read with a wrong geometry.
Only regular files are opened (a FIFO in a folder would block for ever). A damaged file is
skipped and said (a :class:`~.errors.VolumeWarning`); a gap it leaves is refused as a missing slice.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword

from .errors import GeometryMissingError, VolumeReadError, describe
from .geometry_check import check_grid
from .phi import identifiers_of, redact
from .volume import Geometry, Volume, count_nonfinite

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
    identifiers: frozenset = frozenset()   # of the patient: kept out of every line shown

    def line(self) -> str:
        desc = redact(self.description, self.identifiers) or "(no description)"
        return f"{desc} [{self.modality}, {len(self.files)} file(s), {self.n_frames} frame(s), UID …{self.series_uid[-12:]}]"


def _is_image(ds) -> bool:
    return "PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds


def _n_frames(ds) -> int:
    """NumberOfFrames, or 1 when absent or not a number (some files hold e.g. '1A')."""
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def _is_regular(path) -> bool:
    """A regular file (after symlinks): FIFOs, sockets and devices would block or never end."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def has_dicom_magic(path) -> bool:
    """True for a regular file with the DICOM mark (``DICM`` at byte 128); never opens a FIFO."""
    if not _is_regular(path):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _dcmread(path, **kw):
    """pydicom's reader, quiet: a damaged value raises here or later, never prints a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, **kw)


def _read_header(path):
    """The dataset of a regular file, or None when it is not a readable DICOM file."""
    if not _is_regular(path):
        return None
    try:
        ds = _dcmread(path, stop_before_pixels=False, defer_size="1 KB")
        _is_image(ds), _n_frames(ds), str(ds.get("SeriesInstanceUID", ""))  # parse what the scan uses
        return ds
    except MemoryError:
        raise VolumeReadError(path, "not enough memory to read this DICOM file") from None
    except Exception:  # pydicom raises many types for damaged files; the caller says which were skipped
        return None


def scan_folder(folder, recursive: bool = True) -> tuple[list[SeriesSummary], list[str], list[str]]:
    """Find the DICOM image series in a folder (and its subfolders when ``recursive``).

    Only regular files are opened (a FIFO in the folder would block for ever).

    Returns
    -------
    series : list of SeriesSummary
        Image series, largest first.
    non_image : list of str
        DICOM files without pixel data (structured reports, RT structures, DICOMDIR, ...).
    damaged : list of str
        Files that look like members of a DICOM series but cannot be used: marked ``DICM``
        but unreadable, of an image class (or of no class at all) without pixel data, or
        naming one of the series once their damaged ``DICM`` mark is restored.
    """
    folder = Path(folder)
    groups: dict[str, SeriesSummary] = {}
    non_image: list[str] = []
    damaged: list[str] = []
    unreadable: list[str] = []
    for root, dirs, names in os.walk(folder):
        if not recursive:
            dirs.clear()
        for name in sorted(names):
            path = os.path.join(root, name)
            ds = _read_header(path)
            if ds is None:
                if _is_regular(path):
                    (damaged if has_dicom_magic(path) else unreadable).append(path)
                continue
            if not _is_image(ds):
                # an image (by its class) without pixel data, or a file of no class, is damaged, not a report
                (damaged if _claims_image(ds) in (True, None) else non_image).append(path)
                continue
            uid = str(ds.get("SeriesInstanceUID", "")) or f"(no SeriesInstanceUID) {path}"
            summary = groups.get(uid)
            if summary is None:
                summary = groups[uid] = SeriesSummary(
                    uid, _text(ds, "SeriesDescription"), _text(ds, "Modality"), [], 0)
            summary.files.append(path)
            summary.n_frames += _n_frames(ds)
            summary.identifiers = summary.identifiers | _identifiers(ds)
    # a member whose "DICM" mark was damaged still names its series when read without that check
    damaged += [p for p in unreadable if _forced_series_uid(p) in groups]
    series = sorted(groups.values(), key=lambda s: -s.n_frames)
    return series, non_image, damaged


def _forced_series_uid(path, max_bytes: int = 64 << 20) -> str:
    """The SeriesInstanceUID a file holds when read with its "DICM" mark restored ("" if none)."""
    try:
        if os.path.getsize(path) > max_bytes:
            return ""
        raw = Path(path).read_bytes()
        ds = _dcmread(io.BytesIO(raw[:128] + b"DICM" + raw[132:]), stop_before_pixels=True, defer_size="1 KB")
        return str(ds.get("SeriesInstanceUID", "") or "")
    except Exception:
        return ""


def _text(ds, keyword: str) -> str:
    """A header value as one line of text ("" when absent or unreadable)."""
    try:
        return " ".join(str(ds.get(keyword, "") or "").split())
    except Exception:
        return ""


def _identifiers(ds) -> frozenset:
    try:
        return identifiers_of(ds)
    except Exception:  # a damaged name element: what could be read of the others is still used
        return frozenset(_text(ds, k).upper() for k in ("PatientName", "PatientID") if _text(ds, k))


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
        missing/duplicate/unevenly spaced slices, mixed sizes, compressed pixel data with no
        decoder installed, a damaged header (an element missing, non-finite or of the wrong
        value representation), or an implausible grid. The message never holds the patient's
        name or ID, even where the folder or the series description does.
    """
    path = Path(folder)
    if not path.exists():
        raise VolumeReadError(path, "no such file or folder")
    if not path.is_dir() and not path.is_file():
        raise VolumeReadError(path, "not a regular file or folder")
    seen = set()     # patient identifiers of every header read: kept out of any message
    try:
        with warnings.catch_warnings():
            # pydicom warns about each odd value as it parses it; what matters is checked here
            warnings.simplefilter("ignore")
            return _read_path(path, series_uid, recursive, seen)
    except VolumeReadError as exc:
        if not seen:
            raise
        cls = type(exc)
        args = (redact(exc.path, seen), redact(exc.problem, seen))
        if isinstance(exc, GeometryMissingError):
            args += ({k: redact(v, seen) if isinstance(v, str) else v for k, v in exc.facts.items()},)
        raise cls(*args) from None
    except MemoryError:
        raise VolumeReadError(redact(path, seen), "not enough memory to read this series") from None
    except Exception as exc:  # a damaged value pydicom only fails on when it is used
        raise VolumeReadError(redact(path, seen), f"a DICOM header value could not be interpreted "
                                                  f"({redact(describe(exc, with_type=True), seen)})") from None


def _read_path(path: Path, series_uid, recursive: bool, seen: set) -> Volume:
    if path.is_file():
        ds = _read_header(path)
        if ds is None:
            raise VolumeReadError(path, "not a readable DICOM file" if has_dicom_magic(path) else "not a DICOM file")
        seen |= _identifiers(ds)
        if not _is_image(ds):
            raise VolumeReadError(path, f"a DICOM {_sop_name(ds)} without pixel data, not an image")
        if _n_frames(ds) > 1:
            return _read_multiframe(path)
        # a single classic slice: read the series around it from its folder
        # its siblings only: a file in a large folder must not trigger a scan of the whole tree
        return _read_path(path.parent, _text(ds, "SeriesInstanceUID") or None, False, seen)

    series, non_image, damaged = scan_folder(path, recursive=recursive)
    for s in series:
        seen |= s.identifiers
    try:
        vol = _read_series(path, series, non_image, series_uid)
    except VolumeReadError as exc:
        if damaged:   # the likely cause of a missing slice, say
            raise VolumeReadError(exc.path, f"{exc.problem} ({len(damaged)} damaged DICOM file(s) skipped, e.g. "
                                            f"{os.path.basename(damaged[0])})") from None
        raise
    if damaged:
        vol.notes = vol.notes + (f"{len(damaged)} damaged DICOM file(s) skipped, e.g. "
                                 f"{os.path.basename(damaged[0])}",)
    return vol


def _read_series(path: Path, series: list, non_image: list, series_uid) -> Volume:
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
def _claims_image(ds) -> bool | None:
    """Whether the dataset's class (or its file meta's) is an image storage class; None: no class."""
    try:
        media = ds.file_meta.get("MediaStorageSOPClassUID", None) if hasattr(ds, "file_meta") else None
        media = media.name if media is not None else ""
    except Exception:
        media = ""
    own = _sop_name(ds)
    if own == "file" and not media:
        return None
    return "Image Storage" in own or "Image Storage" in media


def _sop_name(ds) -> str:
    try:
        uid = ds.get("SOPClassUID", None)
        return uid.name if uid is not None else "file"
    except Exception:
        return "file"


def _element_value(ds, keyword: str, where):
    """The value of ``keyword`` in ``ds`` (None when absent), refusing a value of the wrong kind.

    A damaged file can store an element with another value representation than the standard
    gives it (``(0028,1053)`` as US instead of DS reads as a wrong number without any error),
    or with bytes that cannot be parsed; both are refused, naming the file and the element.
    """
    tag = tag_for_keyword(keyword)
    if tag not in ds:
        return None
    try:
        elem = ds[tag]
        expected = dictionary_VR(tag)
        if elem.VR not in (expected, "UN") and elem.VR not in expected.split(" or "):
            raise VolumeReadError(where, f"{keyword} {elem.tag} is stored as VR {elem.VR}, where DICOM "
                                         f"has {expected}: a damaged header")
        return elem.value
    except VolumeReadError:
        raise
    except Exception as exc:
        raise VolumeReadError(where, f"{keyword} {_tag_text(tag)} cannot be read ({type(exc).__name__})") from None


def _tag_text(tag) -> str:
    return f"({int(tag) >> 16:04X},{int(tag) & 0xFFFF:04X})"


def _numbers(ds, keyword: str, n: int, where, default=None) -> np.ndarray:
    """``n`` finite numbers from a header element (``default`` when absent, if given)."""
    value = _element_value(ds, keyword, where)
    if value is None or value == "":
        if default is not None:
            return np.asarray(default, dtype=float)
        raise VolumeReadError(where, f"{keyword} is missing")
    values = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
    try:
        v = np.asarray([float(x) for x in values], dtype=float)
    except (TypeError, ValueError):
        raise VolumeReadError(where, f"{keyword} is not numeric ({str(value)[:40]!r})") from None
    if v.shape != (n,):
        raise VolumeReadError(where, f"{keyword} must have {n} value(s), not {v.size}")
    if not np.isfinite(v).all():
        raise VolumeReadError(where, f"{keyword} holds a non-finite value ({', '.join(f'{x:g}' for x in v)})")
    return v


def _count(ds, keyword: str, where) -> int:
    """A positive whole number from the header (Rows, Columns)."""
    v = _numbers(ds, keyword, 1, where)[0]
    if v < 1 or v != int(v):
        raise VolumeReadError(where, f"{keyword} is {v:g}, not a positive whole number")
    return int(v)


def _direction_cosines(iop, where) -> tuple[np.ndarray, np.ndarray]:
    try:
        v = np.asarray([float(x) for x in iop], dtype=float)
    except (TypeError, ValueError):
        raise VolumeReadError(where, "ImageOrientationPatient is missing or not numeric") from None
    if v.shape != (6,):
        raise VolumeReadError(where, "ImageOrientationPatient must have 6 values")
    if not np.isfinite(v).all():
        raise VolumeReadError(where, "ImageOrientationPatient holds a non-finite value")
    row, col = v[:3], v[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3 or abs(row @ col) > 1e-3:
        raise VolumeReadError(where, "ImageOrientationPatient is not two orthonormal directions")
    return row / np.linalg.norm(row), col / np.linalg.norm(col)


def _pixel_spacing(ps, where) -> tuple[float, float]:
    try:
        r, c = (float(x) for x in ps)
    except (TypeError, ValueError):
        raise VolumeReadError(where, "PixelSpacing is missing or not two numbers") from None
    if not (r > 0 and c > 0 and np.isfinite(r) and np.isfinite(c)):
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


def _pixels(ds, where, shape) -> np.ndarray:
    """The stored pixel values of a dataset, checked to be ``shape`` and one grey channel."""
    try:
        pixels = ds.pixel_array
    except MemoryError:
        raise VolumeReadError(where, "not enough memory to decode its pixel data") from None
    except Exception as exc:
        ts = ds.file_meta.get("TransferSyntaxUID", None) if hasattr(ds, "file_meta") else None
        if ts is not None and getattr(ts, "is_compressed", False):
            raise VolumeReadError(where, f"pixel data is compressed ({ts.name}) and no decoder for it is "
                                         "installed: pip install pylibjpeg pylibjpeg-libjpeg "
                                         "pylibjpeg-openjpeg (or python-gdcm)") from None
        raise VolumeReadError(where, f"pixel data could not be decoded ({describe(exc)})") from None
    if pixels.ndim == len(shape) + 1 and pixels.shape[:-1] == tuple(shape):
        raise VolumeReadError(where, "colour (RGB) pixels, not an MR magnitude image")
    if tuple(pixels.shape) != tuple(shape):
        raise VolumeReadError(where, f"pixel data of shape {' x '.join(map(str, pixels.shape))} where the header "
                                     f"says {' x '.join(map(str, shape))}")
    return pixels


def _case_key(uids) -> str:
    h = hashlib.sha256()
    for u in uids:
        h.update(str(u).encode())
        h.update(b"\0")
    return h.hexdigest()


def _finish(native: np.ndarray, aff_lps: np.ndarray, where, kind, ds0, case_key) -> Volume:
    aff = LPS_TO_RAS @ aff_lps
    notes = check_grid(aff, where)   # e.g. a tilted gantry: slices not perpendicular to the rows
    geom = Geometry(native_affine=aff, native_shape=tuple(native.shape),
                    source=os.fspath(where), kind=kind,
                    series_description=_text(ds0, "SeriesDescription"),
                    frame_of_reference_uid=_text(ds0, "FrameOfReferenceUID"),
                    case_key=case_key, sform_code=1, qform_code=1)
    return Volume(data=np.ascontiguousarray(geom.to_canonical(native)), geometry=geom,
                  identifiers=_identifiers(ds0), nonfinite=count_nonfinite(native),
                  modality=_text(ds0, "Modality"), notes=tuple(notes))


def _apply_rescale(frames: list, slopes, intercepts) -> np.ndarray:
    identity = all(float(s) == 1.0 for s in slopes) and all(float(b) == 0.0 for b in intercepts)
    if identity:
        return np.stack(frames)
    return np.stack([f.astype(np.float32) * np.float32(s) + np.float32(b)
                     for f, s, b in zip(frames, slopes, intercepts)])


def _rescale(ds, where) -> tuple[float, float]:
    """RescaleSlope and RescaleIntercept (1 and 0 when absent); a slope of 0 is read as 1, as before."""
    slope = float(_numbers(ds, "RescaleSlope", 1, where, default=[1.0])[0]) or 1.0
    return slope, float(_numbers(ds, "RescaleIntercept", 1, where, default=[0.0])[0])


def _read_full(path):
    """A whole DICOM file, or a one-line error naming it."""
    try:
        return _dcmread(path)
    except MemoryError:
        raise VolumeReadError(path, "not enough memory to read this DICOM file") from None
    except Exception as exc:
        raise VolumeReadError(path, f"not a readable DICOM file ({describe(exc)})") from None


def _read_classic(folder: Path, s: SeriesSummary) -> Volume:
    dss = [_read_full(f) for f in s.files]
    ds0 = dss[0]
    row, col = _direction_cosines(_numbers(ds0, "ImageOrientationPatient", 6, s.files[0]), s.files[0])
    size0 = (_count(ds0, "Rows", s.files[0]), _count(ds0, "Columns", s.files[0]))
    positions = []
    for f, ds in zip(s.files, dss):
        r, c = _direction_cosines(_numbers(ds, "ImageOrientationPatient", 6, f), f)
        if np.abs(r - row).max() > ORIENTATION_TOL * 10 or np.abs(c - col).max() > ORIENTATION_TOL * 10:
            raise VolumeReadError(folder, f"slices are not parallel ({os.path.basename(f)} has another "
                                          "ImageOrientationPatient than the first slice): not one 3D volume")
        size = (_count(ds, "Rows", f), _count(ds, "Columns", f))
        if size != size0:
            raise VolumeReadError(folder, f"slices differ in size ({os.path.basename(f)} is "
                                          f"{size[0]}x{size[1]}, the first is {size0[0]}x{size0[1]})")
        positions.append(_numbers(ds, "ImagePositionPatient", 3, f))
    ps_row, ps_col = _pixel_spacing(_numbers(ds0, "PixelSpacing", 2, s.files[0]), s.files[0])
    order, first, step_vec = _stack_geometry(np.asarray(positions), row, col, folder, names=s.files)
    frames = [_pixels(dss[i], s.files[i], size0) for i in order]
    slopes, inters = zip(*(_rescale(dss[i], s.files[i]) for i in order))
    native = _apply_rescale(frames, slopes, inters)
    aff = _affine_lps(first, step_vec, row, col, ps_row, ps_col)
    key = _case_key([s.series_uid] + sorted(_text(ds, "SOPInstanceUID") for ds in dss))
    return _finish(native, aff, folder, "dicom", ds0, key)


def _functional(ds, i, seq_name):
    """The first item of a functional-group sequence for frame i (per-frame over shared)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    for item in (per_frame[i] if per_frame else None, shared[0] if shared else None):
        seq = item.get(seq_name) if item is not None else None
        if seq:
            return seq[0]
    return None


def _read_multiframe(path: Path) -> Volume:
    ds = _read_full(path)
    n = _n_frames(ds)
    if "PerFrameFunctionalGroupsSequence" not in ds and "SharedFunctionalGroupsSequence" not in ds:
        facts = {
            "kind": f"{_sop_name(ds)}, multi-frame",
            "frames": n,
            "frame size (rows x columns)": f"{_text(ds, 'Rows')} x {_text(ds, 'Columns')}",
            "bits stored": _text(ds, "BitsStored"),
            "spacing between slices (mm)": _text(ds, "SpacingBetweenSlices") or "not recorded",
            "slice thickness (mm)": _text(ds, "SliceThickness") or "not recorded",
            "pixel spacing (mm)": "not recorded",
            "slice positions / orientation": "not recorded (no functional group sequences)",
        }
        raise GeometryMissingError(path, "no pixel spacing, slice positions or orientation recorded "
                                         "(no functional group sequences): its frames cannot be placed "
                                         "in patient space, so it is not opened as a volume", facts)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and len(per_frame) < n:
        raise VolumeReadError(path, f"PerFrameFunctionalGroupsSequence describes {len(per_frame)} frames but "
                                    f"NumberOfFrames is {n}: a damaged or truncated file")
    if n < 2:
        raise VolumeReadError(path, "a single 2D frame, not a 3D volume")
    positions, rows, cols, slopes, inters = [], [], [], [], []
    spacing = None
    for i in range(n):
        pos = _functional(ds, i, "PlanePositionSequence")
        ori = _functional(ds, i, "PlaneOrientationSequence")
        meas = _functional(ds, i, "PixelMeasuresSequence")
        if pos is None or ori is None or meas is None:
            raise VolumeReadError(path, f"frame {i + 1} lacks position, orientation or pixel spacing")
        positions.append(_numbers(pos, "ImagePositionPatient", 3, path))
        r, c = _direction_cosines(_numbers(ori, "ImageOrientationPatient", 6, path), path)
        rows.append(r)
        cols.append(c)
        sp = _pixel_spacing(_numbers(meas, "PixelSpacing", 2, path), path)
        if spacing is None:
            spacing = sp
        elif np.abs(np.subtract(sp, spacing)).max() > 1e-4:
            raise VolumeReadError(path, f"frame {i + 1} has another PixelSpacing than frame 1")
        rescale = _functional(ds, i, "PixelValueTransformationSequence")
        slope, inter = _rescale(rescale if rescale is not None else ds, path)
        slopes.append(slope)
        inters.append(inter)
    rows, cols = np.asarray(rows), np.asarray(cols)
    if np.abs(rows - rows[0]).max() > ORIENTATION_TOL * 10 or np.abs(cols - cols[0]).max() > ORIENTATION_TOL * 10:
        raise VolumeReadError(path, "frames are not parallel (orientation differs between frames): "
                                    "not one 3D volume")
    order, first, step_vec = _stack_geometry(np.asarray(positions), rows[0], cols[0], path)
    pixels = _pixels(ds, path, (n, _count(ds, "Rows", path), _count(ds, "Columns", path)))
    native = _apply_rescale([pixels[i] for i in order], [slopes[i] for i in order],
                            [inters[i] for i in order])
    aff = _affine_lps(first, step_vec, rows[0], cols[0], *spacing)
    key = _case_key([_text(ds, "SeriesInstanceUID"), _text(ds, "SOPInstanceUID")])
    return _finish(native, aff, path, "dicom-enhanced", ds, key)
