"""Display names and the fixed paper order of models and datasets, shared by every table, plot and page."""
from __future__ import annotations

from typing import Iterable

DATASET_NAMES = {"rafdb": "RAF-DB", "fer2013": "FER2013", "ferplus": "FERPlus", "expw": "ExpW",
                 "sfew": "SFEW2.0", "ckplus": "CK+", "synthetic": "synthetic"}
MODEL_NAMES = {"poster": "POSTER", "posterpp": "POSTER++", "dan": "DAN", "ddamfn": "DDAMFN",
               "lnsunet": "LNSU-Net", "adadf": "Ada-DF", "mfer": "MFER", "gsdnet": "GSDNet"}
METRIC_NAMES = {"accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy", "macro_f1": "Macro-F1"}


def ordered(present: Iterable[str], preferred: Iterable[str]) -> list[str]:
    """Known names in the fixed paper order, then any others alphabetically."""
    present = set(present)
    known = [name for name in preferred if name in present]
    return known + sorted(present - set(known))


def model_name(model: str) -> str:
    return MODEL_NAMES.get(model, model)


def dataset_name(dataset: str) -> str:
    return DATASET_NAMES.get(dataset, dataset)
