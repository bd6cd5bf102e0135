"""LNSU-Net (Zhang et al., NeurIPS 2023): a Swin-T encoder at 112 px with patch 2 and window 7,
LayerNorm + average pool + linear head, and class activation maps (CAMs) for the flip loss.

The trunk is timm's Swin-T; its modules are regrouped here into the authors' layout so that
`state_dict()` has exactly the authors' key names (`expression.models.SwinTransFER` wrapping
`backbones.swin.SwinTransformer(num_classes=512)`): timm merges patches at the start of stage
i + 1, the authors at the end of stage i, which is the same sequence of operations.
"""
from __future__ import annotations

import timm
import torch
from timm.layers import trunc_normal_
from torch import nn


class SwinStage(nn.Module):
    """One stage in the authors' layout: the Swin blocks, then the patch merging (if any)."""

    def __init__(self, blocks: nn.Module, downsample: nn.Module | None) -> None:
        super().__init__()
        self.blocks = blocks
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)
        return x if self.downsample is None else self.downsample(x)


class SwinEncoder(nn.Module):
    """The authors' `SwinTransformer(num_classes=embedding_size)`, built from timm's Swin-T.

    Only `forward_features` (patch embedding + the stages, no final norm) is used by
    LNSU-Net. `norm` and `feature` (the face-recognition embedding head of the pre-training)
    are kept so that the authors' `start_0.pt` loads strict; nothing calls them.
    """

    def __init__(self, img_size: int = 112, patch_size: int = 2, window_size: int = 7, embed_dim: int = 96,
                 depths: tuple[int, ...] = (2, 2, 6, 2), num_heads: tuple[int, ...] = (3, 6, 12, 24),
                 embedding_size: int = 512, drop_path_rate: float = 0.1) -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} must have one entry per stage")
        grid = img_size // patch_size
        if img_size % patch_size or grid % 2 ** (len(depths) - 1):
            raise ValueError(f"image size {img_size} / patch {patch_size} must halve evenly over "
                             f"{len(depths)} stages (the authors' patch merging requires it)")
        # The defaults are timm's Swin-T; the others only shrink it for CPU smoke runs.
        trunk = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=img_size,
                                  patch_size=patch_size, window_size=window_size, embed_dim=embed_dim,
                                  depths=tuple(depths), num_heads=tuple(num_heads), num_classes=0,
                                  drop_path_rate=drop_path_rate)
        self.img_size = img_size
        self.num_features = trunk.num_features
        self.feature_resolution = img_size // patch_size // 2 ** (len(trunk.layers) - 1)
        self.patch_embed = trunk.patch_embed
        n = len(trunk.layers)
        self.layers = nn.ModuleList(
            SwinStage(trunk.layers[i].blocks, trunk.layers[i + 1].downsample if i + 1 < n else None)
            for i in range(n))
        self.norm = trunk.norm
        c = self.num_features
        self.feature = nn.Sequential(
            nn.Linear(c, c, bias=False), nn.BatchNorm1d(c, eps=2e-5),
            nn.Linear(c, embedding_size, bias=False), nn.BatchNorm1d(embedding_size, eps=2e-5))
        for m in self.feature:
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
        _persist_swin_buffers(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> tokens [B, L, C] after the last stage (no final norm, as the authors)."""
        if tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            raise ValueError(f"LNSU-Net takes {self.img_size}x{self.img_size} images, got "
                             f"{tuple(x.shape[-2:])}; set data.image_size={self.img_size} (or null)")
        x = self.patch_embed(x)  # timm keeps tokens as [B, H, W, C]
        for layer in self.layers:
            x = layer(x)
        return x.flatten(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The pre-training embedding (unused by LNSU-Net; kept for completeness)."""
        x = self.norm(self.forward_features(x)).mean(1)
        return self.feature(x)


def _persist_swin_buffers(module: nn.Module) -> None:
    """timm recomputes the relative-position index and the shifted-window mask and leaves them out
    of the state dict; the authors' class saves both, so their files carry them. Make them
    persistent (same values, same use in forward) so the key sets match both ways."""
    for m in module.modules():
        own = dict(m.named_buffers(recurse=False))  # skips the None mask of unshifted blocks
        for name in ("relative_position_index", "attn_mask"):
            if name in own:
                m.register_buffer(name, own[name], persistent=True)


class LNSUNet(nn.Module):
    """The authors' `SwinTransFER(swin, swin_num_features=768, num_classes, cam=True)`.

    forward -> (logits [B, C], hm [B, C, h, w]): hm is the class activation map of every class,
    the normalised last-stage tokens times the head weights. The head weights are detached there
    (upstream wraps them in a Variable without grad), so the flip loss trains the encoder only.
    """

    def __init__(self, num_classes: int = 7, img_size: int = 112, patch_size: int = 2, window_size: int = 7,
                 embed_dim: int = 96, depths: tuple[int, ...] = (2, 2, 6, 2),
                 num_heads: tuple[int, ...] = (3, 6, 12, 24), drop_path_rate: float = 0.1) -> None:
        super().__init__()
        self.encoder = SwinEncoder(img_size=img_size, patch_size=patch_size, window_size=window_size,
                                   embed_dim=embed_dim, depths=depths, num_heads=num_heads,
                                   drop_path_rate=drop_path_rate)
        c = self.encoder.num_features
        self.num_classes = num_classes
        self.norm = nn.LayerNorm(c)
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(c, num_classes)
        # The pre-training embedding head is never called (upstream it gets no gradient either);
        # frozen so that an optimiser and its weight decay leave it as loaded.
        self.encoder.norm.requires_grad_(False)
        self.encoder.feature.requires_grad_(False)

    def train(self, mode: bool = True) -> "LNSUNet":
        super().train(mode)
        self.encoder.feature.eval()  # frozen BatchNorm statistics stay as loaded
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.norm(self.encoder.forward_features(x))  # [B, L, C]
        logits = self.head(torch.flatten(self.avgpool(tokens.transpose(1, 2)), 1))
        side = self.encoder.feature_resolution
        hm = torch.einsum("blc,kc->bkl", tokens, self.head.weight.detach())
        return logits, hm.reshape(x.shape[0], self.num_classes, side, side)
