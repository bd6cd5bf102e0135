"""DAN: ResNet-18 trunk + multi-head cross attention (Wen et al., Biomimetics 2023).

Written for this suite; module names and parameter shapes follow the authors' class
(yaoing/DAN networks/dan.py) so that their state dicts load with strict=True:
`features.{0..7}` (resnet18 without avgpool/fc), `cat_head{i}.sa.*` / `cat_head{i}.ca.*`, `fc`, `bn`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from common.backbones.resnet18 import resnet18


class SpatialAttention(nn.Module):
    """1x1 reduction, then 3x3 + 1x3 + 3x1 convolutions summed: a spatial map that reweights the input."""

    def __init__(self, channels: int = 512, reduced: int = 256) -> None:
        super().__init__()
        self.conv1x1 = nn.Sequential(nn.Conv2d(channels, reduced, 1), nn.BatchNorm2d(reduced))
        self.conv_3x3 = nn.Sequential(nn.Conv2d(reduced, channels, 3, padding=1), nn.BatchNorm2d(channels))
        self.conv_1x3 = nn.Sequential(nn.Conv2d(reduced, channels, (1, 3), padding=(0, 1)), nn.BatchNorm2d(channels))
        self.conv_3x1 = nn.Sequential(nn.Conv2d(reduced, channels, (3, 1), padding=(1, 0)), nn.BatchNorm2d(channels))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1x1(x)
        y = self.relu(self.conv_3x3(y) + self.conv_1x3(y) + self.conv_3x1(y))
        return x * y.sum(dim=1, keepdim=True)


class ChannelAttention(nn.Module):
    """Pooled features gated by a 512-32-512 bottleneck MLP."""

    def __init__(self, channels: int = 512, hidden: int = 32) -> None:
        super().__init__()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.attention = nn.Sequential(nn.Linear(channels, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                       nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.gap(x).flatten(1)
        return pooled * self.attention(pooled)


class CrossAttentionHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.sa = SpatialAttention()
        self.ca = ChannelAttention()
        self._init_weights()

    def _init_weights(self) -> None:
        # The authors' initialisation: He for convolutions, tiny normal for the attention MLP.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ca(self.sa(x))


class DAN(nn.Module):
    """forward(x) -> (logits [B,C], trunk features [B,512,h,w], heads [B,num_heads,512])."""

    def __init__(self, num_classes: int = 7, num_heads: int = 4) -> None:
        super().__init__()
        trunk = resnet18()
        # conv1, bn1, act1, maxpool, layer1..4 as features.0..7: the authors' key layout.
        self.features = nn.Sequential(*list(trunk.children())[:-2])
        self.num_head = num_heads
        for i in range(num_heads):
            setattr(self, f"cat_head{i}", CrossAttentionHead())
        self.fc = nn.Linear(512, num_classes)
        self.bn = nn.BatchNorm1d(num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat = self.features(x)
        heads = torch.stack([getattr(self, f"cat_head{i}")(feat) for i in range(self.num_head)], dim=1)
        if heads.size(1) > 1:
            heads = F.log_softmax(heads, dim=1)
        return self.bn(self.fc(heads.sum(dim=1))), feat, heads
