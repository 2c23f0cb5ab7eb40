"""The precision policy: bf16 autocast on the CPU only where the CPU has bf16 instructions."""
import pytest
import torch

from napari_ian.trainer import device


@pytest.fixture
def fake_cpu(monkeypatch):
    """Set what oneDNN and PyTorch's CPU probes report; the cached answer is cleared around the test."""
    def set_cpu(onednn_bf16, x86, avx512_bf16=False, amx=False):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn_bf16)
        monkeypatch.setattr(torch.cpu, "_is_avx2_supported", lambda: x86)
        monkeypatch.setattr(torch.cpu, "_is_avx512_supported", lambda: x86)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        device.cpu_bf16_supported.cache_clear()
    yield set_cpu
    device.cpu_bf16_supported.cache_clear()


def test_avx512_without_bf16_instructions_computes_in_float32(fake_cpu):
    # oneDNN accepts bf16 on any AVX-512 CPU but emulates it there, about twice as slow as float32
    fake_cpu(onednn_bf16=True, x86=True)
    assert device.cpu_bf16_supported() is False
    assert device.use_bf16(torch.device("cpu"), "auto") is False
    assert device.use_bf16(torch.device("cpu"), True) is True       # asked for explicitly


@pytest.mark.parametrize("avx512_bf16, amx", [(True, False), (False, True), (True, True)])
def test_x86_with_bf16_instructions_uses_bf16(fake_cpu, avx512_bf16, amx):
    fake_cpu(onednn_bf16=True, x86=True, avx512_bf16=avx512_bf16, amx=amx)
    assert device.cpu_bf16_supported() is True
    assert device.use_bf16(torch.device("cpu"), "auto") is True


def test_without_onednn_bf16_never_bf16(fake_cpu):
    fake_cpu(onednn_bf16=False, x86=True, avx512_bf16=True, amx=True)
    assert device.cpu_bf16_supported() is False


@pytest.mark.parametrize("onednn_bf16", [True, False])
def test_other_cpus_follow_onednn(fake_cpu, onednn_bf16):
    fake_cpu(onednn_bf16=onednn_bf16, x86=False)
    assert device.cpu_bf16_supported() is onednn_bf16


def test_an_older_pytorch_without_the_probes_follows_onednn(fake_cpu, monkeypatch):
    fake_cpu(onednn_bf16=True, x86=True)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    device.cpu_bf16_supported.cache_clear()
    assert device.cpu_bf16_supported() is True
