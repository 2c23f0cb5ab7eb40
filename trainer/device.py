"""Where networks run and at what precision: one policy for training, prediction and fine-tuning.

``auto`` picks CUDA, then Apple MPS, then the CPU. On CUDA, mixed precision (fp16 autocast with a
gradient scaler when training); on CPUs that support it, bf16 autocast and channels-last
memory, which make these convolutional networks 1.5-5x faster on a laptop CPU
(``BENCHMARKS.md``); otherwise float32.
"""
from __future__ import annotations

import functools

import torch


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, then Apple MPS, then CPU; otherwise the named device."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def cpu_bf16_supported() -> bool:
    """Whether this CPU runs bf16 convolutions natively, so that bf16 autocast is faster than float32.

    oneDNN accepts bf16 on any x86 CPU with AVX-512 and converts in software where the CPU has no
    bf16 instructions: there bf16 is about twice as slow as float32 (``BENCHMARKS.md``, eleventh
    stop). So on x86 the CPU must have AVX512_BF16 or AMX; elsewhere oneDNN's own check decides.
    """
    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
    except Exception:
        return False
    return _x86_bf16_instructions() is not False


def _x86_bf16_instructions():
    """``True``/``False`` whether an x86 CPU has bf16 instructions (AVX512_BF16 or AMX tiles);
    ``None`` on other CPUs, or where this PyTorch cannot tell."""
    cpu = torch.cpu
    try:
        if not (cpu._is_avx2_supported() or cpu._is_avx512_supported()):
            return None
        return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())
    except AttributeError:
        return None


def use_bf16(device: torch.device, setting="auto") -> bool:
    """bf16 autocast on the CPU: ``True``/``False``, or ``"auto"`` (where supported)."""
    return device.type == "cpu" and (setting is True or (setting == "auto" and cpu_bf16_supported()))


def autocast_context(device: torch.device, bf16: bool):
    """fp16 autocast on CUDA, bf16 on the CPU when asked, nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if device.type == "cpu" and bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def memory_format(ndim: int):
    """Channels-last layout for a batch of ``ndim`` dimensions (4: 2D images, 5: 3D volumes).

    Channels-last makes oneDNN's bf16 convolutions markedly faster on the CPU, in 3D too
    (``BENCHMARKS.md``)."""
    return torch.channels_last_3d if ndim == 5 else torch.channels_last


def describe(device: torch.device, bf16: bool) -> str:
    """One phrase for users: where and how a run computes."""
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)}), mixed precision (AMP)"
    if device.type == "cpu":
        return "CPU, bf16 autocast" if bf16 else "CPU, float32"
    return str(device)
