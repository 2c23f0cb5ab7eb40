"""The corrections store: per case, the image, the labels a person corrected, and which slices to trust.

Layout: ``<user home>/corrections/<hash of the case key>.npz``, one file per case holding the
canonical image (float32), the labels (uint8, 1 = right, 2 = left), ``trusted`` (2, n_AP) bool
(right, left: coronal slices a person corrected or accepted) and a JSON ``meta`` member (case
hash, image digest, spacing, counts, dates). One file means an entry is always whole: it is
written atomically (temporary file + rename), so a crash or a full disk leaves the previous entry
as it was. Entries are updated, never duplicated, and removed only by :func:`delete_corrections`
(the GUI asks first). An update reads, merges and writes the entry while holding the entry's
lock (:mod:`.filelock`), so concurrent saves of one case, from two processes, all reach it. File names and metadata hold hashes only, never patient identifiers.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes, remove_stale_temps
from .errors import VolumeReadError
from .filelock import locked
from .registry import user_home


class CorrectionsError(VolumeReadError):
    """A corrections entry that cannot be read or written (message names the file)."""


class CorrectionsMismatch(ValueError):
    """The stored corrections of a case were made on a different image."""


def corrections_dir() -> Path:
    return user_home() / "corrections"


def case_hash(case_key: str) -> str:
    """The name of a case in the store: a hash of its key (itself a hash of UIDs or content)."""
    if not case_key:
        raise ValueError("this image has no case key (open it with napari-ian to collect corrections)")
    return hashlib.sha256(("corrections:" + case_key).encode()).hexdigest()[:24]


def image_digest(image: np.ndarray) -> str:
    """A content hash of a canonical image (its shape and float32 voxels)."""
    a = np.ascontiguousarray(image, dtype=np.float32)
    h = hashlib.sha256(repr(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()[:32]


@dataclasses.dataclass
class CorrectionEntry:
    """One case in the store (metadata only; :func:`load_corrections` reads the arrays)."""

    path: Path
    case: str                 # hash of the case key
    shape: tuple
    spacing: tuple
    image_digest: str
    slices: dict              # {"right": [...], "left": [...]} trusted coronal slices
    updated: float
    created: float

    @property
    def n_slices(self) -> int:
        return sum(len(v) for v in self.slices.values())

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.updated))
        return (f"case {self.case[:8]}: {len(self.slices['right'])} right + {len(self.slices['left'])} left "
                f"slices ({when})")


def _entry_from_meta(path: Path, meta: dict) -> CorrectionEntry:
    return CorrectionEntry(path, meta["case"], tuple(meta["shape"]), tuple(meta["spacing"]), meta["image_digest"],
                           {"right": list(meta["slices"]["right"]), "left": list(meta["slices"]["left"])},
                           float(meta["updated"]), float(meta.get("created", meta["updated"])))


def read_entry(path) -> CorrectionEntry:
    """The metadata of one store file (reads only its small ``meta`` member)."""
    path = Path(path)
    try:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
        return _entry_from_meta(path, meta)
    except FileNotFoundError:
        raise CorrectionsError(path, "corrections file not found") from None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise CorrectionsError(path, f"not a readable corrections file ({type(exc).__name__})") from None


def list_corrections() -> list[CorrectionEntry]:
    """Every readable case in the store, most recently updated first (unreadable files skipped)."""
    folder = corrections_dir()
    out = []
    for p in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        try:
            out.append(read_entry(p))
        except CorrectionsError:
            continue
    return sorted(out, key=lambda e: -e.updated)


def find_corrections(case_key: str) -> CorrectionEntry | None:
    """The store's entry for this case, or None."""
    path = corrections_dir() / f"{case_hash(case_key)}.npz"
    return read_entry(path) if path.exists() else None


def load_corrections(entry: CorrectionEntry):
    """``(image, labels, trusted, spacing)`` of an entry, checked against its own digest."""
    try:
        with np.load(entry.path) as z:
            image, labels, trusted = z["image"], z["labels"], z["trusted"].astype(bool)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise CorrectionsError(entry.path, f"cannot read its arrays ({type(exc).__name__})") from None
    if image_digest(image) != entry.image_digest or labels.shape != image.shape:
        raise CorrectionsError(entry.path, "its image does not match its own record (damaged file)")
    return image, labels, trusted, entry.spacing


def trusted_from_status(status: np.ndarray) -> np.ndarray:
    """(2, n) bool: slices reviewed as accepted (1) or corrected (2) per side."""
    return np.asarray(status) >= 1


