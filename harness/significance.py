"""Is model A better than model B on a dataset, and overall? Tests a reviewer accepts, from summary.csv alone.

Per dataset, pairs of models: the 10 iterations share most of their training images, so the
per-iteration differences are correlated and a plain paired t-test is far too optimistic. The
corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004) inflates the variance of
the mean difference by the train/test overlap:

    d_j = a_j - b_j on the k iterations both models finished (same folds, checked by split hash)
    t   = mean(d) / sqrt((1/k + n_test/n_train) * var(d)),   var with ddof 1,   df = k - 1
    CI  = mean(d) +- t_{0.975, k-1} * sqrt((1/k + n_test/n_train) * var(d))

n_train is the split the model was fitted on (the summary's `n_train`: 60 % of the pool, validation
excluded) and n_test the test fold (`n_test`). p-values are Holm-adjusted over the pairs of one
dataset and metric.

Across datasets (>= 2 datasets, >= 3 models): average ranks, the Friedman test and Nemenyi's
post-hoc test (scikit-posthocs), on the per-dataset means. Torch-free.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import scikit_posthocs as sp
from scipy import stats as sstats
from statsmodels.stats.multitest import multipletests

from common.status import RunStatus
from harness.stats import aggregate

ALPHA = 0.05
PAIRWISE_COLUMNS = ("dataset", "metric", "model_a", "model_b", "n", "mean_diff", "ci_low", "ci_high", "t",
                    "p_value", "p_holm")
RANK_COLUMNS = ("metric", "model", "average_rank", "n_datasets", "friedman_statistic", "friedman_p_value")


def corrected_ttest(diffs: Sequence[float], n_train: float, n_test: float, confidence: float = 0.95) -> dict[str, float]:
    """Corrected resampled t-test of the mean of `diffs` (see the module docstring).

    Fewer than 2 differences give no variance: t, CI and p are NaN. Identical differences (variance 0)
    give t = +-inf and p = 0, or t = 0 and p = 1 when they are all zero (no evidence either way).
    """
    d = np.asarray(diffs, dtype=float)
    k = len(d)
    nan = float("nan")
    out = {"n": k, "mean_diff": float(d.mean()) if k else nan, "ci_low": nan, "ci_high": nan, "t": nan, "p_value": nan}
    if k < 2:
        return out
    if not (n_train > 0 and n_test > 0):
        raise ValueError(f"n_train={n_train}, n_test={n_test}: the corrected t-test needs positive split sizes")
    se = float(np.sqrt((1.0 / k + n_test / n_train) * d.var(ddof=1)))
    mean = out["mean_diff"]
    if se == 0.0:
        t = 0.0 if mean == 0.0 else float(np.copysign(np.inf, mean))
    else:
        t = mean / se
    half = float(sstats.t.ppf(0.5 + confidence / 2, df=k - 1)) * se
    out.update(ci_low=mean - half, ci_high=mean + half, t=t, p_value=float(2 * sstats.t.sf(abs(t), df=k - 1)))
    return out


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (statsmodels); NaN entries (untestable pairs) stay NaN."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(len(p), np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def _done(df: pd.DataFrame, dataset: str, model: str, metric: str) -> pd.DataFrame:
    rows = df[(df["dataset"] == dataset) & (df["model"] == model) & (df["status"] == RunStatus.DONE) & df[metric].notna()]
    return rows.drop_duplicates("iteration", keep="last").set_index("iteration").sort_index()


def _sizes(rows: pd.DataFrame, iterations: list[int]) -> tuple[float, float]:
    """n_train and n_test of the common iterations (the same for both models: same folds).

    With `data.exclude_missing` the sizes can differ slightly between iterations; the ratio enters the
    correction, so the mean sizes are used.
    """
    sizes = []
    for col in ("n_train", "n_test"):
        values = pd.to_numeric(rows.loc[iterations, col] if col in rows else pd.Series(dtype=float), errors="coerce")
        if values.isna().any() or len(values) == 0:
            raise ValueError(f"summary.csv has no `{col}` for some iterations; re-run `python -m harness collect`")
        sizes.append(float(values.mean()))
    return sizes[0], sizes[1]


def pairwise(df: pd.DataFrame, metric: str, models: Sequence[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Every pair of models of every dataset: corrected t-test of a - b and Holm over the dataset's pairs.

    Only iterations done for both models count (the `n` column). A pair whose common iterations ran on
    different folds (split hashes differ), or without split sizes in the summary, is refused: it has no
    row and a message says why.
    Returns (table with PAIRWISE_COLUMNS, refusal messages).
    """
    order = list(models) if models is not None else sorted(set(df["model"]))
    rows, refused = [], []
    for dataset in sorted(set(df["dataset"])):
        present = [m for m in order if ((df["dataset"] == dataset) & (df["model"] == m)).any()]
        block = []
        for a, b in itertools.combinations(present, 2):
            ra, rb = _done(df, dataset, a, metric), _done(df, dataset, b, metric)
            common = sorted(set(ra.index) & set(rb.index))
            differ = [it for it in common if not ra.at[it, "split_hash"] or ra.at[it, "split_hash"] != rb.at[it, "split_hash"]]
            if differ:
                refused.append(f"{a} vs {b} on {dataset} ({metric}): iteration(s) {', '.join(map(str, differ))} ran on "
                               f"different or unrecorded folds (split hashes differ), so the pair is not compared")
                continue
            diffs = (ra.loc[common, metric] - rb.loc[common, metric]).to_numpy(float)
            try:
                n_train, n_test = _sizes(ra, common) if len(common) >= 2 else (float("nan"), float("nan"))
            except ValueError as e:  # an old or hand-made summary: no test rather than no report
                refused.append(f"{a} vs {b} on {dataset} ({metric}): {e}")
                continue
            block.append({"dataset": dataset, "metric": metric, "model_a": a, "model_b": b,
                          **corrected_ttest(diffs, n_train, n_test)})
        for row, p in zip(block, holm([r["p_value"] for r in block])):
            row["p_holm"] = float(p)
        rows += block
    return pd.DataFrame(rows, columns=list(PAIRWISE_COLUMNS)), refused


