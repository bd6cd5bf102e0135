"""POSTER++ (POSTER V2): window cross-attention at three scales, then a 2-layer ViT.

State-dict keys match the authors' `pyramid_trans_expr2` (Talented-Q/POSTER_V2, models/PosterV2_7cls.py
and models/vit_model.py). The three IR-50 stage maps are each reduced 2x by a strided conv, split
into windows and attended by queries taken from the frozen MobileFaceNet's map of the same size
(global-query window attention, GCViT style); the three results are embedded to 49 tokens of 768
each, and the 147 tokens plus a class token go through two transformer blocks.

Upstream has one file per class count and the 7-class one ignores num_classes (always 7 logits);
here one network takes any class count.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from torch import nn

from common.backbones.ir50 import IR50, INPUT_SIZE
from common.backbones.mobilefacenet import MobileFaceNet
from common.backbones.poster_head import ClassificationHead, SEBlock

WINDOWS = (28, 14, 7)
HEADS = (2, 4, 8)
DIMS = (64, 128, 256)
EMBED = 768
TOKENS = 147  # 3 x 7x7
# Parameters that never reach the logits; kept so the authors' files load by name.
UNUSED_PREFIXES = ("ir_back.output_layer.", "face_landback.output_layer.", "VIT.patch_embed.", "VIT.eca_block.",
                   "VIT.CON1.", "VIT.IRLinear1.", "VIT.IRLinear2.", "VIT.blocks.0.conv.", "VIT.blocks.1.conv.")


def relative_position_index(window: int) -> torch.Tensor:
    """[w*w, w*w] index into a ((2w-1)^2)-row bias table for every pair of positions in a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]


