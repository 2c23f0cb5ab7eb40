"""Which side is a segment? Segment names and codes from other tools mapped to our labels.

Labs name their nerve segments every way: ``Right IAN``, ``IAN_L``, ``nerve right``, ``rIAN``,
``N. alveolaris inf. dx``... A segment's side comes, in this order, from an explicit mapping the
user gave (``--map NAME=right``), from the words of its name, or from a laterality code in its
terminology (SNOMED CT Right / Left, as 3D Slicer and DICOM SEG store it). A segment whose side
none of these tells is never guessed: the user is asked, in one line.
"""
from __future__ import annotations

import dataclasses
import re

from .volume import LEFT, RIGHT

IGNORE = 0
SIDE_NAMES = {RIGHT: "right IAN (1)", LEFT: "left IAN (2)", IGNORE: "ignored"}

# SNOMED CT laterality qualifiers (DICOM CID 244 "Laterality")
SCT_RIGHT = ("SCT", "24028007", "Right")
SCT_LEFT = ("SCT", "7771000", "Left")
_CODE_SIDES = {SCT_RIGHT[1]: RIGHT, SCT_LEFT[1]: LEFT}

_RIGHT_WORDS = {"right", "r", "rt", "rgt", "dx", "dex", "dext", "dexter", "dextra", "dextrum", "rechts",
                "droit", "droite", "derecho", "derecha", "destro", "destra"}
_LEFT_WORDS = {"left", "l", "lt", "lft", "sx", "sin", "sinister", "sinistra", "sinistrum", "links",
               "gauche", "izquierdo", "izquierda", "sinistro"}
# a side glued to the structure: rIAN, IANl, rightnerve, canalleft
_STRUCTURE = r"(?:ian|nerve|nerv|can|canal|ain)"
_GLUED = re.compile(rf"^(?:(?P<pre>r|l|right|left){_STRUCTURE}|{_STRUCTURE}(?P<post>r|l|right|left))$")

SIDE_WORDS = {"right": RIGHT, "r": RIGHT, "1": RIGHT, "left": LEFT, "l": LEFT, "2": LEFT,
               "ignore": IGNORE, "none": IGNORE, "skip": IGNORE, "0": IGNORE}


def _tokens(name: str) -> list[str]:
    """Lower-case words of a name: split at non-letters, digits and camelCase boundaries."""
    out = []
    for chunk in re.split(r"[^A-Za-z]+", name):
        if not chunk:
            continue
        out.append(chunk.lower())
        parts = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+", chunk)
        if len(parts) > 1:
            out.extend(p.lower() for p in parts)
    return out


def side_from_name(name: str) -> int | None:
    """``RIGHT``, ``LEFT``, or None when the name says no side or says both.

    Examples
    --------
    >>> side_from_name("Right IAN"), side_from_name("IAN_L"), side_from_name("rIAN")
    (1, 2, 1)
    >>> side_from_name("Segment_1") is None, side_from_name("left and right") is None
    (True, True)
    """
    found = set()
    for tok in _tokens(str(name)):
        if tok in _RIGHT_WORDS:
            found.add(RIGHT)
        elif tok in _LEFT_WORDS:
            found.add(LEFT)
        else:
            m = _GLUED.match(tok)
            if m:
                found.add(RIGHT if (m["pre"] or m["post"]).startswith("r") else LEFT)
    return found.pop() if len(found) == 1 else None


def side_from_codes(codes) -> int | None:
    """The side named by SNOMED CT laterality codes (code values or (scheme, value, meaning))."""
    sides = set()
    for code in codes or ():
        value = code[1] if isinstance(code, (tuple, list)) and len(code) > 1 else code
        if str(value) in _CODE_SIDES:
            sides.add(_CODE_SIDES[str(value)])
    return sides.pop() if len(sides) == 1 else None


class UnknownSideError(ValueError):
    """Segments whose side nothing tells; ``names`` lists them (the GUI asks for each)."""

    def __init__(self, message: str, names: list):
        super().__init__(message)
        self.names = list(names)


@dataclasses.dataclass
class SegmentInfo:
    """One segment of a segmentation file, as far as its side is concerned."""

    name: str
    id: str = ""
    label_value: int = 1
    layer: int = 0
    codes: tuple = ()   # laterality and other codes of its terminology, as (scheme, value, meaning)


def assign_sides(segments, side_map: dict | None, where) -> tuple[dict, list[str]]:
    """Decide the side of every segment.

    Parameters
    ----------
    segments : list of SegmentInfo
    side_map : dict, optional
        Lower-case segment name, ID or label value -> side (``ian convert --map``).
    where : path-like
        The file, for messages.

    Returns
    -------
    sides : dict
        Segment index -> ``RIGHT``, ``LEFT`` or ``IGNORE``.
    report : list of str
        One line per segment saying which mapping was used and why.

    Raises
    ------
    UnknownSideError
        One line naming the file and every segment whose side is unknown, with the option that
        sets it.
    ValueError
        A ``--map`` key that names no segment.
    """
    side_map = dict(side_map or {})
    used, sides, report, unknown = set(), {}, [], []
    for i, seg in enumerate(segments):
        keys = [k for k in (seg.name, seg.id) if k] + [str(seg.label_value)]
        explicit = next((k.strip().lower() for k in keys if k.strip().lower() in side_map), None)
        shown = f"'{seg.name or seg.id or seg.label_value}'"
        if explicit is not None:
            used.add(explicit)
            sides[i] = side_map[explicit]
            report.append(f"{shown} -> {SIDE_NAMES[sides[i]]} (as mapped: {explicit})")
        elif side_from_name(seg.name) is not None:
            sides[i] = side_from_name(seg.name)
            report.append(f"{shown} -> {SIDE_NAMES[sides[i]]} (from its name)")
        elif side_from_codes(seg.codes) is not None:
            sides[i] = side_from_codes(seg.codes)
            report.append(f"{shown} -> {SIDE_NAMES[sides[i]]} (from its terminology laterality code)")
        else:
            unknown.append(seg.name or seg.id or str(seg.label_value))
    stray = sorted(set(side_map) - used)
    if stray:
        names = ", ".join(repr(s.name or s.id or str(s.label_value)) for s in segments) or "none"
        raise ValueError(f"{where}: the side map names {stray[0]!r}, which is no segment (segments: {names})")
    if unknown:
        quoted = ", ".join(f"'{u}'" for u in unknown)
        raise UnknownSideError(f"{where}: which side is segment {quoted}? Its name does not say; rename it "
                               "(e.g. 'right IAN') or give its side", unknown)
    return sides, report
