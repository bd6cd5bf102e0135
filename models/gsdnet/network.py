"""GSDNet: a caffe-style ResNet-50 with four exits (one per stage), each behind an ACBAM channel gate,
trained by gradual self-distillation (every exit learns from the next deeper one).

Written from the paper and the authors' code (Emy-cv/GSDNet, GSD-Net/model/resnet1.py and gsdnet.py),
keeping their module names: `resnet.*` is their ResNet, the trunk keys (conv1, bn1, layer1-4) are those of
the VGGFace2 ResNet-50 they initialise from; `resnet.cm<k>` / `resnet.fc_<k>` / `resnet.fc_<k>_<k>` are the
exits.

Caffe-style trunk (the VGGFace2 weights were converted from Caffe): the stem's max-pool is
MaxPool2d(3, 2, padding=0, ceil_mode=True), and a downsampling bottleneck puts its stride on the first
1x1 convolution instead of the 3x3.

Deviation from upstream (a bug fix): the authors accumulate the ensemble ("teacher") outputs with
in-place `+=` on the first exit's tensors, so their exit 0 logits and features are silently replaced by
the sums over all four exits, and the distillation terms for exit 0 see those sums. Here the teacher is
summed out of place and every exit returns its own outputs. Exits 1-3 and the teacher are unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EXPANSION = 4
TRUNK = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")  # the VGGFace2 ResNet-50 parts


class ChannelGate(nn.Module):
    """CBAM channel attention with adaptive weights: each pooled descriptor's MLP output is scaled
    by a learned scalar (mean_weight for the average pool, max_weight for the max pool)."""

    def __init__(self, gate_channels: int, reduction_ratio: int = 16) -> None:
        super().__init__()
        hidden = gate_channels // reduction_ratio

        def mlp(out: int) -> nn.Sequential:
            return nn.Sequential(nn.Flatten(1), nn.Linear(gate_channels, hidden), nn.ReLU(), nn.Linear(hidden, out))

        self.mlp = mlp(gate_channels)
        self.max_weight = mlp(1)
        self.mean_weight = mlp(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = F.adaptive_avg_pool2d(x, 1)
        mx = F.adaptive_max_pool2d(x, 1)
        att = self.mlp(avg) * self.mean_weight(avg) + self.mlp(mx) * self.max_weight(mx)
        return x * torch.sigmoid(att)[:, :, None, None]


class ACBAM(nn.Module):
    def __init__(self, gate_channels: int, reduction_ratio: int = 16) -> None:
        super().__init__()
        self.ChannelGate = ChannelGate(gate_channels, reduction_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ChannelGate(x)


class Bottleneck(nn.Module):
    """ResNet bottleneck, caffe style: the stride sits on conv1 (1x1)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * EXPANSION, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def _exit_pool(channels: int, project: bool) -> nn.Sequential:
    """ACBAM gate, then (for stages 1-3) a 1x1 projection to 2048 channels, then global average pool."""
    mods: list[nn.Module] = [ACBAM(channels)]
    if project:
        mods += [nn.Conv2d(channels, 512 * EXPANSION, 1), nn.BatchNorm2d(512 * EXPANSION), nn.ReLU()]
    mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
    return nn.Sequential(*mods)


class ResNet(nn.Module):
    """forward -> (exit logits [4 x [B,C]], exit features [4 x [B,128]], teacher logits, teacher feature);
    the teacher is the sum over the exits."""

    def __init__(self, layers: tuple[int, ...] = (3, 4, 6, 3), num_classes: int = 7) -> None:
        super().__init__()
        self.inplanes = 64
        width = 512 * EXPANSION
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=0, ceil_mode=True)
        # Registration order follows the authors' (layer1, cm1, fc_1, fc_1_1, layer2, ...).
        for k, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            setattr(self, f"layer{k}", self._make_layer(planes, blocks, stride=1 if k == 1 else 2))
            setattr(self, f"cm{k}", _exit_pool(planes * EXPANSION, project=k < 4))
            if k == 4:
                self.avgpool = nn.AdaptiveAvgPool2d(1)  # unused upstream too; no parameters
            setattr(self, f"fc_{k}", nn.Linear(width, 128))
            setattr(self, f"fc_{k}_{k}", nn.Linear(width, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # the authors' init: N(0, sqrt(2 / (k*k*out_channels)))
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, (2.0 / n) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * EXPANSION:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * EXPANSION, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * EXPANSION))
        mods = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * EXPANSION
        mods += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x: torch.Tensor):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        logits, feats = [], []
        for k in range(1, 5):
            x = getattr(self, f"layer{k}")(x)
            pooled = getattr(self, f"cm{k}")(x)
            feats.append(getattr(self, f"fc_{k}")(pooled))
            logits.append(getattr(self, f"fc_{k}_{k}")(pooled))
        # Out of place: upstream's in-place `+=` here overwrote exit 0 with the sum (see module docstring).
        return logits, feats, torch.stack(logits).sum(0), torch.stack(feats).sum(0)


class GSDNet(nn.Module):
    """The authors' wrapper (key prefix `resnet.`), without its hard-coded weight-file read."""

    def __init__(self, num_class: int = 7) -> None:
        super().__init__()
        self.resnet = ResNet((3, 4, 6, 3), num_classes=num_class)

    def forward(self, x: torch.Tensor):
        return self.resnet(x)

    def trunk(self) -> nn.ModuleDict:
        """The VGGFace2 ResNet-50 part, keyed like the published weights (conv1.weight, layer1.0.bn1.bias, ...)."""
        return nn.ModuleDict({name: getattr(self.resnet, name) for name in TRUNK})
