"""SFEW 2.0, 1,634 aligned faces from movie stills, 7 classes.

Label file `sfew_2.0_labels.csv`: a header row with columns `image_name` and `label`
(other columns are ignored), one row per image, e.g. `image_000000.png,3`. Labels are
integers 0..6 in the alphabetical order of SFEW's class folders (the reference suite's
encoding; names are not accepted): 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Neutral, 5 Sad,
6 Surprise, named here anger, disgust, fear, happiness, neutral, sadness, surprise.

Image: `sfew2.0_images/<image_name>`. Sample id: the image name.
"""
from __future__ import annotations

from pathlib import Path

from common.datasets.base import Pool, load_csv_dataset

CLASS_NAMES = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]
FOLDER = "SFEW2.0"
SOURCE = "https://users.cecs.anu.edu.au/~few_group/AFEW.html (request from the authors; the _Aligned_Face set)"
LABEL_FILE = "sfew_2.0_labels.csv"
IMAGE_FOLDER = "sfew2.0_images"
LAYOUT = """\
SFEW2.0/
    sfew_2.0_labels.csv             # header "image_name,label"; label 0..6
    sfew2.0_images/
        image_000000.png
        image_000001.png
        ...
"""


def load(dataset_dir: Path, exclude_missing: bool = False) -> Pool:
    return load_csv_dataset(name="sfew", class_names=CLASS_NAMES, dataset_dir=dataset_dir,
                            layout=LAYOUT, label_file=LABEL_FILE, name_col="image_name",
                            label_col="label", image_folder=IMAGE_FOLDER,
                            exclude_missing=exclude_missing)
