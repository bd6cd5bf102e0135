"""The repeated-random-split protocol (README.md, The protocol), identical to the reference suite's folds.

Iteration k: test = k-th split of ShuffleSplit(n_splits, test_size, random_state); the rest is split
into train/val by train_test_split(test_size=val_size, random_state=k). `stratified` swaps in the
stratified versions of both; it is an option, never a silent change, and its protocol id differs.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit, train_test_split


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def protocol_id(protocol: dict[str, Any]) -> str:
    """A readable id that changes whenever the folds would."""
    return (f"{protocol['strategy']}-n{protocol['n_splits']}-t{round(protocol['test_size'] * 100)}"
            f"-v{round(protocol['val_size'] * 100)}-s{protocol['random_state']}")


def make_split(labels: np.ndarray, iteration: int, protocol: dict[str, Any]) -> Split:
    """Indices into the pool for iteration `iteration` (0-based) of the protocol."""
    n_splits = protocol["n_splits"]
    if not 0 <= iteration < n_splits:
        raise ValueError(f"iteration {iteration} is out of range; the protocol has {n_splits} splits (0..{n_splits - 1})")
    labels = np.asarray(labels)
    idx = np.arange(len(labels))
    stratified = protocol["strategy"] == "stratified"
    splitter_cls = StratifiedShuffleSplit if stratified else ShuffleSplit
    splitter = splitter_cls(n_splits=n_splits, test_size=protocol["test_size"], random_state=protocol["random_state"])
    for k, (train_val, test) in enumerate(splitter.split(idx, labels if stratified else None)):
        if k == iteration:
            break
    train, val = train_test_split(train_val, test_size=protocol["val_size"], random_state=iteration,
                                  stratify=labels[train_val] if stratified else None)
    return Split(train=np.asarray(train), val=np.asarray(val), test=np.asarray(test))


def split_hash(split: Split) -> str:
    """Hash of the three index lists (order included): equal hash <=> identical folds."""
    h = hashlib.sha256()
    for name in ("train", "val", "test"):
        part = np.asarray(getattr(split, name), dtype=np.int64)
        h.update(name.encode())
        h.update(part.tobytes())
    return h.hexdigest()[:16]
