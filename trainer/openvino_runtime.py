"""The 3D network's inference through OpenVINO on a CPU: the same weights, about twice as fast.

On a CPU without native bf16, PyTorch runs the bundled 3D U-Net in float32 through oneDNN one
operator at a time; OpenVINO compiles the whole graph (fusing each convolution with its instance
norm and activation) and ran it 1.3-1.5 times as fast on the training-size patches and about twice
as fast on ``--fast`` tiles, in the same float32 precision (``BENCHMARKS.md``, nineteenth stop).

Only inference moves: training and fine-tuning stay in PyTorch. A network is converted once
(``openvino.convert_model`` on a trace of it, a few seconds) and its OpenVINO model (IR: ``.xml``
plus ``.bin``, float32 weights) is cached under ``<user home>/cache/openvino`` by a hash of the
network's class, configuration and weights, so a model file converts once per machine and a
fine-tuned model gets its own entry. A bundled model may also ship an int8 version
(:mod:`napari_ian.trainer.quantise_int8`), found by :func:`int8_model_path` from the weights it
was made from and run with ``precision="int8"``. OpenVINO is optional (``pip install "napari-ian[openvino]"``);
without it, or where a conversion fails, prediction runs in PyTorch as before.

OpenVINO's Python package sends anonymous usage events to Intel when it is imported and when it
converts a model, unless the user declined (its ``opt_in_out`` tool) or it runs in a CI job. A
tool for patient images has no business calling out, so OpenVINO is only ever imported and asked
to convert under :func:`_telemetry_declined` (``tests/test_openvino_runtime.py`` checks that it
then leaves no trace of a telemetry client in the home folder).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write_bytes

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "openvino", "openvino-int8")
_FORMAT = "ir-float32-2"          # part of the cache key: bump when the conversion changes
INT8_SUFFIX = ".int8"             # <model>.int8.xml / .bin / .json beside a bundled model file
_COMPILED: dict[str, "OpenVINONetwork"] = {}   # this process's compiled networks, by cache key
_COMPILED_MAX = 3
_LOCK = threading.Lock()


_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def _telemetry_declined():
    """OpenVINO's telemetry off while it imports or converts (see the module docstring).

    Its telemetry client declines in a CI job (``CI=true``): the one switch that needs no file in
    the user's home folder. The variable is restored afterwards."""
    with _ENV_LOCK:
        old = os.environ.get("CI")
        os.environ["CI"] = "true"
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("CI", None)
            else:
                os.environ["CI"] = old


def openvino_version() -> str | None:
    """OpenVINO's version where it is installed, else ``None``."""
    try:
        with _telemetry_declined():
            import openvino
    except Exception:       # not installed, or a broken install: PyTorch runs the network
        return None
    return str(getattr(openvino, "__version__", "") or openvino.get_version())


def x86_cpu() -> bool:
    """Whether this is an x86-64 CPU, where OpenVINO was measured faster than PyTorch (elsewhere,
    as on ARM, ``--backend auto`` keeps PyTorch; ``--backend openvino`` still runs it)."""
    import platform

    return platform.machine().lower() in ("x86_64", "amd64", "x64")


def cache_dir() -> Path:
    from .registry import user_home

    return user_home() / "cache" / "openvino"


