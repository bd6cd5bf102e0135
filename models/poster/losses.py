"""POSTER's loss: the reference suite's cross-entropy plus its label-smoothing cross-entropy, both on the logits."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def ce_plus_smoothed_ce(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float,
                        smoothing_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(CE + smoothing_weight x LSCE, CE, LSCE). LSCE = (1 - e) * NLL + e * mean over classes of -log p:
    the suite's LabelSmoothingCrossEntropy, which is torch's label_smoothing=e."""
    ce = F.cross_entropy(logits, targets)
    lsce = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    return ce + smoothing_weight * lsce, ce, lsce
