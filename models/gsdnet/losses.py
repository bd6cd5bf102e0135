"""GSDNet's loss terms besides cross-entropy: gradual self-distillation from each exit to the next deeper one."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of the student against the teacher's softened distribution, both at `temperature`,
    averaged over the batch (the authors' `CrossEntropy`, T=3, no T^2 factor)."""
    target = F.softmax(teacher / temperature, dim=1)
    return -(F.log_softmax(student / temperature, dim=1) * target).sum(1).mean()


def gradual_distillation(logits: list[torch.Tensor], feats: list[torch.Tensor], temperature: float
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each exit k < 3 learns from exit k+1 (detached): (sum_k ||f_k - f_k+1||_2 over the whole batch,
    sum_k soft_CE(out_k, out_k+1))."""
    feat_term = logits[0].new_zeros(())
    kd_term = logits[0].new_zeros(())
    for k in range(len(logits) - 1):
        feat_term = feat_term + torch.dist(feats[k], feats[k + 1].detach())
        kd_term = kd_term + soft_cross_entropy(logits[k], logits[k + 1].detach(), temperature)
    return feat_term, kd_term
