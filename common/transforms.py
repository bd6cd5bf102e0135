"""Image transforms built from the adapter's InputSpec and the config's `augment` section."""
from __future__ import annotations

from typing import Any

from torchvision import transforms as T

from common.adapter import InputSpec

_INTERPOLATION = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC,
                  "nearest": T.InterpolationMode.NEAREST}


def image_size(spec: InputSpec, cfg: dict[str, Any]) -> int:
    return int(cfg["data"]["image_size"] or spec.size)


def resize_op(spec: InputSpec, size: int) -> T.Resize:
    """The model's Resize: the first step of every pipeline, and what the decoded cache stores (common/cache.py)."""
    if spec.interpolation not in _INTERPOLATION:
        raise ValueError(f"interpolation {spec.interpolation!r} unknown; valid: {', '.join(_INTERPOLATION)}")
    return T.Resize((size, size), interpolation=_INTERPOLATION[spec.interpolation], antialias=True)


def fill_pixel(spec: InputSpec) -> tuple[int, ...]:
    """RandAugment's fill for the area its geometric ops uncover (timm's img_mean): the model's mean pixel."""
    return tuple(round(255 * m) for m in spec.mean)


def train_transform(spec: InputSpec, cfg: dict[str, Any]) -> T.Compose:
    """Resize, PIL-space augmentation (flip, RandomApply[rotation, crop], RandAugment), tensor, normalise, erasing."""
    aug = cfg["augment"]
    size = image_size(spec, cfg)
    ops: list[Any] = [resize_op(spec, size)]
    if aug["hflip"]:
        ops.append(T.RandomHorizontalFlip())
    inner: list[Any] = []
    if aug["rotation"]:
        inner.append(T.RandomRotation(aug["rotation"]))
    if aug["crop_padding"]:
        inner.append(T.RandomCrop(size, padding=aug["crop_padding"]))
    if inner and aug["random_apply_p"] > 0:
        ops.append(T.RandomApply(inner, p=aug["random_apply_p"]))
    if aug["randaugment"]:
        from timm.data.auto_augment import rand_augment_transform

        ops.append(rand_augment_transform(aug["randaugment"], {"img_mean": fill_pixel(spec)}))
    ops += [T.ToTensor(), T.Normalize(spec.mean, spec.std)]
    if aug["erasing"] > 0:
        ops.append(T.RandomErasing(p=aug["erasing"], scale=tuple(aug["erasing_scale"])))
    return T.Compose(ops)


def eval_transform(spec: InputSpec, cfg: dict[str, Any]) -> T.Compose:
    return T.Compose([resize_op(spec, image_size(spec, cfg)), T.ToTensor(), T.Normalize(spec.mean, spec.std)])


def batch_train_transform(spec: InputSpec, cfg: dict[str, Any]):
    """The train pipeline above for whole uint8 batches of resized images (common/augment.py), with
    `augment.randaugment` as timm's RandAugment for batches (common/randaugment.py) in the same place:
    after flip and RandomApply, before normalisation and erasing."""
    from common.augment import BatchAugment

    aug = cfg["augment"]
    geometry_args = dict(hflip=bool(aug["hflip"]), random_apply_p=float(aug["random_apply_p"]),
                         rotation=float(aug["rotation"]), crop_padding=int(aug["crop_padding"]))
    erasing = dict(erasing=float(aug["erasing"]), erasing_scale=tuple(aug["erasing_scale"]))
    if not aug["randaugment"]:
        return BatchAugment(mean=tuple(spec.mean), std=tuple(spec.std), **geometry_args, **erasing)
    from common.randaugment import WithRandAugment, from_timm

    # RandAugment works on uint8 pixels, so the flip/RandomApply step runs first as a BatchAugment that
    # leaves pixel values (mean 0, std 1/255), and a second one only normalises and erases.
    geometric = aug["hflip"] or (aug["random_apply_p"] > 0 and bool(aug["rotation"] or aug["crop_padding"]))
    geometry = BatchAugment(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3, **geometry_args) if geometric else None
    return WithRandAugment(geometry, from_timm(aug["randaugment"], fill_pixel(spec)),
                           BatchAugment(mean=tuple(spec.mean), std=tuple(spec.std), hflip=False, **erasing))
