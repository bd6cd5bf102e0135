"""DDAMFN's loss term besides cross-entropy: the attention heads pushed apart."""
from __future__ import annotations

import sys

import torch
import torch.nn.functional as F


def attention_loss(heads: list[torch.Tensor], eps: float = sys.float_info.epsilon) -> torch.Tensor:
    """Pushes the heads apart: number of head pairs / (sum of their pairwise MSEs + eps); 0 for one head."""
    if len(heads) < 2:
        return heads[0].new_zeros(())
    total, pairs = heads[0].new_zeros(()), 0
    for i in range(len(heads) - 1):
        for j in range(i + 1, len(heads)):
            total = total + F.mse_loss(heads[i], heads[j])
            pairs += 1
    return pairs / (total + eps)
