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
different recipe. RandAugment (timm's, Ada-DF) has its batched version in common/randaugment.py.
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


def crop_offsets(n: int, padding: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """RandomCrop(size, padding)'s draw on a size x size image: top and left uniform over 0..2*padding."""
    return (torch.randint(0, 2 * padding + 1, (n,), device=device),
            torch.randint(0, 2 * padding + 1, (n,), device=device))


def source_pixels(n: int, h: int, w: int, device: torch.device | None = None, *, flip: torch.Tensor | None = None,
                  angles: torch.Tensor | None = None, top: torch.Tensor | None = None,
                  left: torch.Tensor | None = None, padding: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each output pixel of hflip -> RandomRotation (nearest, zero fill) -> RandomCrop(padding)
    comes from: the flat source index y * w + x per sample [n, h, w] (long) and whether that source
    exists (False: the pixel is fill, 0). Each step is optional (None: not applied to the batch).

    The three steps only move pixels, so their composition is one index map and the batch is read
    once (take_pixels), instead of a padded copy, a rotated copy and a flipped copy. Rounding is
    half to even, as grid_sample's nearest mode. Float arithmetic is exact at these sizes and far
    cheaper than int64 on CPU."""
    # Rows stay [n, h, 1] and columns [n, 1, w] until the rotation mixes them, so without one every
    # step costs h + w values per sample, not h * w; with one, the map costs a dozen passes of h * w.
    f32 = {"device": device, "dtype": torch.float32}
    p = torch.arange(h, **f32)[None, :, None].expand(n, h, 1)
    q = torch.arange(w, **f32)[None, None, :].expand(n, 1, w)
    if top is not None:  # crop window (top, left) of the zero-padded image: shift; the padding is no pixel
        p = p + (top.to(**f32) - padding)[:, None, None]
        q = q + (left.to(**f32) - padding)[:, None, None]
        # A row or column of padding moves far outside the image, where the validity test below
        # finds it; a rotation cannot bring it back (it keeps distances to the centre).
        far = float(4 * (h + w))
        p = p.masked_fill((p < 0) | (p >= h), far)
        q = q.masked_fill((q < 0) | (q >= w), far)
    if angles is not None:  # the inverse rotation about the image centre; y points down, hence the signs
        theta = angles.to(**f32) * (math.pi / 180)
        cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
        ys, xs = p + (0.5 - h / 2), q + (0.5 - w / 2)
        q = (cos * xs - sin * ys).add_(w / 2 - 0.5).round_()
        p = (sin * xs + cos * ys).add_(h / 2 - 0.5).round_()
    if flip is not None:
        q = torch.where(flip.to(device)[:, None, None], (w - 1) - q, q)
    pc, qc = p.clamp(0, h - 1), q.clamp(0, w - 1)
    inside = (pc == p) & (qc == q)
    # Without a rotation pc and qc are still a column and a row: convert them first, so the only
    # h * w pass is the sum; with one they are full maps, and one float pass plus one conversion is least.
    pixel = (pc.long() * w + qc.long()) if angles is None else torch.add(qc, pc, alpha=w).long()
    return pixel.expand(n, h, w), inside.expand(n, h, w)


def take_pixels(x: torch.Tensor, pixel: torch.Tensor, inside: torch.Tensor | None = None) -> torch.Tensor:
    """Image k of the result takes, at every position, pixel `pixel[k]` (flat index y * w + x) of image
    k of `x` [n, c, h, w] (any dtype), or 0 where `inside` is False (None: every source exists);
    contiguous NCHW. One gather over every channel plane at once (the index is broadcast over the
    channels, not copied)."""
    n, c, h, w = x.shape
    planes = x.reshape(n, c, h * w)  # a view for NCHW memory (the decoded cache's layout)
    out = torch.gather(planes, 2, pixel.reshape(n, 1, h * w).expand(n, c, h * w))
    if inside is not None:
        keep = inside.reshape(n, 1, h * w)
        # Multiplying by the mask is one cheap pass for bytes; for floats it would turn -x * 0 into -0.0.
        out = out.mul_(keep) if x.dtype == torch.uint8 else out.masked_fill_(~keep, 0)
    return out.view(n, c, h, w)


def rotate(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate each image about its centre by `angles` degrees (counter-clockwise, as torchvision),
    nearest neighbour, zero fill, same size (RandomRotation's defaults)."""
    n, _, h, w = x.shape
    return take_pixels(x, *source_pixels(n, h, w, x.device, angles=angles))


def padded_crop(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad by `padding`, then cut each sample's size x size window at (top, left)."""
    n, _, h, w = x.shape
    return take_pixels(x, *source_pixels(n, h, w, x.device, top=top, left=left, padding=padding))


def erase_boxes(n: int, h: int, w: int, scale: tuple[float, float],
                device: torch.device | None = None) -> tuple[torch.Tensor, ...]:
    """RandomErasing.get_params per sample: up to ERASE_ATTEMPTS tries of area U(scale) and log-uniform
    aspect ratio; the first box that fits wins; a sample with none keeps its image (valid False)."""
    area = h * w
    log_ratio = torch.log(torch.tensor(ERASE_RATIO)).tolist()  # float32 logs, as torchvision; on the host: no sync
    target = area * torch.empty(n, ERASE_ATTEMPTS, device=device).uniform_(scale[0], scale[1])
    aspect = torch.exp(torch.empty(n, ERASE_ATTEMPTS, device=device).uniform_(*log_ratio))
    eh = torch.round(torch.sqrt(target * aspect)).long()
    ew = torch.round(torch.sqrt(target / aspect)).long()
    fits = (eh < h) & (ew < w)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.zeros(n, dtype=torch.long, device=device))
    pick = torch.arange(n, device=device)
    eh, ew, valid = eh[pick, first], ew[pick, first], fits.any(1)
    top = (torch.rand(n, device=device) * (h - eh + 1).clamp(min=1)).long()
    left = (torch.rand(n, device=device) * (w - ew + 1).clamp(min=1)).long()
    return top, left, eh, ew, valid


def erase(x: torch.Tensor, p: float, scale: tuple[float, float], masked: bool = False) -> torch.Tensor:
    """RandomErasing(p, scale, value=0) on each image of a float batch, in place (returned).
    `masked`: one box mask over the whole batch (a few kernels, no host sync: for a GPU) instead of
    one slice per erased image (less work on a CPU); the two erase the same pixels."""
    b, _, h, w = x.shape
    top, left, eh, ew, valid = erase_boxes(b, h, w, scale, x.device)
    valid &= torch.rand(b, device=x.device) < p
    if masked:
        rows = torch.arange(h, device=x.device)[None, :]
        cols = torch.arange(w, device=x.device)[None, :]
        in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None]) & valid[:, None]
        in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])
        return x.masked_fill_(in_rows[:, None, :, None] & in_cols[:, None, None, :], 0)
    # One slice assignment per erased image: far cheaper than a [B, H, W] mask over the batch.
    for k, (on, t, l, dh, dw) in enumerate(zip(*(v.tolist() for v in (valid, top, left, eh, ew)))):
        if on:
            x[k, :, t:t + dh, l:l + dw] = 0
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
    # How the pixels are moved; both give the same batch. True: the whole batch as one index map (images
    # not drawn for the geometry get 0 degrees and the centred crop, so only their flip) and erasing as
    # one mask: a fixed handful of kernels and no host sync, what a GPU wants. False: the map only for
    # the images drawn for the geometry and a copy per flipped or erased image, several times less work
    # on a CPU. None: True on CUDA, False elsewhere.
    whole_batch: bool | None = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        # Geometry on uint8 (nearest rotation and integer crops move pixels without making new
        # values), Normalize as one multiply-add over the float batch
        # (equal to ToTensor + Normalize up to float rounding). The caller's batch is never written to.
        n, c, h, w = images.shape
        dev = images.device
        flip = torch.rand(n, device=dev) < 0.5 if self.hflip else torch.zeros(n, dtype=torch.bool, device=dev)
        geometric = self.random_apply_p > 0 and bool(self.rotation or self.crop_padding)
        chosen = torch.zeros(n, dtype=torch.bool, device=dev)
        angles = offsets = None
        if geometric:
            chosen = torch.rand(n, device=dev) < self.random_apply_p
            # Parameters are drawn for every sample, so the draws do not depend on how many were chosen.
            angles = rotation_angles(n, self.rotation, dev) if self.rotation else None
            offsets = crop_offsets(n, self.crop_padding, dev) if self.crop_padding else None
        std = torch.tensor(self.std, device=dev).view(1, 3, 1, 1)
        scale, shift = 1 / (255 * std), torch.tensor(self.mean, device=dev).view(1, 3, 1, 1) / std
        # Geometry on a uint8 copy of the batch, then ONE pass to float32: moving bytes before the
        # conversion is a quarter of the traffic of moving floats after it. NCHW (the decoded cache's
        # layout) makes every copy here a contiguous one.
        src = images.contiguous()
        whole = dev.type == "cuda" if self.whole_batch is None else self.whole_batch
        if whole:
            if angles is not None:
                angles = torch.where(chosen, angles, 0.0)
            if offsets is not None:
                offsets = tuple(torch.where(chosen, o, self.crop_padding) for o in offsets)
            x = take_pixels(src, *source_pixels(n, h, w, dev, flip=flip if self.hflip else None, angles=angles,
                                                top=offsets[0] if offsets is not None else None,
                                                left=offsets[1] if offsets is not None else None,
                                                padding=self.crop_padding))
        else:
            x = self._picked_and_flipped(src, flip, chosen, angles, offsets)
        out = x.to(torch.float32, memory_format=torch.contiguous_format)
        out.mul_(scale).sub_(shift)
        if self.erasing > 0:
            out = erase(out, self.erasing, self.erasing_scale, masked=whole)
        return out

    def _picked_and_flipped(self, src: torch.Tensor, flip: torch.Tensor, chosen: torch.Tensor,
                            angles: torch.Tensor | None, offsets: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """A uint8 copy of `src` with the chosen images mapped (flip, rotation, crop as one gather of
        their pixels) and the other flipped ones flipped, image by image."""
        n, c, h, w = src.shape
        x = src.clone()
        picked = chosen.nonzero().flatten()
        if len(picked):
            where = source_pixels(len(picked), h, w, src.device, flip=flip[picked] if self.hflip else None,
                                  angles=angles[picked] if angles is not None else None,
                                  top=offsets[0][picked] if offsets is not None else None,
                                  left=offsets[1][picked] if offsets is not None else None,
                                  padding=self.crop_padding)
            for k, image in zip(picked.tolist(), take_pixels(src.index_select(0, picked), *where)):
                x[k] = image  # per image: a strided index_put over the batch is several times slower
        for k in (flip & ~chosen).nonzero().flatten().tolist():  # per image: cheaper than a masked copy
            x[k] = src[k].flip(-1)
        return x


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
