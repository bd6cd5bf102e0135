"""The statistics of one protocol's results, computed once and written as CSV and PNG beside its tables.

`analyse` decides every number (pairwise tests, ranks, confusion matrices, the reference comparison);
`write_analysis` writes them into results/tables/<protocol>/, and the report page (page.py) shows
the same objects, so a number on the page and in a CSV cannot disagree. Torch-free.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from common.io import atomic_path
from harness.confusion import Confusion, confusions
from harness.names import DATASET_ORDER, MODEL_ORDER, ordered
from harness.plots import plot_cd, plot_confusion, plot_pairwise, plot_reference
from harness.reference import compare
from harness.significance import PAIRWISE_COLUMNS, RANK_COLUMNS, Ranks, friedman_ranks, pairwise


@dataclass
class Analysis:
    metrics: list[str]
    models: list[str]
    datasets: list[str]
    pairwise: pd.DataFrame                                 # PAIRWISE_COLUMNS, every metric
    refused: list[str] = field(default_factory=list)        # pairs not compared (different folds)
    ranks: dict[str, Ranks] = field(default_factory=dict)   # metric -> ranks, Friedman, Nemenyi
    confusions: list[Confusion] = field(default_factory=list)
    comparison: pd.DataFrame = field(default_factory=pd.DataFrame)  # ours − reference, every metric
    confusion_note: str = ""                                # why there are no confusion matrices


def slug(name: str) -> str:
    """A file-name-safe form of a model or dataset name (names are arbitrary text in external models)."""
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", name)
    return safe if safe == name else f"{safe}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def pairwise_png(metric: str, dataset: str) -> str:
    return f"pairwise_{metric}_{slug(dataset)}.png"


def cd_png(metric: str) -> str:
    return f"cd_{metric}.png"


def confusion_stem(cm: Confusion) -> str:
    return f"confusion/{slug(cm.model)}__{slug(cm.dataset)}"


def reference_png(metric: str) -> str:
    return f"reference_{metric}.png"


def analyse(df: pd.DataFrame, metrics: Sequence[str], results: Path | None = None) -> Analysis:
    """All statistics of `df` (one protocol's rows of summary.csv); confusion matrices need `results`."""
    models = ordered(df["model"], MODEL_ORDER)
    datasets = ordered(df["dataset"], DATASET_ORDER)
    tables, refused = [], []
    for metric in metrics:
        table, msgs = pairwise(df, metric, models)
        tables.append(table)
        refused += msgs
    a = Analysis(list(metrics), models, datasets, pd.concat(tables, ignore_index=True) if tables else
                 pd.DataFrame(columns=list(PAIRWISE_COLUMNS)), refused)
    a.ranks = {metric: friedman_ranks(df, metric) for metric in metrics}
    a.comparison = pd.concat([compare(df, metric) for metric in metrics], ignore_index=True)
    if results is None:
        a.confusion_note = "no results folder given: the runs' predictions.csv were not read"
    else:
        a.confusions = confusions(df, Path(results))
    return a


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def write_analysis(a: Analysis, out_dir: Path) -> list[Path]:
    """pairwise.csv, ranks.csv, reference_comparison.csv and the figures into out_dir; returns the paths."""
    out_dir = Path(out_dir)
    written = [_csv(a.pairwise, out_dir / "pairwise.csv")]
    ranks = [r.table for r in a.ranks.values() if not r.table.empty]
    written.append(_csv(pd.concat(ranks, ignore_index=True) if ranks else pd.DataFrame(columns=list(RANK_COLUMNS)),
                        out_dir / "ranks.csv"))
    for metric in a.metrics:
        for dataset in a.datasets:
            if ((a.pairwise["dataset"] == dataset) & (a.pairwise["metric"] == metric)).any():
                present = [m for m in a.models if ((a.pairwise["dataset"] == dataset)
                                                   & ((a.pairwise["model_a"] == m) | (a.pairwise["model_b"] == m))).any()]
                written.append(plot_pairwise(a.pairwise, dataset, metric, present, out_dir / pairwise_png(metric, dataset)))
        if not a.ranks[metric].table.empty:
            written.append(plot_cd(a.ranks[metric], out_dir / cd_png(metric)))
        compared = a.comparison[a.comparison["metric"] == metric] if not a.comparison.empty else a.comparison
        if not compared.empty:
            written.append(plot_reference(compared, metric, out_dir / reference_png(metric)))
    if not a.comparison.empty:
        flat = a.comparison.assign(notes=a.comparison["notes"].map(" | ".join))
        written.append(_csv(flat, out_dir / "reference_comparison.csv"))
    for cm in a.confusions:
        if cm.iterations:
            stem = out_dir / confusion_stem(cm)
            written.append(_csv(cm.table(), stem.with_suffix(".csv")))
            written.append(plot_confusion(cm, stem.with_suffix(".png")))
    return written
