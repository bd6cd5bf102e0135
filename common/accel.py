"""GPU efficiency options of the training loop, in one place: channels-last memory layout, the
autocast dtype, and an optional torch.compile of the training step.

All of them act on CUDA only. On the CPU every helper here returns its input unchanged, so a CPU
run's numbers are the same with any of these settings (tests/common/test_accel.py).

- `train.channels_last` (default true): model and input batches in NHWC layout, which cuDNN's
  convolution kernels prefer (Tensor Cores); the same function, another memory order.
- `train.amp_dtype` (float16 | bfloat16, default float16): the autocast dtype when `train.amp` is
  on. float16 is what the recipes that use AMP specify (with a GradScaler); bfloat16 has float32's
  range, so it needs no loss scaling, and is the faster choice on Ampere and newer.
- `train.compile` (default false): torch.compile of the model's training forward; the first epoch
  pays the compilation.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def prepare(task: torch.nn.Module, device: torch.device, tcfg: dict[str, Any]) -> Callable:
    """The callable the training loop steps with: `task` itself, in channels-last layout and/or
    compiled on CUDA when the config asks. `task` stays the module whose state is saved."""
    if device.type != "cuda":
        return task
    if tcfg["channels_last"]:
        task.to(memory_format=torch.channels_last)
    return torch.compile(task) if tcfg["compile"] else task


def layout(x: torch.Tensor, device: torch.device, tcfg: dict[str, Any]) -> torch.Tensor:
    """A batch already on `device` in channels-last layout on CUDA when configured; unchanged otherwise."""
    if device.type == "cuda" and tcfg["channels_last"] and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def amp_dtype(tcfg: dict[str, Any]) -> torch.dtype:
    name = tcfg["amp_dtype"]
    if name not in AMP_DTYPES:
        raise ValueError(f"train.amp_dtype={name!r}; valid: {', '.join(AMP_DTYPES)}")
    return AMP_DTYPES[name]


def autocast_dtype(tcfg: dict[str, Any], device: torch.device) -> torch.dtype | None:
    """The dtype a run computes in under autocast, in training and in evaluation alike: None when
    `train.amp` is off or the device is not CUDA."""
    return amp_dtype(tcfg) if tcfg["amp"] and device.type == "cuda" else None


def needs_scaler(amp: bool, tcfg: dict[str, Any]) -> bool:
    """Loss scaling is for float16's narrow range only; bfloat16 does without."""
    return amp and amp_dtype(tcfg) == torch.float16
