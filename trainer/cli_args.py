"""The command line's own argument syntax: ``--roi``, ``--slices``, ``--model`` and ``--map`` values.

Each parser turns one option's text into what the library takes, and its error names the option
(the library's own errors never name a command-line flag).
"""
from __future__ import annotations

import dataclasses
import json

from typing import TYPE_CHECKING

import numpy as np

from .segment_sides import SIDE_WORDS

if TYPE_CHECKING:    # imported where used: they load torch, which `ian convert` does not need
    from .cv import ModelSpec
    from .train import TrainConfig


def parse_roi(text: str, shape) -> tuple:
    """``"a0:a1,s0:s1,r0:r1"`` (canonical voxel ranges, empty = whole axis) -> slices."""
    parts = text.split(",")
    if len(parts) != 3:
        raise ValueError(f"--roi {text!r}: give three ranges AP,SI,RL such as 10:90,:,:")
    out = []
    for part, n in zip(parts, shape):
        lo, _, hi = part.partition(":")
        a, b = int(lo) if lo.strip() else 0, int(hi) if hi.strip() else n
        if not (0 <= a < b <= n):
            raise ValueError(f"--roi range {part!r} is outside 0..{n}")
        out.append(slice(a, b))
    return tuple(out)


def parse_slices(text: str, n: int) -> np.ndarray:
    """``"30:40,55"`` -> sorted unique indices (``a:b`` is half-open like Python and ``--roi``: 30..39).

    Raises ValueError naming the part that is not a slice number or range inside ``0..n-1``.
    """
    out = set()
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        try:
            if ":" in part:
                lo, _, hi = part.partition(":")
                a, b = int(lo) if lo.strip() else 0, int(hi) if hi.strip() else n
            else:
                a = int(part)
                b = a + 1
        except ValueError:
            raise ValueError(f"--slices {part!r}: not a slice number or a range such as 30:40") from None
        if not (0 <= a < b <= n):
            raise ValueError(f"--slices {part!r}: outside the {n} coronal slices (0..{n - 1})")
        out.update(range(a, b))
    if not out:
        raise ValueError(f"--slices {text!r}: no slices given")
    return np.array(sorted(out), dtype=int)


def parse_model_spec(text: str, base: TrainConfig, network_defaults: dict | None = None) -> ModelSpec:
    """``NAME=network[:json]`` or ``network`` -> ModelSpec, e.g. ``unet2d=unet:{"base":16}``.

    The JSON may set network settings and training settings (``size``, ``context``, ``lr``...);
    ``network_defaults`` (network name -> settings, e.g. :data:`PAPER_MODELS`) fills the network
    settings the JSON leaves out.
    """
    from .cv import ModelSpec
    from .train import TrainConfig

    name, _, rest = text.partition("=")
    if not rest:
        rest, name = name, name.split(":")[0]
    network, _, cfg_json = rest.partition(":")
    try:
        overrides = json.loads(cfg_json) if cfg_json else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"--model {text!r}: the settings after ':' are not JSON ({exc.msg})") from None
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)} - {"network_config"}
    net_cfg = {k: v for k, v in overrides.items() if k not in train_keys}
    tr = {k: v for k, v in overrides.items() if k in train_keys}
    if "size" in tr:
        tr["size"] = tuple(tr["size"])
    net_cfg = {**(network_defaults or {}).get(network, {}), **net_cfg}
    if network == "unet" and not net_cfg:
        net_cfg = {"base": 16, "depth": 4}
    return ModelSpec(name, dataclasses.replace(base, network=network, network_config=net_cfg, **tr))


def parse_side_map(items) -> dict:
    """``["Segment_1=right", "3=left", "mandible=ignore"]`` -> ``{"segment_1": 1, "3": 2, "mandible": 0}``.

    Keys are compared case-insensitively with segment names, IDs, or (files without segment
    names) label values.

    Raises
    ------
    ValueError
        An item without ``=`` or with a side other than right/left/ignore.
    """
    out = {}
    for item in items or ():
        key, sep, side = str(item).rpartition("=")
        side_v = SIDE_WORDS.get(side.strip().lower())
        if not sep or not key.strip() or side_v is None:
            raise ValueError(f"--map {item!r}: expected NAME=right, NAME=left or NAME=ignore")
        out[key.strip().lower()] = side_v
    return out
