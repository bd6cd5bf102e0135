"""Display names and the fixed paper order of models and datasets, shared by every table, plot and page.

The names are data kept where the things are described: a model's under `meta: display_name` in its
config.yaml (common/meta.py, so a model kept outside the repository names itself the same way), a
dataset's in common/datasets (DISPLAY_NAMES, listed in the papers' order). Only the models' order is
kept here, because it is the order of the reference paper's tables, not a fact of any one model.
"""
from __future__ import annotations

from typing import Iterable

from common.config import model_dirs
from common.datasets import DISPLAY_NAMES, dataset_names
from common.meta import model_meta

MODEL_ORDER = ("poster", "posterpp", "dan", "ddamfn", "lnsunet", "adadf", "mfer", "gsdnet")
DATASET_ORDER = tuple(dataset_names())
METRIC_NAMES = {"accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy", "macro_f1": "Macro-F1"}


def ordered(present: Iterable[str], preferred: Iterable[str]) -> list[str]:
    """Known names in the fixed paper order, then any others alphabetically."""
    present = set(present)
    known = [name for name in preferred if name in present]
    return known + sorted(present - set(known))


def model_name(model: str) -> str:
    """The model's `meta: display_name`; a model without a folder (results kept after it was
    removed) is shown by its folder name."""
    return model_meta(model).display_name if model in model_dirs() else model


def dataset_name(dataset: str) -> str:
    return DISPLAY_NAMES.get(dataset, dataset)