def save_corrections(case_key: str, image: np.ndarray, labels: np.ndarray, trusted: np.ndarray, spacing,
                     replace: bool = False) -> CorrectionEntry:
    """Add or update one case's corrections (atomically).

    An existing entry of the same case is merged: slices trusted now take the labels given here,
    slices trusted only before keep their stored labels (a re-predicted layer never overwrites an
    earlier correction).

    Parameters
    ----------
    case_key : str
        The image's case key (:attr:`Geometry.case_key`).
    image : (AP, SI, RL) ndarray
        The canonical image.
    labels : (AP, SI, RL) ndarray
        Labels on the same grid (1 = right, 2 = left).
    trusted : (2, AP) ndarray of bool
        Right and left coronal slices a person corrected or accepted.
    spacing : sequence of float
    replace : bool
        Replace an entry that was made on a different image instead of refusing.

    Raises
    ------
    ValueError
        No trusted slice, or arrays that do not fit together.
    CorrectionsMismatch
        The stored entry of this case holds another image (and ``replace`` is False).
    CorrectionsError
        The store cannot be written (read-only, full disk); the previous entry is unchanged.
    """
    image = np.asarray(image, dtype=np.float32)
    labels = np.asarray(labels)
    trusted = np.asarray(trusted, dtype=bool)
    if image.ndim != 3 or labels.shape != image.shape:
        raise ValueError(f"labels {labels.shape} and image {image.shape} are not the same 3D grid")
    if trusted.shape != (2, image.shape[0]):
        raise ValueError(f"trusted slices {trusted.shape}, expected (2, {image.shape[0]})")
    if not trusted.any():
        raise ValueError("no corrected or accepted slices yet: review the prediction and correct or accept "
                         "some slices first")
    digest = image_digest(image)
    path = corrections_dir() / f"{case_hash(case_key)}.npz"
    labels = np.where(np.isin(labels, (1, 2)), labels, 0).astype(np.uint8)
    try:
        # read, merge and write as one step: two saves of one case (two panels, two processes)
        # must both end up in the entry, not the later replacing the earlier
        with locked(path):
            remove_stale_temps(path.parent)   # of saves that were killed
            return _merge_and_write(path, case_key, image, labels, trusted, spacing, digest, replace)
    except TimeoutError as exc:
        raise CorrectionsError(path, f"{exc}; the previous entry is unchanged") from None
    except OSError as exc:
        raise CorrectionsError(path, f"cannot write the corrections store ({exc.strerror or exc}); "
                                     "the previous entry is unchanged") from None


def _merge_and_write(path: Path, case_key, image, labels, trusted, spacing, digest, replace) -> CorrectionEntry:
    """Merge with the stored entry of the case (if any) and write; the caller holds the lock."""
    created = time.time()
    old = None
    if path.exists():
        try:
            old = read_entry(path)
        except CorrectionsError as exc:
            if not replace:
                raise CorrectionsMismatch(f"{exc} (the stored corrections of this case are damaged); replace "
                                          "them to go on") from None
            # kept beside the new entry, never deleted without asking
            path.replace(path.with_name(f"{path.name}.damaged-{int(time.time())}"))
    if old is not None:
        if old.image_digest != digest and not replace:
            raise CorrectionsMismatch(f"{path}: the corrections stored for this case were made on a different "
                                      "image (same case key, other voxels); replace them to go on")
        if old.image_digest == digest:
            o_image, o_labels, o_trusted, _ = load_corrections(old)
            merged = np.zeros_like(labels)
            for s, lab in enumerate((1, 2)):
                side_new = np.where(labels == lab, lab, 0).astype(np.uint8)
                side_old = np.where(o_labels == lab, lab, 0).astype(np.uint8)
                keep_old = o_trusted[s] & ~trusted[s]
                side = np.where(keep_old[:, None, None], side_old, side_new)
                merged = np.where(side > 0, side, merged)
            labels, trusted, created = merged.astype(np.uint8), trusted | o_trusted, old.created
    meta = {"case": case_hash(case_key), "shape": list(image.shape), "spacing": [float(s) for s in spacing],
            "image_digest": digest, "slices": {"right": np.flatnonzero(trusted[0]).tolist(),
                                               "left": np.flatnonzero(trusted[1]).tolist()},
            "created": created, "updated": time.time()}
    buf = io.BytesIO()
    np.savez_compressed(buf, image=image, labels=labels, trusted=trusted, meta=np.array(json.dumps(meta)))
    atomic_write_bytes(path, buf.getvalue())
    return _entry_from_meta(path, meta)


def delete_corrections(entry: CorrectionEntry) -> None:
    """Remove one case from the store (the caller asks the user first)."""
    try:
        Path(entry.path).unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CorrectionsError(entry.path, f"cannot delete ({exc.strerror or exc})") from None