def weights_key(model: torch.nn.Module) -> str:
    """A hash of what the network computes: its class, configuration and weights."""
    h = hashlib.sha256()
    config = getattr(model, "config", None) or {}
    h.update(json.dumps([type(model).__qualname__, config], sort_keys=True, default=str).encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def network_key(model: torch.nn.Module) -> str:
    """The cache key of the network's float32 conversion: :func:`weights_key`, the conversion's
    format and OpenVINO's version."""
    h = hashlib.sha256(json.dumps([_FORMAT, openvino_version(), weights_key(model)]).encode())
    return h.hexdigest()[:32]


def int8_model_path(model: torch.nn.Module, key: str | None = None) -> Path | None:
    """The bundled int8 OpenVINO model made from exactly these weights (``.xml``), or ``None``.

    An int8 model is made once, by ``bench/make_int8.py``, beside a bundled model file; its
    ``.json`` names the :func:`weights_key` it was made from, so a fine-tuned or retrained network
    never finds another's int8 model. ``key``: the model's :func:`weights_key`, where the caller
    has it already (the weights are hashed once)."""
    from .registry import BUNDLED_DIR

    for card in sorted(Path(BUNDLED_DIR).glob(f"*{INT8_SUFFIX}.json")):
        try:
            made_from = json.loads(card.read_text()).get("weights_key")
        except (OSError, ValueError):
            continue
        key = key or weights_key(model)
        xml = card.with_suffix(".xml")
        if made_from == key and xml.is_file() and xml.with_suffix(".bin").is_file():
            return xml
    return None


def _plain_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A float32, contiguous, eval copy of ``model`` whose instance norms are PyTorch's own class.

    The network's channels-last instance norm (:class:`~napari_ian.trainer.nets.InstanceNorm3dCL`)
    computes the same function with its own sums; PyTorch's operator is what the converter maps
    onto OpenVINO's normalisation, which it then fuses."""
    from .nets import InstanceNorm3dCL

    plain = copy.deepcopy(model).float().to(memory_format=torch.contiguous_format).eval()
    for mod in plain.modules():
        if isinstance(mod, InstanceNorm3dCL):
            mod.__class__ = torch.nn.InstanceNorm3d
    return plain


def _convert(model: torch.nn.Module, example_shape):
    import openvino as ov

    plain = _plain_copy(model)
    dims = len(example_shape)
    shape = ov.PartialShape([-1, int(example_shape[1])] + [-1] * (dims - 2))
    # the trace warns about the instance norm's input-size check (constant here: a trace of any
    # size has more than one voxel) and about TorchScript's deprecation: nothing a user can act on
    with torch.no_grad(), _telemetry_declined(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ov.convert_model(plain, example_input=torch.zeros(example_shape), input=[shape])


CONVERTING = "converting the network for OpenVINO (once per model and machine, about 10 s)"


def _cached_model(model: torch.nn.Module, key: str, example_shape, progress=None):
    """The network's OpenVINO model from the cache, converting (and caching) it where missing
    (``progress`` is told first: a :data:`~napari_ian.trainer.progress.STAGE` event)."""
    import openvino as ov

    from .progress import STAGE, report

    core = ov.Core()
    folder = cache_dir()
    xml, weights = folder / f"{key}.xml", folder / f"{key}.bin"
    if xml.is_file() and weights.is_file():
        try:
            return core.read_model(str(xml))
        except Exception as exc:   # a damaged entry: convert again and replace it
            log.warning("OpenVINO cache entry %s unreadable (%s); converting again", xml, exc)
    report(progress, STAGE, message=CONVERTING)
    ov_model = _convert(model, example_shape)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".convert-") as tmp:
            ov.save_model(ov_model, str(Path(tmp) / "m.xml"), compress_to_fp16=False)
            # the weights first: an .xml (read first) always finds its complete .bin beside it
            atomic_write_bytes(weights, (Path(tmp) / "m.bin").read_bytes())
            atomic_write_bytes(xml, (Path(tmp) / "m.xml").read_bytes())
    except Exception as exc:       # a read-only or full disk costs the next run a conversion
        log.warning("could not cache the OpenVINO model in %s (%s)", folder, exc)
    return ov_model


class OpenVINONetwork(torch.nn.Module):
    """A network compiled by OpenVINO for the CPU, called like the PyTorch network it came from.

    ``forward`` takes and returns a float32 CPU tensor of any batch and spatial size the network
    accepts; ``.to(...)`` and ``.eval()`` are no-ops (it has no parameters). ``config`` is the
    original network's, so callers reading the network's depth still can; ``precision`` is ``f32``
    or ``int8`` (:func:`compile_for_cpu`).
    """

    def __init__(self, compiled, config: dict | None, key: str, precision: str = "f32"):
        super().__init__()
        self.precision = precision
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()     # one infer request: one call at a time
        self.config = config
        self.key = key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        with self._lock:
            out = self._request.infer({0: a})[0]
            return torch.from_numpy(np.array(out, dtype=np.float32, copy=True))


def compile_for_cpu(model: torch.nn.Module, example_shape=(1, 1, 32, 96, 96), threads: int | None = None,
                    progress=None, precision: str = "f32") -> OpenVINONetwork:
    """``model`` compiled by OpenVINO for this CPU, from this process's or the disk's cache.

    Parameters
    ----------
    model : torch.nn.Module
        A network of one input tensor (N, C, spatial...); its first call's shapes need not match
        ``example_shape``, which only fixes the channel count and the trace.
    example_shape : tuple
        An input shape to trace the network with.
    threads : int, optional
        CPU threads (default: PyTorch's ``torch.get_num_threads()``, so both use the same cores).
    progress : callable, optional
        Told when the network is converted (:data:`CONVERTING`, a ``stage`` event), which only
        happens where neither this process nor the disk cache has it.
    precision : {"f32", "int8"}
        ``f32``: the network's own weights, converted here. ``int8``: the bundled int8 model made
        from these weights (:func:`int8_model_path`; ``bench/make_int8.py`` makes it).

    Raises
    ------
    ImportError
        OpenVINO is not installed.
    LookupError
        ``int8`` for a network no bundled int8 model was made from.
    Exception
        Whatever the conversion or compilation raised (a network OpenVINO cannot convert).
    """
    if precision not in ("f32", "int8"):
        raise ValueError(f"precision must be f32 or int8, not {precision!r}")
    if openvino_version() is None:
        raise ImportError('OpenVINO is not installed (pip install "napari-ian[openvino]")')
    import openvino as ov

    threads = int(threads or torch.get_num_threads())
    if precision == "int8":
        wkey = weights_key(model)
        xml = int8_model_path(model, key=wkey)
        if xml is None:
            raise LookupError("no int8 version of this model ships with napari-ian (its weights differ from "
                              "the bundled models'): use OpenVINO's float32 (--backend openvino)")
        key = f"int8-{wkey}"
    else:
        key = network_key(model)
    with _LOCK:
        net = _COMPILED.get(f"{key}-{threads}")
        if net is None:
            if precision == "int8":
                with _telemetry_declined():
                    ov_model = ov.Core().read_model(str(xml))
            else:
                ov_model = _cached_model(model, key, tuple(example_shape), progress)
            # f32: what is not quantised runs in float32 on any CPU (not bf16 where it has it)
            compiled = ov.Core().compile_model(ov_model, "CPU", {
                "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads})
            net = OpenVINONetwork(compiled, copy.deepcopy(getattr(model, "config", None)), key, precision)
            while len(_COMPILED) >= _COMPILED_MAX:
                _COMPILED.pop(next(iter(_COMPILED)))
            _COMPILED[f"{key}-{threads}"] = net
    return net
