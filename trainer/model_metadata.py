"""The metadata of a model file, as one dataclass with its validation.

A model file's metadata is JSON that anyone can edit. Before a network is built from it, or a
prediction sized by it, :meth:`ModelMetadata.from_dict` checks every key this version knows
(types and plausible ranges: a ``size`` of ``[100000, 100000]`` would ask for tens of GiB) and
raises :class:`MetadataError` with one line saying which key is wrong. Keys it does not know
are kept unchanged (``extra``), so files written by newer versions, or keys added later (say
``pipeline`` or ``spacing_mm``), pass through a load/save round trip intact.
"""
from __future__ import annotations

import dataclasses
import math
import numbers

from .volume import LABELS

# what a label value means, as stored in model files (JSON keys are strings)
LABEL_MEANING = {str(k): v for k, v in LABELS.items()}
SIZE_RANGE = (8, 2048)          # network input height and width, pixels
CONTEXT_RANGE = (1, 31)         # 2.5D: coronal slices as channels, an odd number
# network settings that set a layer's width or count: generous bounds, far below what would
# ask for gigabytes (the weights in the file are checked against the built network as well)
CONFIG_RANGES = {"base": (1, 512), "stem": (1, 512), "aspp": (1, 2048), "depth": (1, 8),
                 "channel": (16, 512), "filters": (1, 128), "window": (2, 32)}


class MetadataError(ValueError):
    """Metadata that is well-formed JSON but not a usable model description."""


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _int_in(value, lo, hi, what) -> int:
    if not _is_int(value) or not lo <= value <= hi:
        raise MetadataError(f"{what} must be a whole number from {lo} to {hi}, not {value!r}")
    return int(value)


def _dict(value, what) -> dict:
    if not isinstance(value, dict):
        raise MetadataError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _known_networks() -> tuple:
    from .nets import NETWORKS  # torch: only when a model is checked

    return tuple(NETWORKS)


PIPELINES = ("halfslice", "slices25d", "patch3d")   # trainer.pipeline's kinds
SPACING_RANGE = (0.05, 5.0)    # working-grid spacing, mm
PATCH_RANGE = (8, 512)         # 3D patch edge, voxels


def _check_context(pre) -> int:
    k = _int_in(pre.get("context"), *CONTEXT_RANGE, "preprocessing.context")
    if k % 2 == 0:
        raise MetadataError(f"preprocessing.context must be odd (slices centred on the one predicted), not {k}")
    return k


def _ints(pre, key, n, rng, what):
    v = pre.get(key)
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise MetadataError(f"preprocessing.{key} must be {what}, not {v!r}")
    return [_int_in(x, *rng, f"preprocessing.{key}") for x in v]


def _check_preprocessing(pre) -> tuple[dict, int]:
    """The checked preprocessing and the number of input channels it feeds the network."""
    pre = dict(_dict(pre, "preprocessing"))
    kind = pre.get("pipeline", "halfslice")   # files written before pipelines had names are half-slice ones
    if kind not in PIPELINES:
        raise MetadataError(f"preprocessing.pipeline must be one of {', '.join(PIPELINES)}, not {kind!r}")
    if kind == "halfslice":
        pre["size"] = _ints(pre, "size", 2, SIZE_RANGE, "[height, width]")
        pre["context"] = _check_context(pre)
        return pre, pre["context"]
    sp = pre.get("spacing_mm")
    if not isinstance(sp, (list, tuple)) or len(sp) != 3 or not all(
            _is_number(v) and SPACING_RANGE[0] <= float(v) <= SPACING_RANGE[1] for v in sp):
        raise MetadataError(f"preprocessing.spacing_mm must be 3 spacings in mm ({SPACING_RANGE[0]:g} to "
                            f"{SPACING_RANGE[1]:g}), not {sp!r}")
    if kind == "slices25d":
        pre["context"] = _check_context(pre)
        return pre, pre["context"]
    pre["patch"] = _ints(pre, "patch", 3, PATCH_RANGE, "[depth, height, width]")
    return pre, 1


def _check_network(network, config, context) -> dict:
    if not isinstance(network, str) or network.lower() not in _known_networks():
        raise MetadataError(f"network must be one of {', '.join(_known_networks())}, not {network!r}")
    config = dict(_dict(config, "network_config"))
    for key, value in config.items():
        if not isinstance(value, (bool, int, float, str)) and value is not None:
            raise MetadataError(f"network_config.{key} must be a number, true/false or text, not {value!r}")
        if key in CONFIG_RANGES:
            _int_in(value, *CONFIG_RANGES[key], f"network_config.{key}")
    channels = config.get("in_channels", 1)
    if channels != context:
        raise MetadataError(f"network_config.in_channels ({channels!r}) does not match the {context} input "
                            "channel(s) its preprocessing gives: the network would get another number of "
                            "slices than it was built for")
    return config


