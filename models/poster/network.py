"""POSTER: pyramid cross-fusion transformer over IR-50 image features and MobileFaceNet landmark features.

State-dict keys match the authors' `pyramid_trans_expr` (zczcwh/POSTER, models/emotion_hyp.py and
models/hyp_crossvit.py), so their checkpoints load strictly and parity is tested against them.
Image tokens: IR-50 stage 3 ([B,256,14,14]) reshaped to 49 tokens of 1024 and projected to 512.
Landmark tokens: the frozen MobileFaceNet's last map ([B,512,7,7]) as 49 tokens of 512. Each stream
gets a mean token in front; the 100 tokens go through `depth` pyramid blocks at three widths
(512/256/128, made by strided 1-D convs over the channel axis) in which each stream attends to
the other; the first token of the image stream is the feature.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from common.backbones.ir50 import IR50, INPUT_SIZE
from common.backbones.mobilefacenet import MobileFaceNet
from common.backbones.poster_head import ClassificationHead, SEBlock

DEPTHS = {"small": 4, "base": 6, "large": 8}
TOKENS = 49  # 7x7 tokens per stream
EMBED = 512
# Parameters that never reach the logits; kept so the authors' files load by name.
UNUSED_PREFIXES = ("ir_back.output_layer.", "face_landback.output_layer.", "pyramid_fuse.cls_token")


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class CrossAttention(nn.Module):
    """Keys and values from one stream, queries taken as-is (no projection) from the other.

    `kv_from_image`: True for the image update (queries are the landmark tokens), False for
    the landmark update. The output has one row per query token.
    """

    def __init__(self, dim: int, num_heads: int, split: int, kv_from_image: bool, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.split = split  # tokens [0, split) are the image stream
        self.kv_from_image = kv_from_image
        self.scale = (dim // num_heads) ** -0.5
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image, landmark = x[:, : self.split], x[:, self.split:]
        source, query = (image, landmark) if self.kv_from_image else (landmark, image)
        b, n, c = source.shape
        h = self.num_heads
        k, v = self.kv(source).reshape(b, n, 2, h, c // h).permute(2, 0, 3, 1, 4).unbind(0)
        q = query.reshape(b, -1, h, c // h).permute(0, 2, 1, 3)
        attn = self.attn_drop(((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1))
        return self.proj_drop(self.proj((attn @ v).transpose(1, 2).reshape(b, n, c)))


class Block(nn.Module):
    """Two-way cross attention: image tokens updated from landmarks and vice versa, then a 1x1 token mix."""

    def __init__(self, dim: int, tokens: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop: float,
                 attn_drop: float, drop_path: float, norm_layer: type[nn.Module]) -> None:
        super().__init__()
        self.image_tokens = tokens + 1  # the image stream and its mean token come first
        channels = 2 * (tokens + 1)
        hidden = int(dim * mlp_ratio)
        self.norm1 = norm_layer(dim)
        self.attn_img = CrossAttention(dim, num_heads, self.image_tokens, True, qkv_bias, attn_drop, drop)
        self.attn_lm = CrossAttention(dim, num_heads, self.image_tokens, False, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp1 = Mlp(dim, hidden, drop)
        self.mlp2 = Mlp(dim, hidden, drop)
        self.norm3 = norm_layer(dim)
        self.norm4 = norm_layer(dim)
        self.conv = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image, landmark = x[:, : self.image_tokens], x[:, self.image_tokens:]
        image = image + self.drop_path(self.attn_img(self.norm1(x)))
        image = image + self.drop_path(self.mlp1(self.norm2(image)))
        landmark = landmark + self.drop_path(self.attn_lm(self.norm3(x)))
        landmark = landmark + self.drop_path(self.mlp2(self.norm4(landmark)))
        return self.conv(torch.cat((image, landmark), dim=1))


class PyramidBlock(nn.Module):
    """One Block per width (large/medium/small); the small output is upsampled into the medium, the medium into the large."""

    def __init__(self, dim: int, tokens: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop: float,
                 attn_drop: float, drop_path: float, norm_layer: type[nn.Module]) -> None:
        super().__init__()
        common = dict(tokens=tokens, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop,
                      attn_drop=attn_drop, drop_path=drop_path, norm_layer=norm_layer)
        self.block_l = Block(dim, **common)
        self.block_m = Block(dim // 2, **common)
        self.block_s = Block(dim // 4, **common)
        channels = 2 * (tokens + 1)
        self.upsample_m = nn.ConvTranspose1d(channels, channels, kernel_size=2, stride=2)
        self.upsample_s = nn.ConvTranspose1d(channels, channels, kernel_size=2, stride=2)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        large, medium, small = self.block_l(x[0]), self.block_m(x[1]), self.block_s(x[2])
        medium = self.upsample_s(small) + medium
        large = large + self.upsample_m(medium)
        return [large, medium, small]


class PyramidFusion(nn.Module):
    """The authors' HyVisionTransformer: forward(image tokens, landmark tokens) -> [B, dim] feature."""

    def __init__(self, tokens: int = TOKENS, embed_dim: int = EMBED, depth: int = 8, num_heads: int = 8,
                 mlp_ratio: float = 2.0, qkv_bias: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.1) -> None:
        super().__init__()
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        channels = 2 * (tokens + 1)
        # cls_token is never used upstream (a mean token is prepended instead); kept for the keys.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        self.downsample_m = nn.Conv1d(channels, channels, kernel_size=2, stride=2)
        self.downsample_s = nn.Conv1d(channels, channels, kernel_size=4, stride=4)
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.Sequential(*[
            PyramidBlock(embed_dim, tokens, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, r, norm_layer)
            for r in rates])
        self.norm = norm_layer(embed_dim)

    def forward(self, image: torch.Tensor, landmark: torch.Tensor) -> torch.Tensor:
        image = torch.cat((image.mean(1, keepdim=True), image), dim=1)
        image = self.pos_drop(image + self.pos_embed)
        landmark = torch.cat((landmark.mean(1, keepdim=True), landmark), dim=1)
        x = torch.cat((image, landmark), dim=1)
        # The three widths: convs over the token axis treat the embedding as the sequence.
        pyramid = self.blocks([x, self.downsample_m(x), self.downsample_s(x)])
        return self.norm(pyramid[0])[:, 0]


