"""Confusion matrices per model × dataset, summed over iterations, from the runs' predictions.csv.

Which classes a model confuses is invisible in accuracy; the matrix summed over all finished
iterations (row-normalised: each row is the distribution of predictions for one true class) and the
per-class recall show it. A run whose predictions.csv is gone is noted, not fatal: the tables come
from summary.csv alone. Torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common.status import RunStatus


@dataclass
class Confusion:
    model: str
    dataset: str
    class_names: list[str]
    counts: np.ndarray                              # [true, predicted], summed over iterations
    iterations: list[int] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # "iter k: why" for done runs without usable predictions

    @property
    def normalised(self) -> np.ndarray:
        """Rows sum to 1 (a class absent from every test fold stays a row of zeros)."""
        totals = self.counts.sum(axis=1, keepdims=True)
        return np.divide(self.counts, totals, out=np.zeros(self.counts.shape), where=totals > 0)

    @property
    def recall(self) -> np.ndarray:
        return np.diag(self.normalised).copy()

    def table(self) -> pd.DataFrame:
        """CSV form: one row per true class, the row-normalised matrix, recall and the count of test images."""
        out = pd.DataFrame(self.normalised, columns=[f"pred_{c}" for c in self.class_names])
        out.insert(0, "true_class", self.class_names)
        out["recall"] = self.recall
        out["n_images"] = self.counts.sum(axis=1)
        return out


def _read(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    preds = pd.read_csv(path)
    classes = [c[2:] for c in preds.columns if c.startswith("p_")]
    missing = [c for c in ("label", "pred") if c not in preds.columns]
    if missing or not classes:
        raise ValueError(f"no {', '.join(missing) or 'p_<class> columns'}")
    return classes, preds["label"].to_numpy(np.int64), preds["pred"].to_numpy(np.int64)


def confusions(df: pd.DataFrame, results: Path) -> list[Confusion]:
    """One Confusion per (model, dataset) with done runs; run_dir is relative to `results` (or absolute)."""
    out = []
    done = df[df["status"] == RunStatus.DONE]
    for (model, dataset), group in done.groupby(["model", "dataset"], sort=True):
        cm: Confusion | None = None
        missing = []
        for row in group.sort_values("iteration").itertuples():
            path = Path(results) / row.run_dir / "predictions.csv"
            try:
                classes, labels, preds = _read(path)
            except (OSError, ValueError, pd.errors.ParserError) as e:
                missing.append(f"iter {row.iteration}: {path.name} unreadable ({type(e).__name__}: {e})"
                               if path.exists() else f"iter {row.iteration}: no {path.name}")
                continue
            if cm is None:
                cm = Confusion(model, dataset, classes, np.zeros((len(classes), len(classes)), dtype=np.int64))
            elif classes != cm.class_names:
                missing.append(f"iter {row.iteration}: classes {classes} differ from {cm.class_names}")
                continue
            k = len(classes)
            ok = (labels >= 0) & (labels < k) & (preds >= 0) & (preds < k)
            cm.counts += np.bincount(labels[ok] * k + preds[ok], minlength=k * k).reshape(k, k)
            cm.iterations.append(int(row.iteration))
        if cm is None:
            cm = Confusion(model, dataset, [], np.zeros((0, 0), dtype=np.int64))
        cm.missing = missing
        out.append(cm)
    return out
