"""Batched augmentation on tensors: the recipes' per-image torchvision pipeline applied to a whole
uint8 batch at once (config `augment.batched`), by the training loop on the model's device
(common/train.fit's `batch_transform`), so on a GPU it runs there.

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
    h, w = x.shape[-2:]
    padded = F.pad(x, (padding, padding, padding, padding))
    return torch.stack([padded[k, :, t:t + h, l:l + w] for k, (t, l) in enumerate(zip(top.tolist(), left.tolist()))])


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
    """RandomErasing(p, scale, value=0) on each image of a float batch, in place (returned)."""
    b, _, h, w = x.shape
    top, left, eh, ew, valid = erase_boxes(b, h, w, scale, x.device)
    valid &= torch.rand(b, device=x.device) < p
    # One slice assignment per erased image: far cheaper than a [B, H, W] mask over the batch.
    for k in valid.nonzero().flatten().tolist():
        t, l = int(top[k]), int(left[k])
        x[k, :, t:t + int(eh[k]), l:l + int(ew[k])] = 0
    return x


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
        # Geometry on uint8 and only on the samples drawn for it (nearest rotation and integer crops
        # move pixels without making new values); then one conversion to float, in NCHW order, and
        # Normalize as one multiply-subtract (equal to ToTensor + Normalize up to float rounding).
        x = images.contiguous()  # a copy when the batch comes channels-last from the cache
        if x.data_ptr() == images.data_ptr():  # the caller's batch stays as it was
            x = x.clone()
        n = x.shape[0]
        if self.hflip:
            flip = torch.rand(n, device=x.device) < 0.5
            for k in flip.nonzero().flatten().tolist():  # in place, per image: cheaper than a masked copy
                x[k] = x[k].flip(-1)
        if self.random_apply_p > 0 and (self.rotation or self.crop_padding):
            chosen = torch.rand(n, device=x.device) < self.random_apply_p
            # Parameters are drawn for every sample, so the draws do not depend on how many were chosen.
            angles = rotation_angles(n, self.rotation, x.device) if self.rotation else None
            offsets = crop_offsets(n, self.crop_padding, x.device) if self.crop_padding else None
            if chosen.any():
                y = x[chosen]
                if angles is not None:
                    y = rotate(y.float(), angles[chosen]).to(torch.uint8)
                if offsets is not None:
                    y = padded_crop(y, offsets[0][chosen], offsets[1][chosen], self.crop_padding)
                x[chosen] = y
        std = torch.tensor(self.std, device=x.device)[None, :, None, None]
        mean = torch.tensor(self.mean, device=x.device)[None, :, None, None]
        out = x.to(torch.float32, memory_format=torch.contiguous_format).mul_(1 / (255 * std)).sub_(mean / std)
        if self.erasing > 0:
            out = erase(out, self.erasing, self.erasing_scale)
        return out


def batch_collate(augment: Callable[[torch.Tensor], torch.Tensor] | None):
    """A DataLoader collate function: stack (uint8 image, label, index) samples, then augment the batch
    (None: leave it uint8, for the training loop to augment on the model's device)."""

    def collate(samples: list | tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if isinstance(samples, tuple):  # already a batch (PoolDataset.__getitems__ from the decoded cache)
            images, labels, index = samples
            return (augment(images) if augment else images), labels, index
        images = torch.stack([s[0] for s in samples])
        labels = torch.tensor([s[1] for s in samples], dtype=torch.int64)
        index = torch.tensor([s[2] for s in samples], dtype=torch.int64)
        return (augment(images) if augment else images), labels, index

    return collate
