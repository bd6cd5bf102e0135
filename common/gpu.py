"""GPU preflight: before any data is read, check that this torch build can run on the device it got.

A torch wheel carries kernels for a list of architectures (`torch.cuda.get_arch_list()`); a GPU outside
it fails on its first kernel, often an hour into a sweep. A run that wants CUDA checks the device's
compute capability against that list and runs one tiny kernel; a mismatch is a recorded failure whose
message names the GPU, its capability and the supported list.
"""
from __future__ import annotations

import os

import torch


class GPUPreflightError(RuntimeError):
    """The GPU this run was given cannot run this torch build (or no GPU is visible although one was asked for)."""


def supported(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """True if a device of `capability` can run a build compiled for `arch_list`.

    sm_XY runs on devices of exactly that major version with minor >= Y (binary compatibility within a
    major version); compute_XY (PTX) is compiled by the driver for any device of capability >= X.Y.
    """
    major, minor = capability
    for arch in arch_list:
        kind, _, digits = arch.partition("_")
        digits = digits.rstrip("af")  # sm_90a / sm_100f: architecture-specific variants
        if not digits.isdigit() or len(digits) < 2:
            continue
        a_major, a_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and a_major == major and a_minor <= minor:
            return True
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def preflight(device: torch.device) -> str:
    """Check `device` (raise GPUPreflightError) and return a one-line description of it."""
    if device.type != "cuda":
        # A GPU the user sent away on purpose (train.device=cpu) is no failure of the toolkit.
        if os.environ.get("FER_EXPECT_CUDA") == "1" and not torch.cuda.is_available():
            raise GPUPreflightError(
                "a GPU was assigned to this run (GPUS=...) but torch sees no CUDA device "
                f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); in a container this means the "
                "NVIDIA container toolkit did not pass the GPU in; on the host, check `nvidia-smi`")
        return str(device)
    name = torch.cuda.get_device_name(device)
    capability = torch.cuda.get_device_capability(device)
    arch_list = torch.cuda.get_arch_list()
    cap = f"{capability[0]}.{capability[1]}"
    if not supported(capability, arch_list):
        raise GPUPreflightError(f"GPU {name} (compute capability {cap}) is not supported by torch "
                                f"{torch.__version__} (CUDA {torch.version.cuda}), built for {', '.join(arch_list)}")
    try:
        x = torch.arange(8, device=device, dtype=torch.float32)
        ok = float((x * 2).sum().item()) == 56.0
    except RuntimeError as e:
        raise GPUPreflightError(f"a test kernel failed on GPU {name} (compute capability {cap}): {e}") from e
    if not ok:
        raise GPUPreflightError(f"a test kernel gave a wrong result on GPU {name} (compute capability {cap})")
    share = memory_share()
    if share > 1:
        # Runs sharing a GPU (JOBS > GPUS) each get a fixed part of its memory, so one run's growth is
        # its own out-of-memory failure, not its neighbours'.
        # This call needs an index, and train.device=auto gives plain `cuda` (the current device).
        index = device.index if device.index is not None else torch.cuda.current_device()
        torch.cuda.set_per_process_memory_fraction(1 / share, index)
        return f"{device} ({name}, compute capability {cap}; shared by {share} runs, 1/{share} of its memory each)"
    return f"{device} ({name}, compute capability {cap})"


def memory_share() -> int:
    """How many runs the harness put on this run's GPU at once (FER_GPU_SHARE, set by its runner)."""
    value = os.environ.get("FER_GPU_SHARE", "1")
    if not value.isdigit() or int(value) < 1:
        raise GPUPreflightError(f"FER_GPU_SHARE={value!r}: expected a whole number >= 1 (set by the harness)")
    return int(value)
