"""Helpers for loading the backbones' published files."""
from __future__ import annotations

import torch
from torch import nn

_COUNTER = ".num_batches_tracked"


def fill_bn_counters(module: nn.Module, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Add BatchNorm `num_batches_tracked` counters that a file lacks but whose layer it has.

    Files saved before PyTorch 0.4.1 have no counters; nn.Module.load_state_dict fills them in
    for such files (strict loads of them work upstream), so a strict load here must too. The
    counter only matters for BatchNorm with momentum=None, which these networks do not use.
    Returns the completed state and the keys that were added.
    """
    target = module.state_dict()
    out = dict(state)
    added = []
    for key, value in target.items():
        if key.endswith(_COUNTER) and key not in out and key[: -len(_COUNTER)] + ".running_mean" in out:
            out[key] = torch.zeros_like(value)
            added.append(key)
    return out, added
