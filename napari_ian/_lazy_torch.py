"""What the panels need from torch without importing it on the GUI thread (importing it takes 1-2 s).

Docking a panel must not freeze napari while torch loads. Torch is imported once per process in a
worker; until then the Predict and Fine-tune panels offer ``auto`` and ``cpu`` and the models by
file name, and when it is loaded they add ``cuda`` / ``mps``, a line per device saying how it
runs (CUDA with mixed precision, the CPU with bf16 where supported) and the models' metadata.
"""
from __future__ import annotations

_KNOWN: tuple | None = None      # (devices, notes) once probed
_WAITING: list = []


def _probe():
    from ._imports import import_torch

    import_torch()
    import torch

    from .trainer.train import cpu_bf16_supported, pick_device

    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    notes = {}
    for name in devices:
        dev = pick_device(name)
        how = {"cuda": "mixed precision (AMP)", "cpu": "bf16 autocast" if cpu_bf16_supported() else "float32",
               "mps": "float32"}.get(dev.type, "")
        notes[name] = f"Runs on: {dev.type.upper()}, {how}"
    return devices, notes


def _known(result):
    global _KNOWN
    _KNOWN = result
    waiting, _WAITING[:] = list(_WAITING), []
    for callback in waiting:
        callback(*_KNOWN)


def torch_ready() -> bool:
    """True once the probe has loaded torch (model metadata can be read on the GUI thread then)."""
    return _KNOWN is not None


def model_entries() -> list:
    """``(name, source, metadata or None)`` of the bundled and user models, bundled first.

    Before torch is loaded only the file names are known (metadata None); a file that turns out
    unreadable is dropped once it is read.
    """
    from .trainer.registry import BUNDLED_DIR, list_models, user_models_dir

    if torch_ready():
        return [(e.name, e.source, e.metadata) for e in list_models()]
    return [(p.stem, source, None) for source, folder in (("bundled", BUNDLED_DIR), ("user", user_models_dir()))
            if folder.is_dir() for p in sorted(folder.glob("*.pt"))]


def when_devices_known(callback) -> None:
    """Call ``callback(devices, notes)`` on the GUI thread once the devices are known (at once if they are)."""
    if _KNOWN is not None:
        callback(*_KNOWN)
        return
    _WAITING.append(callback)
    if len(_WAITING) == 1:
        from napari.qt.threading import thread_worker
        from qtpy.QtCore import QTimer

        def start():
            worker = thread_worker(_probe, ignore_errors=True)()
            worker.returned.connect(_known)
            worker.errored.connect(lambda exc: _known((["auto", "cpu"], {})))
            worker.start()

        QTimer.singleShot(0, start)     # after the panel is docked and shown
