"""The classifier end that POSTER and POSTER++ share: an SE gate on the fused token, then a linear layer.

Both authors' files define the same two classes; the attribute names (`linear1`, `linear2`,
`sigmod` (sic), `linear`) are their state-dict keys, so checkpoints of either model load strict.
"""
from __future__ import annotations

import torch
from torch import nn


class SEBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, dim)
        self.relu = nn.ReLU()
        self.linear2 = nn.Linear(dim, dim)
        self.sigmod = nn.Sigmoid()  # the authors' spelling is in the key names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmod(self.linear2(self.relu(self.linear1(x))))


class ClassificationHead(nn.Module):
    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))
