"""Efficiency measurements (common/profile.py): FLOPs counted by torch against a known figure."""
from __future__ import annotations

import torch
import torchvision

from common.profile import count_macs, median_seconds


def test_resnet18_macs_match_the_published_figure() -> None:
    # ResNet-18 at 224 px: 1.82 GMACs (He et al. report 1.8 GFLOPs, counting multiply-adds).
    net = torchvision.models.resnet18().eval()
    macs = count_macs(net, torch.randn(1, 3, 224, 224))
    assert 1.78e9 < macs < 1.86e9


def test_median_seconds_is_the_median() -> None:
    calls = []
    assert median_seconds(lambda: calls.append(1), warmup=2, repeats=5, device=torch.device("cpu")) >= 0
    assert len(calls) == 7
