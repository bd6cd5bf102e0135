"""MFER: ConvNeXt-Base with DS attention on stages 3 and 4 and a multiscale classifier (Msc).

Xu et al., "Multiscale Facial Expression Recognition Based on Dynamic Global and Static Local
Attention", IEEE TAFFC 2024 (github XuJ1E/MFER, model.py, model/attention.py, model/multiscale.py).

The authors' trunk is Facebook's ConvNeXt class with one extra block appended to stages 3 and 4;
here the trunk is timm's `convnext_base` (same layers, timm key names) and the extra block is
appended to `stages[i].blocks`, so an authors' key `stages.2.27.*` is ours `backbone.stages.2.blocks.27.*`
(see weights.py for the full remap).
"""
from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import nn

# Channel widths of ConvNeXt-Base stages; DS attention sits at the end of stages 3 and 4 (index 2, 3).
CONVNEXT_BASE_DIMS = (128, 256, 512, 1024)
DS_STAGES = (2, 3)
# Msc: one classifier per leading slice of the pooled 1024-d feature (256 * (i + 2) for i = 0, 1, 2).
MSC_WIDTHS = (512, 768, 1024)


class DSAttention(nn.Module):
    """Dynamic-global / static-local attention, a residual block on a [B, C, H, W] map.

    Static local: a dense 7x7 conv, GELU, LayerNorm. Dynamic global: a bottleneck MLP (C -> C/8 -> C)
    gating the input channel-wise per position. Their sum is normalised with a softmax over the
    H*W positions (per channel), weights a linear projection of the input, and is added to it.
    Submodule names follow the authors' class (key, value, attn, norm) so state dicts match.
    """

    def __init__(self, dim: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.key = nn.Sequential(nn.Linear(dim, dim // 8), nn.GELU(), nn.Linear(dim // 8, dim))
        self.value = nn.Linear(dim, dim)
        self.attn = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=kernel_size // 2)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.permute(0, 2, 3, 1)  # [B, H, W, C]
        value = self.value(tokens).reshape(b, h * w, c)
        dynamic = (self.key(tokens) * tokens).reshape(b, h * w, c)
        static = self.norm(self.act(_same_conv(self.attn, x).permute(0, 2, 3, 1))).reshape(b, h * w, c)
        weights = torch.softmax(static + dynamic, dim=1)  # over positions: a global spatial weighting
        out = (weights * value).reshape(b, h, w, c).permute(0, 3, 1, 2)
        return out + x


def _same_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """conv(x) for a 'same'-padded odd kernel, exactly, using only the taps that can meet the map.

    On a map smaller than the kernel (stage 4 is 1x1-3x3 below 96 px input) the outer taps only ever
    multiply zero padding: they add nothing and get zero gradient. Cropping them gives the same output
    and gradients and avoids a dense 7x7 conv over mostly padding, which dominates a CPU step at small
    input sizes. At 224 px (14x14, 7x7 maps) this is conv(x) itself.
    """
    k, r = conv.kernel_size[0], conv.padding[0]
    h, w = x.shape[-2:]
    rh, rw = min(r, h - 1), min(r, w - 1)
    if (rh, rw) == (r, r):
        return conv(x)
    c = k // 2
    weight = conv.weight[:, :, c - rh: c + rh + 1, c - rw: c + rw + 1]
    return F.conv2d(x, weight, conv.bias, padding=(rh, rw))


class MscClassifier(nn.Module):
    """One Msc head: Linear(d, d), GELU, Linear(d, classes) on the first d feature channels."""

    def __init__(self, width: int, num_classes: int) -> None:
        super().__init__()
        self.width = width
        self.fc1 = nn.Linear(width, width)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(width, num_classes)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(feat[:, : self.width])))


def _init_like_convnext(module: nn.Module) -> None:
    # The authors' ConvNeXt applies its init (trunc-normal 0.02, zero bias) after building the
    # stages, so it covers the DS attention blocks too; the Msc heads keep PyTorch's default init.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)


class MFERNet(nn.Module):
    """forward(x) -> (list of 3 head logits [B, C], pooled feature [B, 1024]).

    The prediction is the sum of the three head logits (`predict`).
    """

    def __init__(self, num_classes: int = 7, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.backbone = timm.create_model("convnext_base", pretrained=False, num_classes=0,
                                          drop_path_rate=drop_path_rate)
        for i in DS_STAGES:
            block = DSAttention(CONVNEXT_BASE_DIMS[i])
            _init_like_convnext(block)
            self.backbone.stages[i].blocks.append(block)
        self.msc = nn.ModuleList([MscClassifier(w, num_classes) for w in MSC_WIDTHS])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Global average pool + LayerNorm of the last stage: the authors' forward_features."""
        return self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feat = self.features(x)
        return [head(feat) for head in self.msc], feat

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        heads, _ = self(x)
        return torch.stack(heads).sum(0)