def not_worse_than_best(df: pd.DataFrame, table: pd.DataFrame, metric: str, alpha: float = ALPHA) -> dict[str, set[str]]:
    """Per dataset, the models not significantly worse than the best mean (Holm-adjusted p >= alpha).

    The best model (highest mean; every tied one) is in its own set; a dataset with one model has no set.
    A model without a test against the
    best (fewer than 2 common iterations, or refused for different folds) is not in the set: nothing
    was shown about it.
    """
    agg = aggregate(df, metric).dropna(subset=["mean"])
    out: dict[str, set[str]] = {}
    for dataset, group in agg.groupby("dataset"):
        if len(group) < 2:  # a model alone in its row is compared with nothing
            continue
        top = group["mean"].max()
        best = set(group.loc[group["mean"] == top, "model"])
        keep = set(best)
        sub = table[(table["dataset"] == dataset) & (table["metric"] == metric)]
        for row in sub.itertuples():
            pair = {row.model_a, row.model_b}
            if len(pair & best) == 1 and not np.isnan(row.p_holm) and row.p_holm >= alpha:
                keep |= pair
        out[dataset] = keep
    return out


@dataclass
class Ranks:
    """Average ranks (1 = best) over the datasets where every model has a result, Friedman, Nemenyi."""
    metric: str
    table: pd.DataFrame                      # RANK_COLUMNS, best rank first; empty when not computed
    statistic: float = float("nan")
    p_value: float = float("nan")
    nemenyi: pd.DataFrame | None = None      # model x model p-values
    critical_difference: float = float("nan")
    datasets: list[str] = field(default_factory=list)
    reason: str = ""                         # why nothing was computed, or which datasets were left out


def friedman_ranks(df: pd.DataFrame, metric: str, alpha: float = ALPHA) -> Ranks:
    """Ranks of the per-dataset means; needs >= 2 datasets on which all of >= 3 models have a mean.

    Datasets where some model has no successful run are left out (the Friedman test needs complete
    blocks) and named in `reason`.
    """
    means = aggregate(df, metric).pivot(index="dataset", columns="model", values="mean")
    incomplete = sorted(means.index[means.isna().any(axis=1)])
    complete = means.dropna(axis=0, how="any")
    empty = Ranks(metric, pd.DataFrame(columns=list(RANK_COLUMNS)))
    note = f"left out (a model has no result there): {', '.join(incomplete)}. " if incomplete else ""
    if complete.shape[1] < 3 or complete.shape[0] < 2:
        empty.reason = (note + f"average ranks and the Friedman test need >= 3 models on >= 2 datasets; "
                        f"here {complete.shape[1]} model(s) on {complete.shape[0]} complete dataset(s)")
        return empty
    ranks = complete.rank(axis=1, ascending=False, method="average")
    average = ranks.mean(axis=0).sort_values()
    statistic, p_value = sstats.friedmanchisquare(*[complete[m].to_numpy(float) for m in complete.columns])
    k, n = complete.shape[1], complete.shape[0]
    q = float(sstats.studentized_range.ppf(1 - alpha, k, np.inf)) / np.sqrt(2)
    table = pd.DataFrame({"metric": metric, "model": average.index, "average_rank": average.to_numpy(),
                          "n_datasets": n, "friedman_statistic": float(statistic), "friedman_p_value": float(p_value)},
                         columns=list(RANK_COLUMNS))
    return Ranks(metric, table, float(statistic), float(p_value), sp.posthoc_nemenyi_friedman(complete),
                 q * float(np.sqrt(k * (k + 1) / (6.0 * n))), list(complete.index), note.strip())
