"""GPU preflight: the architecture rule is checked on known devices and wheels; the CPU side for real."""
from __future__ import annotations

import pytest
import torch

from common.gpu import GPUPreflightError, preflight, supported

# What torch 2.14.1's CUDA 13.0 wheel (the images' torch) was compiled for.
CU130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


@pytest.mark.parametrize("capability, ok", [
    ((9, 0), True),     # H100/H200
    ((8, 9), True),     # L4/RTX 4090: sm_86 binaries run on 8.9 (same major, higher minor)
    ((7, 5), True),     # T4
    ((7, 0), False),    # V100: below every listed architecture
    ((6, 1), False),    # GTX 1080: dropped by CUDA 13 builds
    ((12, 1), True),    # RTX 50xx-class minor revision: sm_120 binaries run on it
    ((13, 0), False),   # a future major: no binary and no PTX for it in this wheel
])
def test_supported_follows_cuda_compatibility(capability, ok):
    assert supported(capability, CU130) is ok


def test_ptx_and_variant_entries():
    assert supported((13, 0), ["sm_90", "compute_120"])  # PTX is JIT-compiled for newer devices
    assert not supported((8, 0), ["compute_86"])
    assert supported((9, 0), ["sm_90a"])


def test_the_installed_wheel_is_the_one_described():
    assert torch.cuda.get_arch_list() == CU130


def test_cpu_run_passes_and_names_the_device(monkeypatch):
    monkeypatch.delenv("FER_EXPECT_CUDA", raising=False)
    assert preflight(torch.device("cpu")) == "cpu"


def test_gpu_asked_for_but_not_visible_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("FER_EXPECT_CUDA", "1")
    with pytest.raises(GPUPreflightError, match="GPU was assigned .* sees no CUDA device"):
        preflight(torch.device("cpu"))


@pytest.mark.parametrize("value, share", [(None, 1), ("1", 1), ("3", 3)])
def test_the_memory_share_comes_from_the_harness(monkeypatch, value, share):
    from common.gpu import memory_share

    if value is None:
        monkeypatch.delenv("FER_GPU_SHARE", raising=False)
    else:
        monkeypatch.setenv("FER_GPU_SHARE", value)
    assert memory_share() == share


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_memory_share_names_the_value(monkeypatch, value):
    from common.gpu import memory_share

    monkeypatch.setenv("FER_GPU_SHARE", value)
    with pytest.raises(GPUPreflightError, match=f"FER_GPU_SHARE='{value}'"):
        memory_share()
