"""torch Dataset / DataLoader over a dataset Pool and a split's indices.

Images come from the pool (decoded per sample) or from the decoded cache (common/cache.py: decoded
and resized once, memory-mapped). With `augment.batched` the dataset returns uint8 tensors and the
training loop augments and normalises each whole batch on the model's device (common/augment.py);
otherwise every sample goes through the per-image torchvision pipeline (common/transforms.py).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from common.seeding import worker_init

logger = logging.getLogger(__name__)


class PoolDataset(Dataset):
    """Samples `indices` of `pool`; returns (image tensor, label, pool index).

    `images`: the pool's decoded cache (uint8 [len(pool), 3, S, S]) or None. `transform` maps the
    sample's PIL image to a tensor; None returns the uint8 [3, S, S] tensor for batched augmentation
    (then `resize` turns an uncached image into the cached size first)."""

    def __init__(self, pool: Any, indices: np.ndarray, transform: Callable | None,
                 images: np.ndarray | None = None, resize: Callable | None = None) -> None:
        self.pool = pool
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self.images = images
        self.resize = resize

    def __len__(self) -> int:
        return len(self.indices)

    def _planes(self, idx: int) -> torch.Tensor:
        """uint8 [3, S, S] of pool image `idx`."""
        if self.images is not None:
            return torch.from_numpy(np.array(self.images[idx]))  # a copy: the memory map is read-only
        return torch.from_numpy(np.asarray(self.resize(self.pool.image(idx)), dtype=np.uint8)).permute(2, 0, 1).contiguous()

    def __getitems__(self, items: list[int]) -> list | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A whole batch at once (the DataLoader calls this when it exists). From the decoded cache
        without a per-image transform: one fancy-indexed read of the memory map, uint8 [B, 3, S, S],
        instead of B Python-level samples pickled one by one."""
        if self.transform is not None or self.images is None:
            return [self[i] for i in items]
        idx = self.indices[np.asarray(items, dtype=np.int64)]
        images = torch.from_numpy(self.images[idx])
        return images, torch.from_numpy(self.pool.labels[idx]), torch.from_numpy(idx)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        idx = int(self.indices[i])
        label = int(self.pool.labels[idx])
        if self.transform is None:
            return self._planes(idx), label, idx
        # The cached array is what the transform's own Resize would produce, and Resize to the size
        # an image already has returns it unchanged: the same pixels reach the augmentation either way.
        image = (Image.fromarray(np.ascontiguousarray(self.images[idx].transpose(1, 2, 0))) if self.images is not None
                 else self.pool.image(idx))
        return self.transform(image), label, idx


def make_loader(dataset: PoolDataset, batch_size: int, *, train: bool, num_workers: int,
                drop_last: bool = True, generator: torch.Generator | None = None,
                collate_fn: Callable | None = None) -> DataLoader:
    """Training loaders shuffle with the seeded generator and drop the last partial batch when asked
    (config train.drop_last), since a batch of 1 breaks BatchNorm1d heads."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=train, drop_last=train and drop_last and len(dataset) > batch_size,
                      num_workers=num_workers, generator=generator, worker_init_fn=worker_init,
                      persistent_workers=False, pin_memory=torch.cuda.is_available(), collate_fn=collate_fn)


@dataclass
class Loaders:
    train: DataLoader
    val: DataLoader
    test: DataLoader
    info: dict[str, Any]  # how the data was read, for status.json: decoded cache folder, augmentation path
    # Batched augmentation, applied by the training loop to each uint8 batch on the model's device; None
    # when the training loader's samples come out of the per-image pipeline ready.
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None


def build_loaders(pool: Any, train_idx: np.ndarray, val_idx: np.ndarray, test_idx: np.ndarray, spec: Any,
                  cfg: dict[str, Any], generator: torch.Generator, log: Callable[[str], None] | None = None) -> Loaders:
    """The three loaders of a run from the config's data/augment/train sections and the adapter's input spec.
    Messages go to `log` when given, else to this module's logger."""
    from common import cache, transforms

    log = log or logger.info
    size = transforms.image_size(spec, cfg)
    resize = transforms.resize_op(spec, size)
    images = None
    if cfg["data"]["cache"]:
        images = cache.decoded_images(pool, size, spec.interpolation, resize, log=log)
    batched = bool(cfg["augment"]["batched"])  # RandAugment included (common/randaugment.py)
    info = {"decoded_cache": str(Path(images.filename).parent) if images is not None else None,
            "augmentation": "batched" if batched else "per-image"}
    tcfg, workers = cfg["train"], int(cfg["data"]["num_workers"])
    batch_transform = None
    if batched:
        from common.augment import batch_collate

        # The loader only reads uint8 batches (a quarter of float32's bytes between processes); the
        # training loop augments them where the model runs.
        train_ds, train_collate = PoolDataset(pool, train_idx, None, images, resize), batch_collate(None)
        batch_transform = transforms.batch_train_transform(spec, cfg)
    else:
        train_ds, train_collate = PoolDataset(pool, train_idx, transforms.train_transform(spec, cfg), images), None
    # A batch from the decoded cache is one memory-map read (well under a millisecond): worker processes
    # would only add the cost of shipping it between processes, so the batched path reads in-process.
    train_workers = 0 if batched and images is not None else workers
    info["train_workers"] = train_workers
    train = make_loader(train_ds, tcfg["batch_size"], train=True, num_workers=train_workers,
                        drop_last=tcfg["drop_last"], generator=generator, collate_fn=train_collate)
    evaluation = transforms.eval_transform(spec, cfg)
    val = make_loader(PoolDataset(pool, val_idx, evaluation, images), tcfg["eval_batch_size"], train=False,
                      num_workers=workers)
    test = make_loader(PoolDataset(pool, test_idx, evaluation, images), tcfg["eval_batch_size"], train=False,
                       num_workers=workers)
    return Loaders(train, val, test, info, batch_transform)
