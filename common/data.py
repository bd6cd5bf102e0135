"""torch Dataset / DataLoader over a dataset Pool and a split's indices."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from common.seeding import worker_init


class PoolDataset(Dataset):
    """Samples `indices` of `pool`; returns (image tensor, label, pool index)."""

    def __init__(self, pool: Any, indices: np.ndarray, transform: Callable) -> None:
        self.pool = pool
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        idx = int(self.indices[i])
        return self.transform(self.pool.image(idx)), int(self.pool.labels[idx]), idx


def make_loader(dataset: PoolDataset, batch_size: int, *, train: bool, num_workers: int,
                drop_last: bool = True, generator: torch.Generator | None = None) -> DataLoader:
    """Training loaders shuffle with the seeded generator and drop the last partial batch when asked
    (config train.drop_last), since a batch of 1 breaks BatchNorm1d heads."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=train, drop_last=train and drop_last and len(dataset) > batch_size,
                      num_workers=num_workers, generator=generator, worker_init_fn=worker_init,
                      persistent_workers=False, pin_memory=torch.cuda.is_available())
