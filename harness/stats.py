"""Aggregate per-run results (summary.csv rows) into per-cell statistics.

Torch-free on purpose: the harness must run where only pandas is installed (e.g. a login node).
Columns are read by name, so the column order fixed in harness/collect.py can change freely.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common.errors import ConfigError
from common.status import IN_PROGRESS, OUTCOMES, RunStatus

METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
REQUIRED_COLUMNS = ("model", "dataset", "protocol", "iteration", "status", "pretrained", "split_hash",
                    "error_class", *METRICS)
# Values of the `pretrained` column that mean "trained from scratch" (lower-cased; empty = not recorded).
SCRATCH_VALUES = frozenset({"", "none", "scratch"})
AGGREGATE_COLUMNS = ("dataset", "model", "mean", "std", "n_done", "n_total", "failures", "protocols",
                     "pretrained", "split_mismatch")


def read_summary(path: Path) -> pd.DataFrame:
    """Read summary.csv with every text column kept verbatim.

    pandas' default NA parsing would turn a model called "NA" or a pretrained value "None" into NaN
    and a split hash like "0123" into a number, so everything is read as text and only the metric
    and iteration columns are converted, loudly.
    """
    return summary_frame(pd.read_csv(path, dtype=str, keep_default_na=False), str(path))


def summary_frame(df: pd.DataFrame, source: str = "summary") -> pd.DataFrame:
    """Rows of summary.csv read as text (as read_summary and collect produce them), checked and converted
    the same way: runs still in progress dropped, metrics as floats, iteration as int. `source` names
    where the rows came from in the errors."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(missing)}; required: {', '.join(REQUIRED_COLUMNS)}")
    empty = int((df["status"] == "").sum())
    if empty:
        raise ValueError(f"{source}: {empty} row(s) with an empty status; valid: {', '.join(OUTCOMES + IN_PROGRESS)} "
                         "(any other value counts as a failure)")
    df = df[~df["status"].isin(IN_PROGRESS)].reset_index(drop=True)
    for col in METRICS:
        df[col] = pd.to_numeric(df[col].replace("", np.nan), errors="raise").astype(float)
    df["iteration"] = pd.to_numeric(df["iteration"], errors="raise").astype(int)
    return df


def is_pretrained(value: str) -> bool:
    """True when the `pretrained` column records loaded weights ("resnet18_msceleb.pth (122/122)")."""
    return value.strip().lower() not in SCRATCH_VALUES


def split_mismatches(df: pd.DataFrame) -> pd.DataFrame:
    """(dataset, iteration) groups whose models did not all run on the same split.

    Two models are only comparable on identical folds, so every group with more than one distinct
    split hash is returned with `hashes`: {model: split_hash}. Rows without a hash (a run that failed
    before splitting) cannot disagree and are ignored.
    """
    rows = []
    hashed = df[df["split_hash"] != ""]
    for (dataset, iteration), group in hashed.groupby(["dataset", "iteration"], sort=True):
        if group["split_hash"].nunique() > 1:
            hashes = dict(zip(group["model"], group["split_hash"]))
            rows.append({"dataset": dataset, "iteration": int(iteration), "hashes": hashes})
    return pd.DataFrame(rows, columns=["dataset", "iteration", "hashes"])


def _failure(row: pd.Series, metric: str) -> str:
    if row["status"] == RunStatus.DONE:
        return f"iter {row['iteration']}: done but no {metric}"
    return f"iter {row['iteration']}: {row['error_class'] or row['status']}"


def _std(values: np.ndarray, ddof: int) -> float:
    # Undefined (NaN), not zero, when there are too few values: a single run has no spread estimate.
    return float(np.std(values, ddof=ddof)) if len(values) > ddof else float("nan")


def aggregate(df: pd.DataFrame, metric: str, ddof: int = 1) -> pd.DataFrame:
    """Per (dataset, model): mean and std of `metric` over successful iterations.

    n_done counts runs that finished with a value, n_total all recorded runs, so a failure shrinks n
    visibly instead of vanishing; `failures` lists "iter k: ErrorClass" for the rest. `split_mismatch`
    is True when some iteration of the cell ran on a different split than another model's.
    std uses `ddof` (1 by default; the reference table used 0).
    """
    if metric not in df.columns:
        raise ConfigError(f"unknown metric {metric!r}; valid: {', '.join(c for c in METRICS if c in df.columns)}")
    mismatched = {(m.dataset, m.iteration) for m in split_mismatches(df).itertuples()}
    rows = []
    for (dataset, model), group in df.groupby(["dataset", "model"], sort=True):
        group = group.sort_values("iteration")
        ok = (group["status"] == RunStatus.DONE) & group[metric].notna()
        values = group.loc[ok, metric].to_numpy(dtype=float)
        done = group[group["status"] == RunStatus.DONE]
        rows.append({
            "dataset": dataset,
            "model": model,
            "mean": float(values.mean()) if len(values) else float("nan"),
            "std": _std(values, ddof),
            "n_done": int(ok.sum()),
            "n_total": len(group),
            "failures": [_failure(row, metric) for _, row in group[~ok].iterrows()],
            "protocols": sorted(set(group["protocol"])),
            "pretrained": sorted(set(done["pretrained"])),
            "split_mismatch": any((dataset, it) in mismatched for it in group["iteration"]),
        })
    return pd.DataFrame(rows, columns=list(AGGREGATE_COLUMNS))


def chance_levels(df: pd.DataFrame, metric: str) -> dict[str, float]:
    """Per dataset, what always predicting the most frequent class scores on `metric` (the floor to beat).

    accuracy: the mean majority-class rate of the test folds (`majority_rate` column); balanced
    accuracy: 1/C (recall 1 on one class, 0 on the others), C from the dataset's class list. Datasets
    (or metrics) where it is not known are absent.
    """
    from common.datasets import class_names  # torch-free; imported here so stats stays importable alone

    out: dict[str, float] = {}
    done = df[df["status"] == RunStatus.DONE]
    for dataset, group in done.groupby("dataset"):
        if metric == "accuracy" and "majority_rate" in group.columns:
            rates = pd.to_numeric(group["majority_rate"].replace("", np.nan), errors="coerce").dropna()
            if len(rates):
                out[dataset] = float(rates.mean())
        elif metric == "balanced_accuracy":
            try:
                out[dataset] = 1.0 / len(class_names(dataset))
            except (KeyError, ValueError):
                continue
    return out
