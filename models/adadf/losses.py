"""Ada-DF's loss terms and class label distributions, as plain functions.

Read from the authors' train.py/utils.py (taylor-xy0827/Ada-DF) and the reference suite's
AdaDF/adadf_*_crossval.py (StevenHSKim/FER-crossval); see the model README for the deviations.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def warmup_alphas(epoch: int, beta: int, alpha: float | None = None) -> tuple[float, float]:
    """(alpha_1, alpha_2): the weights of the KL term and of the CE term in epoch `epoch` (1-based).

    During the first `beta` epochs the KL term ramps up (alpha_1 = exp(-(1 - e/beta)^2), CE at
    full weight); afterwards KL stays at 1 and the CE weight decays as exp(-(1 - beta/e)^2).
    A fixed `alpha` overrides the schedule with (alpha, 1 - alpha), as the authors' --alpha does.
    """
    if epoch < 1:
        raise ValueError(f"epoch is 1-based, got {epoch}")
    if alpha is not None:
        return float(alpha), 1.0 - float(alpha)
    if epoch <= beta:
        return math.exp(-((1 - epoch / beta) ** 2)), 1.0
    return 1.0, math.exp(-((1 - beta / epoch) ** 2))


def rank_regularization(attention: torch.Tensor, tops: float = 0.7, margin: float = 0.07) -> torch.Tensor:
    """max(0, mean(low group) - mean(high group) + margin) over the batch's attention weights.

    The high group is the int(B * tops) largest weights, the low group the rest. A batch too
    small to form both groups contributes 0.
    """
    a = attention.reshape(-1)
    n_high = int(a.numel() * tops)
    if n_high < 1 or n_high >= a.numel():
        return a.sum() * 0.0  # keeps the graph and the device
    ordered = torch.sort(a, descending=True).values
    diff = ordered[n_high:].mean() - ordered[:n_high].mean() + margin
    return F.relu(diff)


def fusion_weights(attention: torch.Tensor, min_weight: float = 0.2, max_weight: float = 1.0) -> torch.Tensor:
    """Attention [B,1] min-max normalised over the batch into [min_weight, max_weight] ([B,1]).

    The authors divide by (max - min) unguarded, which is 0/0 = NaN when every weight in the batch
    is equal; the span is clamped so that case gives min_weight for every sample.
    """
    a = attention.reshape(-1)
    span = (a.max() - a.min()).clamp_min(1e-12)
    w = (a - a.min()) / span * (max_weight - min_weight) + min_weight
    return w.unsqueeze(1)


def fused_target(out1: torch.Tensor, weights: torch.Tensor, class_dist: torch.Tensor,
                 targets: torch.Tensor) -> torch.Tensor:
    """(1 - w) * softmax(out1) + w * LD[y]: the target distribution of branch 2 ([B,C]).

    Not detached, as upstream: the KL term also trains branch 1 and the attention heads.
    """
    return (1 - weights) * F.softmax(out1, dim=1) + weights * class_dist[targets]


def kl_to_target(out2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax(out2)) summed over classes, averaged over the batch."""
    return F.kl_div(F.log_softmax(out2, dim=1), target, reduction="sum") / out2.shape[0]


def _sharpen(ld: torch.Tensor, temperature: float) -> torch.Tensor:
    # Row-wise renormalisation. Upstream divides by the [C] row sums without keepdim, so entry (i, j)
    # is divided by row j's sum; its default (sharpen=False) never reaches that code.
    p = ld.pow(1.0 / temperature)
    return p / p.sum(dim=1, keepdim=True)


def fallback_distributions(num_classes: int, threshold: float = 0.7, sharpen: bool = False,
                           temperature: float = 1.2) -> torch.Tensor:
    """[C,C]: row i has `threshold` at i and (1 - threshold)/(C - 1) elsewhere, so each row sums to 1.

    This is the initial LD and the row a class falls back to when the network is not yet confident
    on it. (Upstream's fallback used 0.4/(C - 1) off the diagonal, a row summing to 1.1 at the
    default threshold 0.7; its initial LD already used (1 - threshold)/(C - 1).)
    """
    if num_classes < 2:
        raise ValueError(f"Ada-DF needs at least 2 classes, got num_classes={num_classes}")
    ld = torch.full((num_classes, num_classes), (1.0 - threshold) / (num_classes - 1))
    ld.fill_diagonal_(threshold)
    return _sharpen(ld, temperature) if sharpen else ld


def class_distributions(prob_sum: torch.Tensor, counts: torch.Tensor, threshold: float = 0.7,
                        sharpen: bool = False, temperature: float = 1.2) -> torch.Tensor:
    """The class label distributions LD [C,C] from one epoch of branch-1 predictions.

    prob_sum[i] is the sum of softmax(out1) over the epoch's training samples labelled i, counts[i]
    their number. Row i is their mean when it gives class i at least `threshold`, and the fallback
    row otherwise (also for a class with no samples this epoch, as upstream's NaN mean does).
    """
    num_classes = prob_sum.shape[0]
    fallback = fallback_distributions(num_classes, threshold).to(prob_sum)
    mean = prob_sum / counts.clamp_min(1).unsqueeze(1).to(prob_sum)
    confident = (counts > 0) & (torch.diagonal(mean) >= threshold)
    ld = torch.where(confident.unsqueeze(1), mean, fallback)
    return _sharpen(ld, temperature) if sharpen else ld
