"""Batched augmentation (common/augment.py) against the per-image torchvision ops it replaces: the
same geometry for the same parameters, and the same parameter distributions over many draws."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from torchvision import transforms as T
from torchvision.transforms import functional as TF

from common.adapter import InputSpec
from common.augment import (BatchAugment, crop_offsets, erase, padded_crop, rotate, rotation_angles, source_pixels,
                            take_pixels)
from common.transforms import batch_train_transform, eval_transform

N = 4000
S = 24


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _ramp(n: int = 1) -> torch.Tensor:
    """uint8 images whose every pixel of one row is different: any flip, shift or rotation shows."""
    row = torch.arange(S, dtype=torch.uint8) * 10
    img = (row[None, :] + torch.arange(S, dtype=torch.uint8)[:, None]).expand(3, S, S)
    return img[None].repeat(n, 1, 1, 1).contiguous()


def test_without_augmentation_the_batch_is_totensor_and_normalize() -> None:
    spec = InputSpec(size=S)
    x = torch.randint(0, 256, (8, 3, S, S), dtype=torch.uint8)
    out = BatchAugment(mean=spec.mean, std=spec.std, hflip=False)(x)
    cfg = {"data": {"image_size": S}}
    ref = torch.stack([eval_transform(spec, cfg)(Image.fromarray(img.permute(1, 2, 0).numpy())) for img in x])
    assert out.is_contiguous() and torch.allclose(out, ref, rtol=0, atol=1e-5)


def test_flip_rate_is_one_half_as_torchvision() -> None:
    x = _ramp(N)
    out = BatchAugment(mean=(0, 0, 0), std=(1 / 255,) * 3, hflip=True)(x)
    flipped = (out[:, 0, 0, 0] != x[:, 0, 0, 0].float()).float().mean().item()
    reference = np.mean([torch.rand(1).item() < 0.5 for _ in range(N)])  # RandomHorizontalFlip's draw
    assert abs(flipped - 0.5) < 0.03 and abs(reference - 0.5) < 0.03
    hit = out[:, 0, 0, 0] != 0
    assert torch.allclose(out[hit], x.flip(-1).float()[hit], atol=1e-3)
    assert torch.allclose(out[~hit], x.float()[~hit], atol=1e-3)


def test_rotation_angles_are_uniform_like_random_rotation() -> None:
    ours = rotation_angles(N, 15.0).numpy()
    theirs = np.array([T.RandomRotation.get_params([-15.0, 15.0]) for _ in range(N)])
    assert ours.min() >= -15 and ours.max() <= 15
    assert stats.ks_2samp(ours, theirs).pvalue > 1e-3
    assert stats.kstest(ours, stats.uniform(-15, 30).cdf).pvalue > 1e-3


@pytest.mark.parametrize("angle", [-20.0, 7.0, 30.0])
def test_rotate_turns_the_same_way_as_torchvision(angle: float) -> None:
    img = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    ours = rotate(img.float(), torch.tensor([angle]))[0]
    theirs = TF.rotate(img[0], angle, interpolation=T.InterpolationMode.NEAREST).float()
    # Nearest-neighbour rounding differs at a few pixels; a wrong direction or centre differs at most.
    assert (ours == theirs).float().mean().item() > 0.9


def test_padded_crop_is_pad_then_crop_and_offsets_are_uniform() -> None:
    x = _ramp(5).float()
    top, left = torch.tensor([0, 4, 8, 2, 8]), torch.tensor([0, 4, 0, 7, 8])
    out = padded_crop(x, top, left, 4)
    for k in range(5):
        ref = TF.crop(TF.pad(x[k], 4), int(top[k]), int(left[k]), S, S)
        assert torch.equal(out[k], ref)
    ours = torch.stack(crop_offsets(N, 4)).flatten().numpy()
    crop = T.RandomCrop(S, padding=4)
    theirs = np.array([T.RandomCrop.get_params(TF.pad(torch.zeros(1, S, S), 4), (S, S))[:2]
                       for _ in range(N // 2)]).flatten()
    assert set(ours) == set(theirs) == set(range(9)) and crop.padding == 4
    table = np.array([np.bincount(ours, minlength=9), np.bincount(theirs, minlength=9) * 2])
    assert stats.chi2_contingency(table).pvalue > 1e-3


def test_random_apply_fraction_matches_p() -> None:
    x = _ramp(N)
    out = BatchAugment(mean=(0, 0, 0), std=(1 / 255,) * 3, hflip=False, random_apply_p=0.3, crop_padding=4)(x)
    changed = ((out - x.float()).abs() > 0.5).flatten(1).any(1).float().mean().item()
    # A crop at offset (4, 4) leaves the image as it was: 1/81 of the applied ones look unchanged.
    assert abs(changed - 0.3 * 80 / 81) < 0.03


def test_erased_area_fractions_follow_random_erasing() -> None:
    ones = torch.ones(N, 3, S, S)
    out = erase(ones.clone(), 1.0, (0.02, 0.33))
    ours = (out[:, 0] == 0).flatten(1).float().mean(1).numpy()
    eraser = T.RandomErasing(p=1.0, scale=(0.02, 0.33))
    theirs = np.array([(eraser(torch.ones(3, S, S))[0] == 0).float().mean().item() for _ in range(N)])
    assert stats.ks_2samp(ours, theirs).pvalue > 1e-3
    # Box sides are rounded, as torchvision rounds them, so an area can pass 0.33 a little.
    assert (ours > 0).mean() > 0.95 and ours.max() < 0.4 and theirs.max() < 0.4
    # The probability gate: p=0.25 erases about a quarter of the images.
    gated = (erase(ones.clone(), 0.25, (0.02, 0.33))[:, 0] == 0).flatten(1).any(1).float().mean().item()
    assert abs(gated - 0.25 * (ours > 0).mean()) < 0.03


def test_the_config_builds_the_batched_pipeline() -> None:
    aug = {"hflip": True, "random_apply_p": 0.5, "rotation": 10, "crop_padding": 4, "randaugment": None,
           "erasing": 0.25, "erasing_scale": [0.02, 0.33]}
    t = batch_train_transform(InputSpec(size=S), {"augment": aug})
    assert t.rotation == 10 and t.crop_padding == 4 and t.erasing_scale == (0.02, 0.33)
    assert t(_ramp(4)).shape == (4, 3, S, S)


def test_one_gather_equals_flip_then_rotation_then_padded_crop_as_torchvision() -> None:
    """The batched path does hflip -> rotation -> padded crop of a chosen image as one index map:
    pixel for pixel what torchvision's functional ops give one after the other (nearest rotation
    rounds differently at a few pixels), on uint8 and on float, in NCHW and channels-last memory."""
    g = torch.Generator().manual_seed(3)
    img = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8, generator=g)
    flip = torch.tensor([True, False, True, False, True, False])
    angles = torch.tensor([0.0, 12.5, -20.0, 30.0, -3.0, 0.0])
    top, left = torch.tensor([0, 8, 3, 5, 8, 4]), torch.tensor([8, 0, 6, 2, 1, 4])
    where = source_pixels(6, 40, 40, flip=flip, angles=angles, top=top, left=left, padding=4)
    for x in (img, img.float(), img.contiguous(memory_format=torch.channels_last)):
        ours = take_pixels(x, *where)
        assert ours.dtype == x.dtype and ours.shape == x.shape
        for k in range(6):
            ref = TF.hflip(img[k]) if flip[k] else img[k]
            ref = TF.rotate(ref, float(angles[k]), interpolation=T.InterpolationMode.NEAREST)
            ref = TF.crop(TF.pad(ref, 4), int(top[k]), int(left[k]), 40, 40)
            agree = (ours[k].to(torch.uint8) == ref).float().mean().item()
            assert agree == 1.0 if angles[k] == 0 else agree > 0.95, (k, agree)
    # The caller's batch is never written to.
    before = img.clone()
    BatchAugment(mean=(0.5,) * 3, std=(0.5,) * 3, random_apply_p=1.0, rotation=20, crop_padding=4, erasing=1.0)(img)
    assert torch.equal(img, before)


@pytest.mark.parametrize("recipe", [
    {"hflip": True},
    {"hflip": False, "random_apply_p": 0.4, "crop_padding": 4},
    {"hflip": True, "random_apply_p": 0.3, "rotation": 20, "crop_padding": 4, "erasing": 0.5},
    {"hflip": True, "random_apply_p": 1.0, "rotation": 45, "erasing": 1.0, "erasing_scale": (0.02, 0.25)},
])
def test_whole_batch_and_per_image_strategies_give_the_same_batch(recipe: dict) -> None:
    """The GPU's strategy (one index map and one erasing mask over the whole batch) and the CPU's (the
    map for the chosen images only, a copy per flipped or erased image) draw the same parameters and
    must move and erase the same pixels, so a run's batches do not depend on the device's strategy."""
    x = torch.randint(0, 256, (48, 3, 40, 40), dtype=torch.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    for seed in range(3):
        torch.manual_seed(seed)
        per_image = BatchAugment(mean=mean, std=std, whole_batch=False, **recipe)(x)
        torch.manual_seed(seed)
        whole = BatchAugment(mean=mean, std=std, whole_batch=True, **recipe)(x)
        assert torch.equal(per_image, whole), (recipe, seed, (per_image != whole).sum().item())
    # The strategies differ in how, not what: the batch is augmented at all.
    assert not torch.equal(whole, BatchAugment(mean=mean, std=std, hflip=False)(x))


def test_masked_erasing_erases_the_boxes_the_slices_erase() -> None:
    x = torch.randn(64, 3, 30, 30)
    torch.manual_seed(5)
    sliced = erase(x.clone(), 0.6, (0.02, 0.33))
    torch.manual_seed(5)
    masked = erase(x.clone(), 0.6, (0.02, 0.33), masked=True)
    assert torch.equal(sliced, masked)
    erased = (masked == 0).flatten(1).any(1).float().mean().item()
    assert 0.4 < erased < 0.8