class Poster(nn.Module):
    """forward(x [B,3,H,W]) -> (logits [B,C], feature [B,512]); any H, W (resized to 112 inside)."""

    def __init__(self, num_classes: int = 7, variant: str = "large", drop_path_rate: float = 0.1) -> None:
        super().__init__()
        if variant not in DEPTHS:
            raise ValueError(f"POSTER variant {variant!r} unknown; valid: {', '.join(DEPTHS)}")
        self.num_classes = num_classes
        self.face_landback = MobileFaceNet(frozen=True)
        self.ir_back = IR50(split=False)
        self.ir_layer = nn.Linear(1024, EMBED)
        self.pyramid_fuse = PyramidFusion(depth=DEPTHS[variant], drop_path_rate=drop_path_rate)
        self.se_block = SEBlock(EMBED)
        self.head = ClassificationHead(EMBED, num_classes)
        # They get no gradient either way; frozen, the optimiser and the trainable count show what trains.
        for name, p in self.named_parameters():
            if name.startswith(UNUSED_PREFIXES):
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        _, _, landmark = self.face_landback(F.interpolate(x, size=INPUT_SIZE))
        landmark = landmark.view(b, -1, TOKENS).transpose(1, 2)  # [B, 49, 512]
        # Upstream reshapes the [B,256,14,14] map to 49 x 1024 by memory order, not by position.
        image = self.ir_layer(self.ir_back(x)[2].reshape(-1, TOKENS, 1024))
        feature = self.se_block(self.pyramid_fuse(image, landmark))
        return self.head(feature), feature
