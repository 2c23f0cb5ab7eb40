"""Patient identifiers from DICOM headers, so names the tool makes can be kept free of them.

napari-ian never writes a patient's name, ID or birth date into a file name, an exported file,
an autosave, model metadata or a log. Names it derives from the input (a layer named after a
DICOM folder, say) are checked against the identifiers of the series they came from.
"""
from __future__ import annotations

import re

# DICOM attributes that identify the patient directly
IDENTIFYING_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "OtherPatientNames",
                    "IssuerOfPatientID", "AccessionNumber")


def identifiers_of(ds) -> frozenset:
    """The identifying strings of a pydicom dataset: whole values and name parts (3+ characters).

    Parameters
    ----------
    ds : pydicom.Dataset

    Returns
    -------
    frozenset of str
        Upper-case strings; a person name ``DOE^JANE`` gives ``DOE^JANE``, ``DOE`` and ``JANE``.
    """
    out = set()
    for tag in IDENTIFYING_TAGS:
        value = ds.get(tag, None)
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
        for v in values:
            text = str(v).strip().upper()
            if not text:
                continue
            out.add(text)
            out.update(p for p in re.split(r"[\^\s,._\-/]+", text) if len(p) >= 3)
    return frozenset(out)


def mentions_identifier(text: str, identifiers) -> bool:
    """True when ``text`` contains any of ``identifiers`` (case-insensitive)."""
    up = str(text).upper()
    return any(i and i in up for i in identifiers)


def safe_name(text: str, identifiers, fallback: str) -> str:
    """``text``, or ``fallback`` when ``text`` mentions a patient identifier."""
    return fallback if mentions_identifier(text, identifiers) else text


REDACTED = "[patient identifier]"


def redact(text: str, identifiers) -> str:
    """``text`` with every identifier in it (case-insensitive, longest first) replaced by a marker.

    Identifiers shorter than 3 characters (an issuer code "2") identify no one and are left.
    """
    idents = sorted((i for i in identifiers if len(i) >= 3), key=len, reverse=True)
    if not idents:
        return str(text)
    # one pass, so a marker is never searched again
    return re.sub("|".join(re.escape(i) for i in idents), REDACTED, str(text), flags=re.IGNORECASE)
