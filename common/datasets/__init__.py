"""Dataset pools for the six reference layouts plus the generated `synthetic` one.

Torch-free (numpy, pandas, PIL): the harness imports this on machines without torch.

    pool = load_pool("rafdb", root="/data")      # root/raf-basic/... or root itself
    pool.ids, pool.labels, pool.image(0), pool.class_counts()

Dataset root: the `root` argument, else $FER_DATA_ROOT, else data/ in the repository.
The dataset folder is root/<reference folder> (raf-basic, FER2013, FERPlus, ExpW, SFEW2.0,
CKPlus) or root itself when it directly holds the dataset's label file. Each module
(rafdb.py, fer2013.py, ...) documents its label-file format and label encoding.

Class names use one vocabulary across datasets (anger, contempt, disgust, fear, happiness,
neutral, sadness, surprise), in each dataset's own label order.
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType

from common.datasets import ckplus, expw, fer2013, ferplus, rafdb, sfew
from common.datasets import synthetic as synthetic_data
from common.datasets.base import DatasetLayoutError, Pool, check_label_rows, find_dataset_dir
from common.errors import ConfigError, UnknownNameError

__all__ = ["DISPLAY_NAMES", "DatasetLayoutError", "Pool", "class_names", "dataset_dir", "dataset_names",
           "load_pool"]

_MODULES: dict[str, ModuleType] = {
    "rafdb": rafdb, "fer2013": fer2013, "ferplus": ferplus, "expw": expw,
    "sfew": sfew, "ckplus": ckplus, "synthetic": synthetic_data,
}
# How tables, plots and pages name each dataset (the papers' spelling); the order above is the papers'.
DISPLAY_NAMES = {"rafdb": "RAF-DB", "fer2013": "FER2013", "ferplus": "FERPlus", "expw": "ExpW",
                 "sfew": "SFEW2.0", "ckplus": "CK+", "synthetic": "synthetic"}


def dataset_names() -> list[str]:
    return list(_MODULES)


def _module(name: str) -> ModuleType:
    try:
        return _MODULES[name]
    except KeyError:
        raise UnknownNameError(f"unknown dataset {name!r}; valid datasets: {', '.join(_MODULES)}") from None


def class_names(name: str) -> list[str]:
    """Canonical class names of `name`, index = label."""
    return list(_module(name).CLASS_NAMES)


def dataset_dir(name: str, root: str | Path | None = None) -> Path:
    """The folder holding dataset `name` under `root` (see find_dataset_dir). If it is not there, the
    DatasetLayoutError also says where the dataset is obtained and how raw downloads are aligned.
    A label file without a sample row is refused here too: the plan (through the fingerprint) and
    load_pool both come this way, so it is named before any run starts and again at load time."""
    module = _module(name)
    try:
        folder = find_dataset_dir(root, module.FOLDER, module.LABEL_FILE, name, module.LAYOUT)
    except DatasetLayoutError as e:
        raise DatasetLayoutError(f"{e}\nGet {name} from {module.SOURCE}.\nRaw (unaligned) face images: "
                                 f"`make align DATASET={name} SRC=<download> DST=<dataset folder>` "
                                 "(preprocess/README.md).") from None
    # Every CSV label file of the suite has a header row; the .txt/.lst ones have none.
    header_rows = 1 if module.LABEL_FILE.endswith(".csv") else 0
    check_label_rows(folder / module.LABEL_FILE, header_rows, name, folder, module.LAYOUT)
    return folder


def load_pool(name: str, root: str | Path | None = None, *, exclude_missing: bool = False,
              synthetic: dict | None = None, expw_layout: str = "per-face") -> Pool:
    """All samples of dataset `name` in label-file order, every image checked.

    Missing or unreadable images raise DatasetLayoutError (naming them and showing the
    expected layout) unless exclude_missing=True, which drops them and lists them in
    pool.excluded. `synthetic` holds the generator parameters (n, size, seed, label_noise)
    and is only valid for name="synthetic", whose data lives in the cache, not under root.
    `expw_layout` (config data.expw_layout: per-face | reference) applies to ExpW only, whose
    module documents both; the other datasets have one layout and ignore it.
    """
    module = _module(name)
    if module is synthetic_data:
        return synthetic_data.load(synthetic, exclude_missing)
    if synthetic:
        raise ConfigError(f"synthetic parameters were given for dataset {name!r}; "
                         "they apply only to 'synthetic'")
    folder = dataset_dir(name, root)
    if module is expw:
        return expw.load(folder, exclude_missing, layout=expw_layout)
    return module.load(folder, exclude_missing)

