"""DAN's loss terms besides cross-entropy: affinity (features to class centres) and partition (heads apart)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AffinityLoss(nn.Module):
    """Pulls pooled features to learnable class centres, scaled by the centres' spread.

    The centres are a parameter of this module, which is a submodule of the task, so the
    optimiser updates them (the reference suite left them out of the optimiser in 5 of 6 scripts).
    """

    def __init__(self, num_classes: int, feat_dim: int = 512) -> None:
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, feat: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(feat, 1).flatten(1)
        # Squared distance of each sample to its own class centre.
        dist = (x - self.centers[labels]).pow(2).sum(dim=1)
        dist = dist / self.centers.var(dim=0).sum()
        return dist.clamp(min=1e-12, max=1e12).sum() / x.size(0)


class PartitionLoss(nn.Module):
    """Pushes the attention heads apart: log(1 + num_heads / variance across heads)."""

    def forward(self, heads: torch.Tensor) -> torch.Tensor:
        num_heads = heads.size(1)
        if num_heads <= 1:
            return heads.new_zeros(())
        return torch.log1p(num_heads / heads.var(dim=1).mean())
