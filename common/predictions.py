"""A run's predictions.csv: the identity of its test fold, and the checks that make it a result.

Torch-free (numpy, pandas): the run records `test_index_hash` when it writes the file; collect
validates the file against it before computing any metric, so a truncated, empty or edited file
becomes a visible `damaged` run instead of a different number.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

# predictions.csv stores probabilities with 6 decimals: rounding leaves each row's sum within
# classes * 5e-7 of 1; anything further off is not a softmax output.
PROB_TOLERANCE = 1e-3


def index_hash(indices: np.ndarray | list[int]) -> str:
    """Hash of a set of pool indices (order ignored): equal hash <=> the same test samples."""
    idx = np.sort(np.asarray(indices, dtype=np.int64))
    return hashlib.sha256(idx.tobytes()).hexdigest()[:16]


def check(path: Path, status: dict[str, Any]):
    """The predictions as a DataFrame if they are a whole result of the run `status` describes;
    raises ValueError naming the file and what is wrong otherwise."""
    import pandas as pd  # here: keeps `import common.predictions` light

    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: missing") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable CSV ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    probs = [c for c in df.columns if c.startswith("p_")]
    missing = [c for c in ("pool_index", "label", "pred") if c not in df.columns]
    if missing or not probs:
        raise ValueError(f"{path}: columns {list(df.columns)} lack {missing or 'the p_<class> columns'}")
    n_test = status.get("n_test")
    if n_test is not None and len(df) != int(n_test):
        raise ValueError(f"{path}: {len(df)} rows, but the run's test fold has {n_test} samples (truncated?)")
    numeric = df[["pool_index", "label", "pred", *probs]].apply(pd.to_numeric, errors="coerce")
    if numeric.isna().any().any():
        raise ValueError(f"{path}: non-numeric or empty values in row {int(numeric.isna().any(axis=1).idxmax()) + 2}")
    if df["pool_index"].duplicated().any():
        raise ValueError(f"{path}: pool_index {int(df['pool_index'][df['pool_index'].duplicated()].iloc[0])} "
                         "appears more than once")
    expected = status.get("test_index_hash")
    if expected and index_hash(df["pool_index"].to_numpy()) != expected:
        raise ValueError(f"{path}: the samples are not the run's test fold (test_index_hash differs)")
    k = len(probs)
    for col in ("label", "pred"):
        bad = ~numeric[col].between(0, k - 1)
        if bad.any():
            raise ValueError(f"{path}: {col} {numeric[col][bad].iloc[0]!r} in row {int(bad.idxmax()) + 2} "
                             f"is not a class index 0..{k - 1}")
    sums = numeric[probs].sum(axis=1)
    off = (sums - 1).abs() > PROB_TOLERANCE
    if off.any():
        raise ValueError(f"{path}: probabilities of row {int(off.idxmax()) + 2} sum to {sums[off].iloc[0]:.4f}, not 1")
    return df
