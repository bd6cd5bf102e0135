"""Batched augmentation on tensors: the recipes' per-image torchvision pipeline applied to a whole
uint8 batch at once (config `augment.batched`).

Per image, in PIL, the augmentation costs more CPU than a small model's step; per batch, as tensor
ops, it is a few vectorised passes. Every op draws its random parameters per sample from the same
distributions as its torchvision counterpart (tests/common/test_augment.py checks them over many
draws), in the same order:

    hflip (p=0.5) -> RandomApply([RandomRotation(deg), RandomCrop(size, padding)], p)
    -> ToTensor + Normalize -> RandomErasing(p, scale, ratio=(0.3, 3.3), value=0)

Pixels differ from the per-image path only where the two resamplers round differently (nearest
rotation), so a run with `augment.batched=true` is a different run (its spec hash differs), not a
different recipe. RandAugment (timm's, Ada-DF) has no batched version here: a recipe that sets it
keeps the per-image path (common/data.py says so in the log and in status.json).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

# RandomErasing's defaults (torchvision): aspect ratio range and attempts before giving up.
ERASE_RATIO = (0.3, 3.3)
ERASE_ATTEMPTS = 10


def hflip(x: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    flip = torch.rand(x.shape[0], device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def rotation_angles(n: int, degrees: float, device: torch.device | None = None) -> torch.Tensor:
    """RandomRotation's draw: U(-degrees, degrees), per sample."""
    return (torch.rand(n, device=device) * 2 - 1) * degrees


def rotate(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate each image about its centre by `angles` degrees (counter-clockwise, as torchvision),
    nearest neighbour, zero fill, same size (RandomRotation's defaults)."""
    theta = angles * math.pi / 180
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(cos)
    # Output -> input sampling grid in normalised coordinates: the inverse rotation. Square images,
    # so no aspect correction is needed; y points down, hence the sign of sin.
    mat = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(mat.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def crop_offsets(n: int, padding: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """RandomCrop(size, padding)'s draw on a size x size image: top and left uniform over 0..2*padding."""
    return (torch.randint(0, 2 * padding + 1, (n,), device=device),
            torch.randint(0, 2 * padding + 1, (n,), device=device))


def padded_crop(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad by `padding`, then cut each sample's size x size window at (top, left)."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = (top[:, None] + torch.arange(h, device=x.device))[:, :, None]  # [B, H, 1]
    cols = (left[:, None] + torch.arange(w, device=x.device))[:, None, :]  # [B, 1, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def erase_boxes(n: int, h: int, w: int, scale: tuple[float, float],
                device: torch.device | None = None) -> tuple[torch.Tensor, ...]:
    """RandomErasing.get_params per sample: up to ERASE_ATTEMPTS tries of area U(scale) and log-uniform
    aspect ratio; the first box that fits wins; a sample with none keeps its image (valid False)."""
    area = h * w
    log_ratio = torch.log(torch.tensor(ERASE_RATIO, device=device))
    target = area * torch.empty(n, ERASE_ATTEMPTS, device=device).uniform_(scale[0], scale[1])
    aspect = torch.exp(torch.empty(n, ERASE_ATTEMPTS, device=device).uniform_(float(log_ratio[0]), float(log_ratio[1])))
    eh = torch.round(torch.sqrt(target * aspect)).long()
    ew = torch.round(torch.sqrt(target / aspect)).long()
    fits = (eh < h) & (ew < w)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.zeros(n, dtype=torch.long, device=device))
    pick = torch.arange(n, device=device)
    eh, ew, valid = eh[pick, first], ew[pick, first], fits.any(1)
    top = (torch.rand(n, device=device) * (h - eh + 1).clamp(min=1)).long()
    left = (torch.rand(n, device=device) * (w - ew + 1).clamp(min=1)).long()
    return top, left, eh, ew, valid


def erase(x: torch.Tensor, p: float, scale: tuple[float, float]) -> torch.Tensor:
    b, _, h, w = x.shape
    top, left, eh, ew, valid = erase_boxes(b, h, w, scale, x.device)
    valid &= torch.rand(b, device=x.device) < p
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    box = ((ys >= top[:, None, None]) & (ys < (top + eh)[:, None, None]) &
           (xs >= left[:, None, None]) & (xs < (left + ew)[:, None, None]) & valid[:, None, None])
    return x.masked_fill(box[:, None], 0.0)


@dataclass
class BatchAugment:
    """The per-image train pipeline of common/transforms.py, for uint8 [B, 3, S, S] batches."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    hflip: bool = True
    random_apply_p: float = 0.0
    rotation: float = 0.0
    crop_padding: int = 0
    erasing: float = 0.0
    erasing_scale: tuple[float, float] = (0.02, 0.33)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if self.hflip:
            x = hflip(x)
        if self.random_apply_p > 0 and (self.rotation or self.crop_padding):
            chosen = torch.rand(x.shape[0], device=x.device) < self.random_apply_p
            y = x
            if self.rotation:
                y = rotate(y, rotation_angles(x.shape[0], self.rotation, x.device))
            if self.crop_padding:
                y = padded_crop(y, *crop_offsets(x.shape[0], self.crop_padding, x.device), self.crop_padding)
            x = torch.where(chosen[:, None, None, None], y, x)
        mean = torch.tensor(self.mean, device=x.device)[None, :, None, None]
        std = torch.tensor(self.std, device=x.device)[None, :, None, None]
        x = (x / 255 - mean) / std
        if self.erasing > 0:
            x = erase(x, self.erasing, self.erasing_scale)
        return x


def batch_collate(augment: Callable[[torch.Tensor], torch.Tensor]):
    """A DataLoader collate function: stack (uint8 image, label, index) samples, augment the batch."""

    def collate(samples: list[tuple[torch.Tensor, int, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images = torch.stack([s[0] for s in samples])
        labels = torch.tensor([s[1] for s in samples], dtype=torch.int64)
        index = torch.tensor([s[2] for s in samples], dtype=torch.int64)
        return augment(images), labels, index

    return collate
