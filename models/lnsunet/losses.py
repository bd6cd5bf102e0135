"""The two loss terms of LNSU-Net: re-balanced label smoothing and CAM flip consistency.

Both are weighted by the inverse class prior of the training split. Upstream hard-codes RAF-DB's
weights (in RAF-DB's class order) in every script, also for FER2013 (another class order) and
FERPlus (an invented 0.5 for the 8th class); here they come from the run's own training split.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def class_balance_weights(class_counts: Sequence[int]) -> torch.Tensor:
    """w_c = N / (10 * n_c) for the training split's counts n_c (N = sum of n_c).

    The scale reproduces upstream's constants exactly from RAF-DB's official training counts
    (12,271 images: 1290, 281, 717, 4772, 1982, 705, 2524 -> 0.95124031, 4.36690391, ...). It
    cancels in the label smoothing and sets the size of the flip term as upstream. A class
    absent from the split would divide by zero; it is counted once instead.
    """
    counts = torch.as_tensor([float(c) for c in class_counts], dtype=torch.float64)
    if counts.ndim != 1 or len(counts) < 2 or bool((counts < 0).any()) or float(counts.sum()) <= 0:
        raise ValueError(f"class_counts must be >= 2 non-negative counts with a positive sum, got {list(class_counts)}")
    return (counts.sum() / (10.0 * counts.clamp(min=1.0))).float()


def rebalanced_targets(targets: torch.Tensor, weights: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Soft targets: 1 - e on the true class; e shared by the other classes in proportion to
    their weights (rarer classes get more of it), renormalised per sample."""
    num_classes = weights.numel()
    one_hot = F.one_hot(targets, num_classes).to(weights.dtype)
    others = weights.unsqueeze(0) * (1.0 - one_hot)
    return one_hot * (1.0 - smoothing) + smoothing * others / others.sum(dim=1, keepdim=True)


def rebalanced_lsr_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                        smoothing: float) -> torch.Tensor:
    """Cross-entropy against `rebalanced_targets` (upstream's LSR2), averaged over the batch."""
    soft = rebalanced_targets(targets, weights.to(logits.device), smoothing)
    return -(soft * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def flip_consistency_loss(hm: torch.Tensor, hm_of_flipped: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """CAMs of an image and of its mirror image, mirrored back, should agree.

    hm, hm_of_flipped: [B, C, H, W]. Squared error averaged over H and W, summed over classes
    with the class weights, averaged over the batch. Mirroring the map back is an exact flip of
    the width axis (upstream does it with grid_sample on integer positions, the same values).
    """
    err = (hm.float() - hm_of_flipped.float().flip(-1)).pow(2).mean(dim=(2, 3))  # [B, C]
    return (err @ weights.to(err.device)).mean()
