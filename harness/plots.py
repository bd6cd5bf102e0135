"""The report's figures (PNG, Agg backend, no display): box plots with chance lines, pairwise significance
matrices, the critical-difference diagram, confusion matrices and ours − reference.

Each function draws from data already computed elsewhere (stats, significance, confusion, reference)
and writes one file atomically, so a half-written PNG is never linked from a page.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scikit_posthocs as sp
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from common.io import atomic_path
from common.status import RunStatus
from harness.confusion import Confusion
from harness.names import DATASET_ORDER, METRIC_NAMES, MODEL_ORDER, dataset_name, model_name, ordered
from harness.significance import ALPHA, Ranks


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path


def plot_metric(df: pd.DataFrame, metric: str, path: Path, chance: dict[str, float] | None = None) -> Path:
    """Box per (dataset, model) with every iteration's value as a point, grouped by dataset.

    `chance` (dataset -> value) draws the majority-class level of each dataset as a dashed line, so a
    box near it is read as "did not learn".
    """
    datasets = ordered(df["dataset"], DATASET_ORDER)
    models = ordered(df["model"], MODEL_ORDER)
    done = df[(df["status"] == RunStatus.DONE) & df[metric].notna()]
    width = 0.8 / len(models)
    fig = _figure(max(6.0, 1.0 + len(datasets) * (0.6 + 0.35 * len(models))), 4.5)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)  # fixed jitter: the same summary gives the same picture
    colors = [f"C{i % 10}" for i in range(len(models))]
    for j, (model, color) in enumerate(zip(models, colors)):
        for i, dataset in enumerate(datasets):
            values = done.loc[(done["dataset"] == dataset) & (done["model"] == model), metric].to_numpy(float)
            x = i - 0.4 + width * (j + 0.5)
            n_total = int(((df["dataset"] == dataset) & (df["model"] == model)).sum())
            if len(values) < n_total:  # failed runs have no point; say so instead of leaving a silent gap
                ax.text(x, 0.02, f"n={len(values)}/{n_total}", transform=ax.get_xaxis_transform(),
                        ha="center", fontsize=7, color=color)
            if len(values):
                ax.boxplot(values, positions=[x], widths=width * 0.8, manage_ticks=False, showfliers=False,
                           medianprops={"color": color}, boxprops={"color": color},
                           whiskerprops={"color": color}, capprops={"color": color})
                ax.scatter(x + rng.uniform(-width * 0.2, width * 0.2, len(values)), values, s=12,
                           color=color, alpha=0.8, zorder=3)
        ax.scatter([], [], color=color, label=model_name(model))
    labelled = False
    for i, dataset in enumerate(datasets):
        if dataset in (chance or {}):
            ax.hlines(chance[dataset], i - 0.45, i + 0.45, colors="0.4", linestyles="--", linewidth=1,
                      label=None if labelled else "majority-class predictor")
            labelled = True
    ax.set_xticks(range(len(datasets)), [dataset_name(d) for d in datasets])
    ax.set_xlim(-0.5, len(datasets) - 0.5)
    ax.set_ylabel(METRIC_NAMES.get(metric, metric))
    ax.set_title(f"{METRIC_NAMES.get(metric, metric)} per iteration (successful runs only)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", ncols=min(4, len(models) + 1), loc="best")
    return _save(fig, path)


def plot_pairwise(table: pd.DataFrame, dataset: str, metric: str, models: list[str], path: Path,
                  alpha: float = ALPHA) -> Path:
    """Matrix of mean differences row − column with Holm-adjusted p; significant cells outlined and starred."""
    k = len(models)
    diff = np.full((k, k), np.nan)
    p = np.full((k, k), np.nan)
    index = {m: i for i, m in enumerate(models)}
    for row in table[(table["dataset"] == dataset) & (table["metric"] == metric)].itertuples():
        i, j = index[row.model_a], index[row.model_b]
        diff[i, j], diff[j, i] = row.mean_diff, -row.mean_diff
        p[i, j] = p[j, i] = row.p_holm
    size = 1.2 + 0.9 * k
    fig = _figure(size + 1.2, size)
    ax = fig.add_subplot()
    limit = float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 1.0
    image = ax.imshow(diff, cmap="RdBu", vmin=-limit or -1, vmax=limit or 1)
    for i in range(k):
        for j in range(k):
            if i == j:
                continue
            if np.isnan(diff[i, j]):
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="0.4")
                continue
            if np.isnan(p[i, j]):
                text = f"{diff[i, j]:+.3f}\nn<2"
            else:
                star = "*" if p[i, j] < alpha else ""
                text = f"{diff[i, j]:+.3f}{star}\n" + ("p<0.001" if p[i, j] < 0.001 else f"p={p[i, j]:.3f}")
            dark = limit > 0 and abs(diff[i, j]) > 0.6 * limit
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    names = [model_name(m) for m in models]
    ax.set_xticks(range(k), names, rotation=30, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_title(f"{dataset_name(dataset)}: row − column, {METRIC_NAMES.get(metric, metric)}\n"
                 f"* Holm p < {alpha} (corrected resampled t-test)", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _save(fig, path)


def plot_cd(ranks: Ranks, path: Path) -> Path:
    """Critical-difference diagram: average ranks, models joined when Nemenyi finds no difference."""
    fig = _figure(7.0, 0.6 + 0.35 * len(ranks.table))
    ax = fig.add_subplot()
    average = pd.Series(ranks.table["average_rank"].to_numpy(float), index=[model_name(m) for m in ranks.table["model"]])
    sig = ranks.nemenyi.rename(index=model_name, columns=model_name)
    sp.critical_difference_diagram(average, sig, ax=ax, alpha=ALPHA, label_fmt_left="{label} ({rank:.2f})",
                                   label_fmt_right="({rank:.2f}) {label}")
    ax.set_title(f"{METRIC_NAMES.get(ranks.metric, ranks.metric)}: average rank over {len(ranks.datasets)} datasets "
                 f"(1 = best); Friedman p = {ranks.p_value:.3g}; Nemenyi CD = {ranks.critical_difference:.2f} "
                 f"(α = {ALPHA})", fontsize=8)
    return _save(fig, path)


def plot_confusion(cm: Confusion, path: Path) -> Path:
    """Row-normalised confusion matrix with the per-class recall on the diagonal."""
    k = len(cm.class_names)
    size = 1.5 + 0.55 * k
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot()
    norm = cm.normalised
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.6 else "black")
    ax.set_xticks(range(k), cm.class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), cm.class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{model_name(cm.model)} on {dataset_name(cm.dataset)}: {len(cm.iterations)} iteration(s), "
                 f"{int(cm.counts.sum())} test images", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _save(fig, path)


def plot_reference(comparison: pd.DataFrame, metric: str, path: Path) -> Path:
    """ours − reference per cell (rows datasets, columns models); ‡ marks cells with footnotes."""
    datasets = ordered(comparison["dataset"], DATASET_ORDER)
    models = ordered(comparison["model"], MODEL_ORDER)
    diff = np.full((len(datasets), len(models)), np.nan)
    fig = _figure(1.5 + 1.0 * len(models), 1.2 + 0.6 * len(datasets))
    ax = fig.add_subplot()
    for row in comparison.itertuples():
        diff[datasets.index(row.dataset), models.index(row.model)] = row.diff
    limit = float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 0.0
    image = ax.imshow(diff, cmap="RdBu", vmin=-(limit or 0.01), vmax=limit or 0.01)
    for row in comparison.itertuples():
        i, j = datasets.index(row.dataset), models.index(row.model)
        dark = limit > 0 and abs(row.diff) > 0.6 * limit
        ax.text(j, i, f"{row.diff:+.3f}{'‡' if row.notes else ''}", ha="center", va="center", fontsize=8,
                color="white" if dark else "black")
    ax.set_xticks(range(len(models)), [model_name(m) for m in models], rotation=30, ha="right")
    ax.set_yticks(range(len(datasets)), [dataset_name(d) for d in datasets])
    ax.set_title(f"{METRIC_NAMES.get(metric, metric)}: ours − reference\n‡ the reference's recipe or folds differ "
                 "(see the notes)", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _save(fig, path)
