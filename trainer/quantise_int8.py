"""An int8 version of a 3D network for OpenVINO on the CPU: post-training quantisation with NNCF.

On a 2-core CPU without native bf16 the network is most of ``ian predict``'s time. Its int8
version, run by OpenVINO, took about 0.6 of the float32 time at the same held-out DSC
(``BENCHMARKS.md``, twentieth stop). It is made once, by a developer, for a bundled model
(``bench/make_int8.py``) and ships beside it (``<model>.int8.xml``, ``.bin`` and a ``.json`` card);
:func:`napari_ian.trainer.openvino_runtime.int8_model_path` finds it by the weights it was made
from. Users need neither NNCF nor calibration data.

The recipe, chosen by measurement on the held-out styles (an earlier one lost 0.056 DSC on one):

* calibration patches from randomised training renders (both style families, training-range
  anatomies), never from a held-out set, so that the activation ranges cover many looks;
* NNCF's ``MIXED`` preset (asymmetric activations: after a ReLU they are one-signed);
* the first convolution (the raw intensities) and the output convolution (the logits) stay float32.
"""
from __future__ import annotations

import datetime
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write_bytes
from .openvino_runtime import INT8_SUFFIX, _convert, _telemetry_declined, openvino_version, weights_key
from .pipeline import Pipeline
from .progress import PREPARE, ProgressCallback, report


def calibration_patches(pipeline: Pipeline, n_anatomies: int = 4, per_volume: int = 24, seed: int = 0,
                        anatomy_cache="data/anatomy", progress: ProgressCallback | None = None) -> list[np.ndarray]:
    """Random training-size patches (each (1, 1, *patch) float32, normalised like prediction's input)
    of randomised renders of training-range anatomies, one render per style family each.

    Parameters
    ----------
    pipeline : Pipeline
        The model's pipeline (a 3D patch one): patch size and normalisation.
    n_anatomies, per_volume : int
        Anatomies rendered, and patches taken from each render.
    seed : int
        Renders and patch positions.
    anatomy_cache : path
        Where rasterised anatomies are cached (as ``ian train --synthetic`` does).
    progress : callable, optional
        A ``prepare`` event per render.
    """
    from ..sample_data.render import STYLE_RANGES
    from ..sample_data.synth import SEED_BASE, cached_anatomy
    from .synthetic import _render

    if pipeline.kind != "patch3d":
        raise ValueError(f"int8 models are made for 3D patch models, not {pipeline.kind!r}")
    rng = np.random.default_rng(seed)
    families = STYLE_RANGES["family"]
    out, total = [], n_anatomies * len(families)
    for i in range(n_anatomies):
        anatomy = cached_anatomy(SEED_BASE["train"] + i, anatomy_cache)
        for j, family in enumerate(families):
            vol, labels, _ = _render(anatomy, seed * 1000 + i * len(families) + j, pipeline, family=family)
            # training's crop sampler, every crop anywhere in the volume (none centred on the nerve)
            x, _ = pipeline.sample(vol, labels, rng, per_volume, positive_fraction=0.0)
            out += [x[k:k + 1] for k in range(len(x))]
            report(progress, PREPARE, i * len(families) + j + 1, total)
    return out


def quantise(model: torch.nn.Module, patches: list[np.ndarray]):
    """The network converted for OpenVINO and quantised to int8 on ``patches`` (an ``openvino.Model``).

    Needs NNCF (``pip install nncf``; a developer's tool, not a user's dependency). The first and
    the last convolution stay float32 (see the module docstring)."""
    ov_model = _convert(model, patches[0].shape)     # (declines OpenVINO's telemetry itself)
    with _telemetry_declined():
        import nncf

        convs = [op.get_friendly_name() for op in ov_model.get_ordered_ops() if op.get_type_name() == "Convolution"]
        keep = nncf.IgnoredScope(names=[convs[0], convs[-1]]) if len(convs) > 1 else None
        return nncf.quantize(ov_model, nncf.Dataset(patches), preset=nncf.QuantizationPreset.MIXED,
                             subset_size=len(patches), ignored_scope=keep)


def save_int8(int8_model, model: torch.nn.Module, model_file, calibration: dict) -> Path:
    """Write ``int8_model`` beside ``model_file`` (``<stem>.int8.xml``, ``.bin``, ``.json``), atomically.

    The ``.json`` card names the :func:`~napari_ian.trainer.openvino_runtime.weights_key` of
    ``model`` (the float32 network it was made from), the versions that made it and ``calibration``
    (how its calibration patches were made). Returns the ``.xml`` path."""
    import openvino as ov

    model_file = Path(model_file)
    stem = model_file.parent / (model_file.stem + INT8_SUFFIX)
    try:
        with _telemetry_declined():
            import nncf
        nncf_version = nncf.__version__
    except ImportError:
        nncf_version = None
    card = {"weights_key": weights_key(model), "made_from": model_file.name, "openvino": openvino_version(),
            "nncf": nncf_version, "calibration": calibration,
            "kept_float32": "the first and the last convolution", "made_by": "bench/make_int8.py",
            "created": datetime.date.today().isoformat()}
    with tempfile.TemporaryDirectory(dir=model_file.parent, prefix=".int8-") as tmp:
        ov.save_model(int8_model, str(Path(tmp) / "m.xml"), compress_to_fp16=False)
        # the weights first, the card last: a card always finds its complete model
        atomic_write_bytes(Path(f"{stem}.bin"), (Path(tmp) / "m.bin").read_bytes())
        atomic_write_bytes(Path(f"{stem}.xml"), (Path(tmp) / "m.xml").read_bytes())
    atomic_write_bytes(Path(f"{stem}.json"), (json.dumps(card, indent=1) + "\n").encode())
    return Path(f"{stem}.xml")
