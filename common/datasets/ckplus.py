"""CK+, 981 frames (the last 3 frames of each posed sequence), 7 classes.

Label file `ckplus_labels.csv`: a header row with columns `image_name` and `label`
(other columns are ignored), one row per image, e.g. `image_000000.png,0`. Labels are
integers 0..6 in the alphabetical order of the Kaggle CK+ class folders (the reference
suite's encoding; names are not accepted): 0 anger, 1 contempt, 2 disgust, 3 fear,
4 happy, 5 sadness, 6 surprise. There is no neutral class; contempt is one.

Image: `ckplus_images/<image_name>` (greyscale frames are returned as RGB).
Sample id: the image name. Frames of one sequence are near-duplicates of one subject;
the file carries no subject id, so the default protocol cannot group them.
"""
from __future__ import annotations

from pathlib import Path

from common.datasets.base import Pool, load_csv_dataset

CLASS_NAMES = ["anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"]
FOLDER = "CKPlus"
SOURCE = "https://www.jeffcohn.net/Resources/ or https://www.kaggle.com/datasets/shuvoalok/ck-dataset (the last 3 frames of each sequence)"
LABEL_FILE = "ckplus_labels.csv"
IMAGE_FOLDER = "ckplus_images"
LAYOUT = """\
CKPlus/
    ckplus_labels.csv               # header "image_name,label"; label 0..6
    ckplus_images/
        image_000000.png
        image_000001.png
        ...
"""


def load(dataset_dir: Path, exclude_missing: bool = False) -> Pool:
    return load_csv_dataset(name="ckplus", class_names=CLASS_NAMES, dataset_dir=dataset_dir,
                            layout=LAYOUT, label_file=LABEL_FILE, name_col="image_name",
                            label_col="label", image_folder=IMAGE_FOLDER,
                            exclude_missing=exclude_missing)
