"""Metrics computed centrally from a run's predictions (torch-free; used by the harness)."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score


def compute(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict[str, object]:
    """accuracy, balanced accuracy (mean recall over classes present in y_true), macro-F1, confusion matrix."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    labels = list(range(num_classes))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=sorted(set(y_true.tolist())), average="macro", zero_division=0)),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def majority_rate(y_true: np.ndarray) -> float:
    """Accuracy of always predicting the most frequent class of y_true (the floor a model must beat)."""
    counts = np.bincount(np.asarray(y_true, dtype=np.int64))
    return float(counts.max() / counts.sum()) if counts.sum() else float("nan")
