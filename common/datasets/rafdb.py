"""RAF-DB (basic), 15,339 aligned faces, 7 classes.

Label file `EmoLabel/list_patition_label.txt`: no header, one line per image,
`<file name> <label>` separated by one space, e.g. `train_00001.jpg 5`; labels 1..7
(RAF-DB's own encoding) are stored here as 0..6. Official train_* lines come before
test_* lines; the pool keeps that order (the protocol merges both).

Image of `x.jpg`: `Image/aligned/x_aligned.jpg`, where x is the name up to its first dot
(the reference suite's rule). Sample id: the file name from the label file.

Label order (RAF-DB 1..7 -> index 0..6): surprise, fear, disgust, happiness, sadness,
anger, neutral.

The `synthetic` dataset is written in this layout and read by this loader.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common.datasets.base import (
    Pool,
    check_labels,
    check_names,
    check_unique,
    finish_pool,
    layout_error,
)

CLASS_NAMES = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
FOLDER = "raf-basic"
SOURCE = "http://www.whdeng.cn/RAF/model1.html#dataset (request access from the authors; the aligned images)"
LABEL_FILE = "EmoLabel/list_patition_label.txt"
IMAGE_FOLDER = "Image/aligned"
LAYOUT = """\
raf-basic/
    EmoLabel/
        list_patition_label.txt     # "<name>.jpg <label 1..7>" per line, no header
    Image/aligned/
        train_00001_aligned.jpg
        test_0001_aligned.jpg
        ...
"""


def image_filename(name: str) -> str:
    """`train_00001.jpg` -> `train_00001_aligned.jpg` (name up to the first dot, as upstream)."""
    return name.split(".")[0] + "_aligned.jpg"


def load(dataset_dir: Path, exclude_missing: bool = False, name: str = "rafdb",
         layout: str = LAYOUT) -> Pool:
    label_file = dataset_dir / LABEL_FILE
    names: list[str] = []
    raw: list[int] = []
    lines: list[int] = []
    with open(label_file, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue  # a trailing blank line is not a sample
            try:
                if len(parts) != 2:
                    raise ValueError(f"expected 2 fields, got {len(parts)}")
                label = int(parts[1])
            except ValueError as exc:
                raise layout_error(f"{label_file}: line {lineno}: expected '<name> <label 1..7>', "
                                   f"got {line.rstrip()!r} ({exc})", name, dataset_dir, layout) from None
            names.append(parts[0])
            raw.append(label)
            lines.append(lineno)
    raw_labels = np.asarray(raw, dtype=np.int64)
    encoding = ", ".join(f"{i + 1}={c}" for i, c in enumerate(CLASS_NAMES))
    check_labels(raw_labels, 1, len(CLASS_NAMES), label_file, dataset_dir, name, layout, encoding, lines)
    check_unique(names, label_file, dataset_dir, name, layout, lines)
    check_names(names, label_file, lines, name, dataset_dir, layout)
    labels = raw_labels - 1
    image_dir = dataset_dir / IMAGE_FOLDER
    paths = [str(image_dir / image_filename(n)) for n in names]
    return finish_pool(name, CLASS_NAMES, dataset_dir, layout, names, labels, paths, image_dir,
                       exclude_missing)
