"""The corrected resampled t-test, Holm, refusals and Friedman ranks against numbers worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sstats

from harness.significance import PAIRWISE_COLUMNS, corrected_ttest, friedman_ranks, holm, not_worse_than_best, pairwise

# d = a - b over k = 5 iterations, n_train = 600 (the fitted 60 %), n_test = 200:
#   mean(d) = 0.02;  var(d, ddof 1) = (0 + 1e-4 + 1e-4 + 4e-4 + 4e-4) / 4 = 2.5e-4
#   corrected variance of the mean = (1/k + n_test/n_train) * var = (1/5 + 1/3) * 2.5e-4 = 8/15 * 2.5e-4
#   t = 0.02 / sqrt(8/15 * 2.5e-4) = 0.02 / 0.011547005 = sqrt(3) = 1.7320508,  df = k - 1 = 4
#   p = 2 * (1 - F_4(t)), with F_4(t) = 1/2 + 3/4 * t/sqrt(4 + t^2) * (1 - t^2 / (3 (4 + t^2)))
#     = 1/2 + 3/4 * sqrt(3/7) * 6/7 = 0.92084879  ->  p = 0.15830242
#   95% CI = 0.02 -+ t_{0.975,4} * 0.011547005 = 0.02 -+ 2.7764451 * 0.011547005 = [-0.0120596, 0.0520596]
D = [0.02, 0.01, 0.03, 0.00, 0.04]
N_TRAIN, N_TEST = 600, 200
P_HAND = 2 * (1 - (0.5 + 0.75 * math.sqrt(3 / 7) * 6 / 7))


def test_corrected_ttest_hand_computed() -> None:
    r = corrected_ttest(D, N_TRAIN, N_TEST)
    assert r["n"] == 5
    assert r["mean_diff"] == pytest.approx(0.02, abs=1e-12)
    assert r["t"] == pytest.approx(math.sqrt(3), rel=1e-9)
    assert P_HAND == pytest.approx(0.15830242, abs=1e-8)
    assert r["p_value"] == pytest.approx(P_HAND, rel=1e-9)
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(-0.0120596, abs=1e-7), pytest.approx(0.0520596, abs=1e-7))
    # Why the correction matters: the plain paired t-test calls the same differences significant.
    assert sstats.ttest_1samp(D, 0).pvalue < 0.05 < r["p_value"]


def test_corrected_ttest_degenerate_inputs() -> None:
    one = corrected_ttest([0.03], N_TRAIN, N_TEST)
    assert one["n"] == 1 and one["mean_diff"] == pytest.approx(0.03)
    assert all(math.isnan(one[k]) for k in ("t", "p_value", "ci_low", "ci_high"))
    same = corrected_ttest([0.0, 0.0, 0.0], N_TRAIN, N_TEST)
    assert (same["t"], same["p_value"]) == (0.0, 1.0)
    shifted = corrected_ttest([0.01, 0.01, 0.01], N_TRAIN, N_TEST)
    assert shifted["t"] == math.inf and shifted["p_value"] == 0.0
    with pytest.raises(ValueError, match="n_train=0"):
        corrected_ttest(D, 0, N_TEST)


def test_holm_step_down_hand_computed() -> None:
    # sorted p: 0.01 * 3 = 0.03; 0.03 * 2 = 0.06; 0.04 * 1 = 0.04 -> raised to the running max 0.06.
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    adjusted = holm([0.02, float("nan"), 0.04])  # an untestable pair is not part of the family
    assert adjusted[0] == pytest.approx(0.04) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)


def _summary(values: dict[str, list[float | None]], hashes: dict[str, dict[int, str]] | None = None,
             dataset: str = "rafdb") -> pd.DataFrame:
    """The rows read_summary would return: one per (model, iteration); None = a failed run."""
    rows = []
    for model, accs in values.items():
        for k, acc in enumerate(accs):
            rows.append({"model": model, "dataset": dataset, "protocol": "p", "iteration": k,
                         "status": "done" if acc is not None else "failed",
                         "accuracy": np.nan if acc is None else acc,
                         "split_hash": (hashes or {}).get(model, {}).get(k, f"{dataset}-{k}"),
                         "n_train": str(N_TRAIN), "n_test": str(N_TEST), "pretrained": "none",
                         "error_class": "" if acc is not None else "RuntimeError"})
    return pd.DataFrame(rows)


def test_pairwise_holm_n_below_two_and_different_folds() -> None:
    b = [0.80] * 5
    df = _summary({
        "a": [0.80 + d for d in D],                  # a - b = D: t = sqrt(3), p = P_HAND
        "b": b,
        "c": list(b),                                # b - c = 0 everywhere: t = 0, p = 1
        "d": [0.70, None, None, None, None],         # one common iteration with everyone: n = 1, no test
        "e": [0.81] * 5,                             # iteration 2 on another fold: refused against a, b, c
    }, hashes={"e": {2: "other-fold"}})
    table, refused = pairwise(df, "accuracy", ["a", "b", "c", "d", "e"])
    assert list(table.columns) == list(PAIRWISE_COLUMNS)
    by_pair = {(r.model_a, r.model_b): r for r in table.itertuples()}
    assert set(by_pair) == {("a", "b"), ("a", "c"), ("b", "c"), ("a", "d"), ("b", "d"), ("c", "d"), ("d", "e")}
    ab, ac, bc = by_pair[("a", "b")], by_pair[("a", "c")], by_pair[("b", "c")]
    assert (ab.n, ab.p_value) == (5, pytest.approx(P_HAND, rel=1e-9))
    assert ac.p_value == pytest.approx(P_HAND, rel=1e-9) and bc.p_value == 1.0
    # Holm over the 3 testable pairs: P_HAND * 3 = 0.474907, max(P_HAND * 2, 0.474907) = 0.474907, 1.0 * 1 = 1.0.
    assert ab.p_holm == pytest.approx(3 * P_HAND, rel=1e-9) and ac.p_holm == pytest.approx(3 * P_HAND, rel=1e-9)
    assert bc.p_holm == 1.0
    ad = by_pair[("a", "d")]
    assert ad.n == 1 and ad.mean_diff == pytest.approx(0.80 + D[0] - 0.70)
    assert math.isnan(ad.t) and math.isnan(ad.p_value) and math.isnan(ad.p_holm)
    assert len(refused) == 3 and all("iteration(s) 2 ran on different or unrecorded folds" in m for m in refused)
    assert refused[0].startswith("a vs e on rafdb (accuracy)")


def test_not_worse_than_best_uses_holm() -> None:
    df = _summary({"a": [0.80 + d for d in D], "b": [0.80] * 5, "c": [0.60, 0.61, 0.59, 0.60, 0.62]})
    table, _ = pairwise(df, "accuracy", ["a", "b", "c"])
    # a is best; a - b is not significant after correction (p_holm >= 0.05); a - c (0.2 apart, tiny spread) is.
    assert not_worse_than_best(df, table, "accuracy") == {"rafdb": {"a", "b"}}
    alone = _summary({"a": [0.8, 0.9]})
    assert not_worse_than_best(alone, pairwise(alone, "accuracy")[0], "accuracy") == {}  # nothing to compare with


def test_friedman_ranks_hand_computed() -> None:
    # 3 models ranked 1, 2, 3 on both datasets: chi2 = 12 N / (k (k+1)) * sum R^2 - 3 N (k+1)
    #   = 12*2/(3*4) * (1 + 4 + 9) - 3*2*4 = 4.0;  p = exp(-chi2/2) (chi2, 2 df) = exp(-2) = 0.135335
    # Nemenyi CD = q_0.05(k=3) * sqrt(k (k+1) / (6 N)) = 2.343 * 1 = 2.343 (Demsar 2006, table 5)
    df = pd.concat([_summary({"a": [0.9, 0.91], "b": [0.8, 0.82], "c": [0.7, 0.7]}, dataset=ds)
                    for ds in ("rafdb", "sfew")], ignore_index=True)
    r = friedman_ranks(df, "accuracy")
    assert r.table[["model", "average_rank", "n_datasets"]].values.tolist() == [["a", 1.0, 2], ["b", 2.0, 2],
                                                                               ["c", 3.0, 2]]
    assert r.statistic == pytest.approx(4.0) and r.p_value == pytest.approx(math.exp(-2))
    assert r.critical_difference == pytest.approx(2.343, abs=1e-3)
    assert r.nemenyi.shape == (3, 3) and r.datasets == ["rafdb", "sfew"]


def test_friedman_needs_complete_datasets_and_three_models() -> None:
    two_models = pd.concat([_summary({"a": [0.9], "b": [0.8]}, dataset=ds) for ds in ("rafdb", "sfew")])
    r = friedman_ranks(two_models, "accuracy")
    assert r.table.empty and "here 2 model(s) on 2 complete dataset(s)" in r.reason
    gap = pd.concat([_summary({"a": [0.9], "b": [0.8], "c": [0.7]}, dataset="rafdb"),
                     _summary({"a": [0.9], "b": [0.8], "c": [None]}, dataset="sfew")])
    r = friedman_ranks(gap, "accuracy")
    assert r.table.empty and r.reason.startswith("left out (a model has no result there): sfew.")
