import numpy as np
import pytest
from sklearn.model_selection import ShuffleSplit, train_test_split

from common.splits import make_split, protocol_id, split_hash

PROTOCOL = {"strategy": "shuffle", "n_splits": 10, "test_size": 0.2, "val_size": 0.25, "random_state": 42}


def reference_folds(n: int):
    """The reference suite's loop, written out with sklearn directly."""
    idx = np.arange(n)
    for k, (train_val, test) in enumerate(ShuffleSplit(n_splits=10, test_size=0.2, random_state=42).split(idx)):
        train, val = train_test_split(train_val, test_size=0.25, random_state=k)
        yield k, train, val, test


@pytest.mark.parametrize("n", [981, 1634])
def test_folds_equal_reference(n: int) -> None:
    labels = np.arange(n) % 7
    for k, train, val, test in reference_folds(n):
        s = make_split(labels, k, PROTOCOL)
        assert np.array_equal(s.train, train) and np.array_equal(s.val, val) and np.array_equal(s.test, test)
        assert len(set(s.train) | set(s.val) | set(s.test)) == n
        assert not (set(s.train) & set(s.test)) and not (set(s.val) & set(s.test)) and not (set(s.train) & set(s.val))


def test_split_hash_identifies_folds() -> None:
    labels = np.arange(500) % 7
    hashes = {split_hash(make_split(labels, k, PROTOCOL)) for k in range(10)}
    assert len(hashes) == 10
    assert split_hash(make_split(labels, 3, PROTOCOL)) == split_hash(make_split(labels.copy(), 3, PROTOCOL))
    assert split_hash(make_split(np.arange(501) % 7, 3, PROTOCOL)) not in hashes


def test_stratified_keeps_class_proportions() -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice(7, size=2000, p=[0.1, 0.02, 0.06, 0.39, 0.16, 0.06, 0.21])
    s = make_split(labels, 0, {**PROTOCOL, "strategy": "stratified"})
    overall = np.bincount(labels, minlength=7) / len(labels)
    for part in (s.train, s.val, s.test):
        assert np.abs(np.bincount(labels[part], minlength=7) / len(part) - overall).max() < 0.01
    assert protocol_id({**PROTOCOL, "strategy": "stratified"}) != protocol_id(PROTOCOL)
    assert protocol_id(PROTOCOL) == "shuffle-n10-t20-v25-s42"


def test_iteration_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"iteration 10 .* 10 splits"):
        make_split(np.zeros(100), 10, PROTOCOL)
