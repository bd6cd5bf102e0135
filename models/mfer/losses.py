"""A STAND-IN for MFER's unpublished "Deep Smooth Feature" (DSF) loss.

What is known: the paper's abstract says DSF "balance[s] the probability difference of encoded
intra-class features and promote[s] intra-class features towards corresponding centers"; its
figures compare it with the LGM loss (large-margin Gaussian mixture, Wan et al. CVPR 2018); the
authors' train.py builds `FeatureLoss(feat_dim=1024, num_class=7)` with learnable parameters
(given to the optimiser), applies it to the pooled 1024-d feature and has `--weight_loss 0.001`
("loss weight of feature loss"); model/smooth_feature.py says "The DSF Loss will release soon".
The loss itself was never published.

The stand-in follows that description with the pieces LGM and centre loss are made of:
learnable class centres mu_k [C, 1024] and squared distances d_k = ||f - mu_k||^2 / 2.
  - "probability difference ... balanced": a posterior over classes from the distances,
    softmax(-d), trained with *label-smoothed* cross-entropy (the "smooth" in the name) so the
    distance posterior is not pushed to a one-hot;
  - "towards corresponding centers": the centre-loss term mean_i d_{y_i}.
`dsf: smooth_center` is both terms; `dsf: center` is the centre term alone (Wen et al. 2016 with
learnable centres); `dsf: none` trains with the Msc label-smoothing losses only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DSF_CHOICES = ("smooth_center", "center", "none")


class DSFStandIn(nn.Module):
    """Feature loss on the pooled feature; its centres are parameters, so the optimiser trains them."""

    def __init__(self, num_classes: int, feat_dim: int, mode: str = "smooth_center", smoothing: float = 0.1) -> None:
        super().__init__()
        if mode not in DSF_CHOICES or mode == "none":
            raise ValueError(f"DSF stand-in mode {mode!r} is not valid; choose one of smooth_center, center "
                             f"(or model.dsf=none to build no feature loss)")
        self.mode = mode
        self.smoothing = float(smoothing)
        # Zero init: every class starts at the same point, so the smoothed posterior starts uniform
        # (loss log C) and the centres are pulled apart by the data, not by a random draw.
        self.centers = nn.Parameter(torch.zeros(num_classes, feat_dim))

    def distances(self, feat: torch.Tensor) -> torch.Tensor:
        """d[i, k] = ||f_i - mu_k||^2 / 2, [B, C]."""
        # Explicit differences (B x C x D is small): exact, and no sqrt whose gradient is undefined at 0.
        return 0.5 * (feat.float()[:, None, :] - self.centers.float()[None]).pow(2).sum(-1)

    def forward(self, feat: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        d = self.distances(feat)
        out = {"dsf_center": d.gather(1, targets[:, None]).mean()}
        if self.mode == "smooth_center":
            out["dsf_smooth"] = F.cross_entropy(-d, targets, label_smoothing=self.smoothing)
        out["dsf"] = sum(out.values())
        return out