@dataclasses.dataclass
class ModelMetadata:
    """What a model file says about its network: one record, validated when read.

    Attributes
    ----------
    network : str
        A name :func:`napari_ian.trainer.nets.build_network` knows.
    network_config : dict
        Its settings; ``in_channels`` equals ``preprocessing["context"]``.
    preprocessing : dict
        ``pipeline`` (:mod:`napari_ian.trainer.pipeline`'s kind; none = ``halfslice``) and what it
        needs: ``halfslice`` ``size`` ([height, width], 8..2048 each) and ``context`` (odd,
        1..31); ``slices25d`` ``spacing_mm`` and ``context``; ``patch3d`` ``spacing_mm`` and
        ``patch`` (3 edges, 8..512). Other keys are kept as they are.
    labels : dict
        Label value (as text) -> meaning; 1 and 2 must be the right and left IAN.
    trained_on, parent, created, name : str
        Free text; ``parent`` is the model this one was fine-tuned from (or None).
    metrics : dict
        Test figures; ``test_dsc_mean``, when present, is a number.
    extra : dict
        Every other key of the file (``training``, ``finetune``, keys of newer versions),
        passed through unchanged.
    """

    network: str
    network_config: dict
    preprocessing: dict
    labels: dict = dataclasses.field(default_factory=lambda: dict(LABEL_MEANING))
    trained_on: str = ""
    parent: str | None = None
    metrics: dict = dataclasses.field(default_factory=dict)
    created: str = ""
    name: str = ""
    extra: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, d) -> "ModelMetadata":
        """Validate a metadata dict (as read from JSON) into a record.

        Raises
        ------
        MetadataError
            One line naming the first key that is missing, of the wrong type or out of range.
        """
        d = _dict(d, "model metadata")
        for key in ("network", "network_config", "preprocessing"):
            if key not in d:
                raise MetadataError(f"model metadata lacks {key!r}")
        pre, channels = _check_preprocessing(d["preprocessing"])
        config = _check_network(d["network"], d["network_config"], channels)
        labels = _dict(d.get("labels", LABEL_MEANING), "labels")
        for value, meaning in (("1", "right IAN"), ("2", "left IAN")):
            if labels.get(value) != meaning:
                raise MetadataError(f"labels must say {value} = {meaning} (this version's label meaning), "
                                    f"not {labels.get(value)!r}")
        metrics = _dict(d.get("metrics") or {}, "metrics")
        if "test_dsc_mean" in metrics and metrics["test_dsc_mean"] is not None and \
                not _is_number(metrics["test_dsc_mean"]):
            raise MetadataError(f"metrics.test_dsc_mean must be a number, not {metrics['test_dsc_mean']!r}")
        text = {}
        for key in ("trained_on", "created", "name"):
            value = d.get(key) or ""
            if not isinstance(value, str):
                raise MetadataError(f"{key} must be text, not {type(value).__name__}")
            text[key] = value
        parent = d.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise MetadataError(f"parent must be a model name or null, not {type(parent).__name__}")
        for key in ("training", "finetune"):
            if d.get(key) is not None:
                _dict(d[key], key)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        extra = {k: v for k, v in d.items() if k not in known}
        return cls(network=d["network"], network_config=config, preprocessing=pre, labels=dict(labels),
                   parent=parent, metrics=dict(metrics), extra=extra, **text)

    def to_dict(self) -> dict:
        """The JSON-ready dict (known keys, then the extra ones); empty text fields are left out."""
        out = {"network": self.network, "network_config": dict(self.network_config),
               "preprocessing": dict(self.preprocessing), "labels": dict(self.labels),
               "trained_on": self.trained_on, "parent": self.parent, "metrics": dict(self.metrics)}
        out.update({k: v for k, v in (("created", self.created), ("name", self.name)) if v})
        out.update(self.extra)
        return out


def validate_metadata(d) -> dict:
    """``d`` checked by :meth:`ModelMetadata.from_dict` and returned as a plain dict."""
    return ModelMetadata.from_dict(d).to_dict()


def large_tiles_by_default(metadata: dict | None) -> bool:
    """Whether a 3D patch model predicts in a few large tiles unless told (``--fast`` /
    ``--patches``, the panels' "fast" box): yes, except a fine-tuned model.

    The bundled model scored as well in large tiles as in its training-size patches or better, on
    every held-out style; a fine-tune trains on crops smaller than those patches, and fine-tuned
    models scored 0.01-0.05 DSC lower in large tiles than in patches (BENCHMARKS.md, twenty-first
    stop). Other models ignore the tiling.
    """
    return not (metadata or {}).get("finetune")
