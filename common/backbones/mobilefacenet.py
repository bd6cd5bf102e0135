"""MobileFaceNet trained for 68 facial landmarks (136 outputs), file mobilefacenet_model_best.pth.tar.

POSTER and POSTER++ use it as a frozen landmark-feature branch: POSTER reads the last feature
map ([B,512,7,7] at 112 px), POSTER++ also the maps after conv_3 and conv_4. Neither uses the
landmark head (`output_layer`, global depthwise conv + linear); it is kept so the published file
loads strictly by name, and forward skips it because it does not reach any logit.

Frozen means more than requires_grad=False: upstream leaves the branch in train mode, so its
BatchNorm running statistics drift away from the published ones on every training batch. A
frozen MobileFaceNet here stays in eval mode whatever train() is asked.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from common.adapter import LoadReport
from common.backbones.loading import fill_bn_counters
from common.checkpoint import load_into, load_state_file

INPUT_SIZE = 112
LANDMARK_OUTPUTS = 136  # 68 (x, y) pairs
Size = int | tuple[int, int]


class ConvBlock(nn.Module):
    def __init__(self, in_c: int, out_c: int, kernel: Size = 1, stride: Size = 1, padding: Size = 0,
                 groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)
        self.prelu = nn.PReLU(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class LinearBlock(nn.Module):
    """Conv + BatchNorm without activation (the linear bottleneck projection)."""

    def __init__(self, in_c: int, out_c: int, kernel: Size = 1, stride: Size = 1, padding: Size = 0,
                 groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class DepthWise(nn.Module):
    """Inverted bottleneck: 1x1 expand to `groups` channels, depthwise 3x3, 1x1 linear projection."""

    def __init__(self, in_c: int, out_c: int, groups: int, stride: int = 2, residual: bool = False) -> None:
        super().__init__()
        self.conv = ConvBlock(in_c, groups)
        self.conv_dw = ConvBlock(groups, groups, kernel=3, stride=stride, padding=1, groups=groups)
        self.project = LinearBlock(groups, out_c)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.conv_dw(self.conv(x)))
        return x + y if self.residual else y


class Residual(nn.Module):
    def __init__(self, channels: int, num_block: int, groups: int) -> None:
        super().__init__()
        self.model = nn.Sequential(*[DepthWise(channels, channels, groups, stride=1, residual=True)
                                     for _ in range(num_block)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class GDC(nn.Module):
    """Global depthwise conv head -> landmark coordinates."""

    def __init__(self, embedding_size: int) -> None:
        super().__init__()
        self.conv_6_dw = LinearBlock(512, 512, kernel=7, groups=512)
        self.conv_6_flatten = nn.Flatten()
        self.linear = nn.Linear(512, embedding_size, bias=False)
        self.bn = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.linear(self.conv_6_flatten(self.conv_6_dw(x))))


class MobileFaceNet(nn.Module):
    """forward(x at 112 px) -> (conv_3 map [B,64,28,28], conv_4 map [B,128,14,14], conv_6_sep map [B,512,7,7])."""

    def __init__(self, embedding_size: int = LANDMARK_OUTPUTS, frozen: bool = False) -> None:
        super().__init__()
        self.conv1 = ConvBlock(3, 64, kernel=3, stride=2, padding=1)
        self.conv2_dw = ConvBlock(64, 64, kernel=3, stride=1, padding=1, groups=64)
        self.conv_23 = DepthWise(64, 64, groups=128)
        self.conv_3 = Residual(64, num_block=4, groups=128)
        self.conv_34 = DepthWise(64, 128, groups=256)
        self.conv_4 = Residual(128, num_block=6, groups=256)
        self.conv_45 = DepthWise(128, 128, groups=512)
        self.conv_5 = Residual(128, num_block=2, groups=256)
        self.conv_6_sep = ConvBlock(128, 512)
        self.output_layer = GDC(embedding_size)
        self._init_weights()
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)
            self.eval()

    def _init_weights(self) -> None:
        # The authors' init; it matters only when the branch is used without the published file.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def train(self, mode: bool = True) -> "MobileFaceNet":
        return super().train(mode and not self.frozen)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.conv_23(self.conv2_dw(self.conv1(x)))
        s3 = self.conv_3(x)
        s4 = self.conv_4(self.conv_34(s3))
        features = self.conv_6_sep(self.conv_5(self.conv_45(s4)))
        return s3, s4, features


def load_mobilefacenet(net: MobileFaceNet, path: Path) -> LoadReport:
    """Strict load of mobilefacenet_model_best.pth.tar (`state_dict` inside, or a flat state dict)."""
    state, filled = fill_bn_counters(net, load_state_file(path, key="state_dict"))
    report = load_into(net, state, files=[Path(path)], what="landmark (MobileFaceNet)",
                       layout="the authors' MobileFaceNet (68 landmarks) state dict")
    if filled:
        report.notes.append(f"{len(filled)} BatchNorm num_batches_tracked counters absent from the file, set to 0")
    return report
