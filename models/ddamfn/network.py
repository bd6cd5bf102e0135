"""DDAMFN: a MixedFeatureNet trunk (MobileFaceNet with mixed depthwise convolutions and coordinate
attention) followed by dual-direction attention heads.

Written from the paper and the authors' code (SainingZhang/DDAMFN, networks/MixedFeatureNet.py and
networks/DDAM.py), keeping their module names so that their state dicts load unchanged:
`features.<i>.*` is the trunk (the first nine children of MixedFeatureNet), `cat_head<k>.CoordAtt.*`
the attention heads, `Linear.*` / `fc.*` the classifier.

Modules the authors create but never call are kept so that the key set matches theirs; they are
frozen by the task (see `unused_parameter_names`):
- MDConv.bn / MDConv.prelu in every mixed depthwise convolution,
- the `Linear` block inside each attention head's CoordAtt,
- DDAMNet.bn, a BatchNorm1d over the logits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# MixedFeatureNet is a MobileFaceNet variant: same conv-BN-PReLU and conv-BN blocks (same keys).
from common.backbones.mobilefacenet import ConvBlock as Conv_block, LinearBlock as Linear_block

# Order of MixedFeatureNet's children; DDAMNet keeps the first nine as `features`
# (children()[:-4] drops conv_6_dw, conv_6_flatten, linear, bn).
TRUNK_STAGES = ("conv1", "conv2_dw", "conv_23", "conv_3", "conv_34", "conv_4", "conv_45", "conv_5", "conv_6_sep")
MFN_HEAD = ("conv_6_dw", "linear", "bn")  # the face-embedding head after the trunk, unused by DDAMFN


class CoordAtt(nn.Module):
    """Coordinate attention inside the trunk: pool along each axis, shared 1x1 bottleneck, two gates."""

    def __init__(self, inp: int, oup: int, groups: int = 32) -> None:
        super().__init__()
        mip = max(8, inp // groups)
        self.conv1 = nn.Conv2d(inp, mip, 1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.conv2 = nn.Conv2d(mip, oup, 1)
        self.conv3 = nn.Conv2d(mip, oup, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        along_h = x.mean(dim=3, keepdim=True)                   # [B,C,H,1]
        along_w = x.mean(dim=2, keepdim=True).transpose(2, 3)   # [B,C,W,1]
        y = F.hardswish(self.bn1(self.conv1(torch.cat([along_h, along_w], dim=2))))
        y_h, y_w = torch.split(y, [h, w], dim=2)
        gate_h = self.conv2(y_h).sigmoid()                      # [B,C,H,1]
        gate_w = self.conv3(y_w.transpose(2, 3)).sigmoid()      # [B,C,1,W]
        return x * gate_w * gate_h


class MDConv(nn.Module):
    """Mixed depthwise convolution: channel groups with different kernel sizes.

    `bn` and `prelu` exist in the authors' module but are not applied in its forward; kept for the keys.
    """

    def __init__(self, channels: int, kernel_size: list[int], split_out_channels: list[int], stride) -> None:
        super().__init__()
        self.split_channels = list(split_out_channels)
        self.mixed_depthwise_conv = nn.ModuleList(
            nn.Conv2d(c, c, k, stride=stride, padding=k // 2, groups=c, bias=False)
            for c, k in zip(self.split_channels, kernel_size)
        )
        self.bn = nn.BatchNorm2d(channels)
        self.prelu = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.mixed_depthwise_conv) == 1:
            return self.mixed_depthwise_conv[0](x)
        parts = torch.split(x, self.split_channels, dim=1)
        return torch.cat([conv(p) for conv, p in zip(self.mixed_depthwise_conv, parts)], dim=1)


class Mix_Depth_Wise(nn.Module):
    """Inverted bottleneck: 1x1 expand (Conv_block) -> MDConv -> CoordAtt -> 1x1 project, optional residual."""

    def __init__(self, in_c: int, out_c: int, residual: bool = False, stride=(2, 2), groups: int = 1,
                 kernel_size: list[int] = (3, 5, 7), split_out_channels: list[int] = (64, 32, 32)) -> None:
        super().__init__()
        self.conv = Conv_block(in_c, groups)
        self.conv_dw = MDConv(groups, list(kernel_size), list(split_out_channels), stride)
        self.CA = CoordAtt(groups, groups)
        self.project = Linear_block(groups, out_c)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.CA(self.conv_dw(self.conv(x))))
        return x + y if self.residual else y


class Mix_Residual(nn.Module):
    def __init__(self, c: int, num_block: int, groups: int, kernel_size: list[int], split_out_channels: list[int]) -> None:
        super().__init__()
        self.model = nn.Sequential(*[
            Mix_Depth_Wise(c, c, residual=True, stride=(1, 1), groups=groups, kernel_size=kernel_size,
                           split_out_channels=split_out_channels)
            for _ in range(num_block)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def mixed_feature_trunk() -> list[tuple[str, nn.Module]]:
    """The nine MixedFeatureNet stages DDAMFN uses, (MixedFeatureNet child name, module), 112 px -> [B,512,7,7]."""
    return [
        ("conv1", Conv_block(3, 64, kernel=(3, 3), stride=(2, 2), padding=(1, 1))),                 # 56x56
        ("conv2_dw", Conv_block(64, 64, kernel=(3, 3), padding=(1, 1), groups=64)),
        ("conv_23", Mix_Depth_Wise(64, 64, groups=128, kernel_size=[3, 5, 7], split_out_channels=[64, 32, 32])),  # 28
        ("conv_3", Mix_Residual(64, 9, groups=128, kernel_size=[3, 5], split_out_channels=[96, 32])),
        ("conv_34", Mix_Depth_Wise(64, 128, groups=256, kernel_size=[3, 5, 7], split_out_channels=[128, 64, 64])),  # 14
        ("conv_4", Mix_Residual(128, 16, groups=256, kernel_size=[3, 5], split_out_channels=[192, 64])),
        ("conv_45", Mix_Depth_Wise(128, 256, groups=1024, kernel_size=[3, 5, 7, 9],
                                   split_out_channels=[256, 256, 256, 256])),                        # 7x7
        ("conv_5", Mix_Residual(256, 6, groups=512, kernel_size=[3, 5, 7], split_out_channels=[172, 170, 170])),
        ("conv_6_sep", Conv_block(256, 512)),
    ]


class CoordAttHeadBlock(nn.Module):
    """The head's coordinate attention: learned 1x7 / 7x1 depthwise pooling instead of averages.

    Returns the attention map [B,C,H,W] (not multiplied by the input). `Linear` is never used upstream.
    Registered under the authors' class name through CoordAttHead.CoordAtt.
    """

    def __init__(self, inp: int = 512, oup: int = 512, groups: int = 32) -> None:
        super().__init__()
        self.Linear_h = Linear_block(inp, inp, kernel=(1, 7), groups=inp)
        self.Linear_w = Linear_block(inp, inp, kernel=(7, 1), groups=inp)
        mip = max(8, inp // groups)
        self.conv1 = nn.Conv2d(inp, mip, 1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.conv2 = nn.Conv2d(mip, oup, 1)
        self.conv3 = nn.Conv2d(mip, oup, 1)
        self.Linear = Linear_block(oup, oup, kernel=(7, 7), groups=oup)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        along_h = self.Linear_h(x)                       # [B,C,7,1]
        along_w = self.Linear_w(x).transpose(2, 3)       # [B,C,1,7] -> [B,C,7,1]
        y = F.hardswish(self.bn1(self.conv1(torch.cat([along_h, along_w], dim=2))))
        y_h, y_w = torch.split(y, [h, w], dim=2)
        gate_h = self.conv2(y_h).sigmoid().expand(-1, -1, h, w)
        gate_w = self.conv3(y_w.transpose(2, 3)).sigmoid().expand(-1, -1, h, w)
        return gate_w * gate_h


class CoordAttHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.CoordAtt = CoordAttHeadBlock(512, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.CoordAtt(x)


class DDAMNet(nn.Module):
    """forward(x [B,3,112,112]) -> (logits [B,C], features [B,512,7,7], list of head attention maps)."""

    def __init__(self, num_class: int = 7, num_head: int = 2) -> None:
        super().__init__()
        if num_head < 1:
            raise ValueError(f"num_head must be >= 1, got {num_head}")
        self.features = nn.Sequential(*[m for _, m in mixed_feature_trunk()])
        self.num_head = num_head
        for i in range(num_head):
            setattr(self, f"cat_head{i}", CoordAttHead())
        self.Linear = Linear_block(512, 512, kernel=(7, 7), groups=512)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(512, num_class)
        self.bn = nn.BatchNorm1d(num_class)  # never applied upstream; kept for the keys

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        if x.shape[-2:] != (112, 112):
            raise ValueError(f"DDAMFN needs 112x112 input (its heads use 7x7 kernels on the 7x7 map); "
                             f"got {tuple(x.shape[-2:])}")
        feat = self.features(x)
        heads = [getattr(self, f"cat_head{i}")(feat) for i in range(self.num_head)]
        att = heads[0]
        for h in heads[1:]:
            att = torch.max(att, h)
        logits = self.fc(self.flatten(self.Linear(feat * att)))
        return logits, feat, heads


def unused_parameter_names(net: DDAMNet) -> list[str]:
    """Parameters of modules the authors create but never call (see the module docstring)."""
    names = []
    for name, _ in net.named_parameters():
        parts = name.split(".")
        if (".conv_dw.bn." in name or ".conv_dw.prelu." in name
                or (parts[0].startswith("cat_head") and parts[2] == "Linear")
                or parts[0] == "bn"):
            names.append(name)
    return names