class WindowAttentionGlobal(nn.Module):
    """Keys and values from the image windows; queries are given (the landmark map), shared by all windows."""

    def __init__(self, dim: int, num_heads: int, window_size: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim / num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 2, bias=qkv_bias)  # the authors' name; it makes keys and values only
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.0)
        self.softmax = nn.Softmax(dim=-1)
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, q_global: torch.Tensor) -> torch.Tensor:
        bw, n, c = x.shape  # bw = batch x windows
        b, h = q_global.shape[0], self.num_heads
        k, v = self.qkv(x).reshape(bw, n, 2, h, c // h).permute(2, 0, 3, 1, 4)
        q = q_global.repeat(1, bw // b, 1, 1, 1).reshape(bw, h, n, c // h) * self.scale
        n2 = self.window_size ** 2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n2, n2, -1)
        attn = (q @ k.transpose(-2, -1)) + bias.permute(2, 0, 1).unsqueeze(0)
        attn = self.attn_drop(self.softmax(attn))
        return self.proj_drop(self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c)))


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """[B,H,W,C] -> [B * windows, window*window, C]."""
    b, hh, ww, c = x.shape
    x = x.view(b, hh // window, window, ww // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, hh: int, ww: int) -> torch.Tensor:
    """Inverse of window_partition -> [B,H,W,C]."""
    b = windows.shape[0] // ((hh // window) * (ww // window))
    x = windows.view(b, hh // window, ww // window, window, window, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, hh, ww, -1)


class Window(nn.Module):
    """LayerNorm (channels last), then windows; returns (windows, normalised map as the shortcut)."""

    def __init__(self, window_size: int, dim: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.norm(x.permute(0, 2, 3, 1))
        return window_partition(x, self.window_size), x


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class FeedForward(nn.Module):
    """Windows back to a map, layer-scaled residuals of the attention output and of an MLP."""

    def __init__(self, dim: int, window_size: int, layer_scale: float = 1e-5, drop_path: float = 0.0) -> None:
        super().__init__()
        self.window_size = window_size
        self.gamma1 = nn.Parameter(layer_scale * torch.ones(dim))
        self.gamma2 = nn.Parameter(layer_scale * torch.ones(dim))
        self.mlp = Mlp(dim, 4 * dim)
        self.norm = nn.LayerNorm(dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, windows: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        _, hh, ww, _ = shortcut.shape
        x = shortcut + self.drop_path(self.gamma1 * window_reverse(windows, self.window_size, hh, ww))
        return x + self.drop_path(self.gamma2 * self.mlp(self.norm(x)))


class PatchEmbed(nn.Module):
    """1x1 conv 256 -> 768, flattened to tokens."""

    def __init__(self, in_c: int = 256, embed_dim: int = EMBED) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_c, embed_dim, kernel_size=1)
        self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = self.attn_drop(((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1))
        return self.proj_drop(self.proj((attn @ v).transpose(1, 2).reshape(b, n, c)))


class Block(nn.Module):
    def __init__(self, dim: int, tokens: int, num_heads: int, mlp_ratio: float, norm_layer: type[nn.Module]) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.conv = nn.Conv1d(tokens + 1, tokens + 1, 1)  # built upstream, never called
        self.attn = Attention(dim, num_heads)
        self.drop_path = nn.Identity()  # the authors' ViT is built with drop path 0
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class EcaBlock(nn.Module):
    """Built upstream (channel 196 -> kernel 5) but never called; kept for the keys."""

    def __init__(self, kernel_size: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel_size=kernel_size, padding=(kernel_size - 1) // 2, bias=False)


class VisionTransformer(nn.Module):
    """forward(tokens [B,147,768]) -> logits: class token, 2 blocks, LayerNorm, SE gate, linear head."""

    def __init__(self, num_classes: int, tokens: int = TOKENS, embed_dim: int = EMBED, depth: int = 2,
                 num_heads: int = 8, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, embed_dim))
        self.pos_drop = nn.Dropout(0.0)
        self.se_block = SEBlock(embed_dim)
        self.patch_embed = PatchEmbed()  # unused upstream: embed_v of the parent does this
        self.head = ClassificationHead(embed_dim, num_classes)
        self.eca_block = EcaBlock()
        # Leftovers of the authors' experiments, never called; kept for the keys.
        self.CON1 = nn.Conv2d(256, embed_dim, kernel_size=1, bias=False)
        self.IRLinear1 = nn.Linear(1024, embed_dim)
        self.IRLinear2 = nn.Linear(embed_dim, 512)
        self.blocks = nn.Sequential(*[Block(embed_dim, tokens, num_heads, mlp_ratio, norm_layer) for _ in range(depth)])
        self.norm = norm_layer(embed_dim)
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        self.apply(_init_vit_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = self.norm(self.blocks(self.pos_drop(x + self.pos_embed)))
        return self.head(self.se_block(x[:, 0]))


def _init_vit_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.01)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.zeros_(m.bias)
        nn.init.ones_(m.weight)


def _to_query(x: torch.Tensor, heads: int) -> torch.Tensor:
    """Channels-last map [B,H,W,C] -> queries [B,1,heads,H*W,C/heads]."""
    b, hh, ww, c = x.shape
    return x.reshape(b, 1, hh * ww, heads, c // heads).permute(0, 1, 3, 2, 4)


class PosterV2(nn.Module):
    """forward(x [B,3,H,W]) -> logits [B,C]; any H, W (resized to 112 inside)."""

    def __init__(self, num_classes: int = 7) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.face_landback = MobileFaceNet(frozen=True)
        self.VIT = VisionTransformer(num_classes=num_classes)
        self.ir_back = IR50(split=True)
        for i, (dim, heads, win) in enumerate(zip(DIMS, HEADS, WINDOWS), start=1):
            setattr(self, f"attn{i}", WindowAttentionGlobal(dim, heads, win))
        for i, (dim, win) in enumerate(zip(DIMS, WINDOWS), start=1):
            setattr(self, f"window{i}", Window(win, dim))
        for i, dim in enumerate(DIMS, start=1):
            setattr(self, f"conv{i}", nn.Conv2d(dim, dim, kernel_size=3, stride=2, padding=1))
        rates = torch.linspace(0, 0.5, 5).tolist()
        for i, (dim, win) in enumerate(zip(DIMS, WINDOWS), start=1):
            setattr(self, f"ffn{i}", FeedForward(dim, win, layer_scale=1e-5, drop_path=rates[i - 1]))
        self.last_face_conv = nn.Conv2d(512, 256, kernel_size=3, padding=1)
        self.embed_q = nn.Sequential(nn.Conv2d(DIMS[0], EMBED, 3, 2, 1), nn.Conv2d(EMBED, EMBED, 3, 2, 1))
        self.embed_k = nn.Sequential(nn.Conv2d(DIMS[1], EMBED, 3, 2, 1))
        self.embed_v = PatchEmbed(DIMS[2], EMBED)
        # They get no gradient either way; frozen, the optimiser and the trainable count show what trains.
        for name, p in self.named_parameters():
            if name.startswith(UNUSED_PREFIXES):
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1, f2, f3 = self.face_landback(F.interpolate(x, size=INPUT_SIZE))
        f3 = self.last_face_conv(f3)
        queries = [_to_query(f.permute(0, 2, 3, 1), h) for f, h in zip((f1, f2, f3), HEADS)]
        maps = []
        for i, (stage, q) in enumerate(zip(self.ir_back(x), queries), start=1):
            windows, shortcut = getattr(self, f"window{i}")(getattr(self, f"conv{i}")(stage))
            out = getattr(self, f"ffn{i}")(getattr(self, f"attn{i}")(windows, q), shortcut)
            maps.append(out.permute(0, 3, 1, 2))
        tokens = torch.cat([self.embed_q(maps[0]).flatten(2).transpose(1, 2),
                            self.embed_k(maps[1]).flatten(2).transpose(1, 2),
                            self.embed_v(maps[2])], dim=1)
        return self.VIT(tokens)
