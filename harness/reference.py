"""Our numbers next to the reference suite's published table, cell by cell, with the reasons they may differ.

The reference table and the per-cell notes are data files in harness/reference/ (see its README for
their source). Only runs of the `full` profile are compared: the quick profile is a CPU plumbing check.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.stats import aggregate

REFERENCE_DIR = Path(__file__).parent / "reference"
REFERENCE_CSV = REFERENCE_DIR / "reference_results.csv"
NOTES_CSV = REFERENCE_DIR / "reference_notes.csv"
COMPARED_PROFILE = "full"
COMPARISON_COLUMNS = ("metric", "dataset", "model", "ours_mean", "ours_std", "ours_n", "ddof", "ref_mean", "ref_std",
                      "ref_ddof", "diff", "notes")


def load_reference(path: Path = REFERENCE_CSV) -> pd.DataFrame:
    """The reference table: metric, dataset, model, mean, std, n, ddof (one row per published cell)."""
    df = pd.read_csv(path, dtype={"metric": str, "dataset": str, "model": str}, keep_default_na=False)
    expected = ["metric", "dataset", "model", "mean", "std", "n", "ddof"]
    if list(df.columns) != expected:
        raise ValueError(f"{path}: columns {list(df.columns)}; expected {expected}")
    return df


def load_notes(path: Path = NOTES_CSV) -> pd.DataFrame:
    """Per-cell notes: model, dataset (`*` = all of the model's datasets), code, text."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    expected = ["model", "dataset", "code", "text"]
    if list(df.columns) != expected:
        raise ValueError(f"{path}: columns {list(df.columns)}; expected {expected}")
    return df


def cell_notes(notes: pd.DataFrame, model: str, dataset: str) -> list[str]:
    """The note texts that apply to one cell, model-wide ones (`*`) last."""
    own = notes[(notes["model"] == model) & (notes["dataset"] == dataset)]
    wide = notes[(notes["model"] == model) & (notes["dataset"] == "*")]
    return list(own["text"]) + list(wide["text"])


def compare(df: pd.DataFrame, metric: str, ddof: int = 1, reference: pd.DataFrame | None = None,
            notes: pd.DataFrame | None = None) -> pd.DataFrame:
    """ours − reference for every cell of the reference table that has a `full`-profile result here.

    Our std keeps the report's `ddof` (shown in the `ddof` column); the reference's is ddof 0, as
    published. Cells without a successful run of ours are left out.
    """
    reference = load_reference() if reference is None else reference
    notes = load_notes() if notes is None else notes
    full = df[df["profile"] == COMPARED_PROFILE] if "profile" in df.columns else df.iloc[0:0]
    rows = []
    if not full.empty:
        ours = aggregate(full, metric, ddof)
        ref = reference[reference["metric"] == metric].set_index(["dataset", "model"])
        for cell in ours.itertuples():
            if (cell.dataset, cell.model) not in ref.index or cell.n_done == 0:
                continue
            r = ref.loc[(cell.dataset, cell.model)]
            rows.append({"metric": metric, "dataset": cell.dataset, "model": cell.model, "ours_mean": cell.mean,
                         "ours_std": cell.std, "ours_n": cell.n_done, "ddof": ddof, "ref_mean": float(r["mean"]),
                         "ref_std": float(r["std"]), "ref_ddof": int(r["ddof"]),
                         "diff": float(np.round(cell.mean - float(r["mean"]), 6)),
                         "notes": cell_notes(notes, cell.model, cell.dataset)})
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
