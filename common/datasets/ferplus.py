"""FERPlus, 35,711 faces (FER2013 images relabelled by 10 annotators), 8 classes.

Label file `FERPlus_Label_modified.csv` (made by the reference suite's
FERPlus_Vote_To_Label from Microsoft's fer2013new.csv): a header row `Image name,label`,
one row per image, e.g. `fer0000000.png,0`. The label is the majority vote (ties broken
by that tool), already 0-based in FERPlus's own column order:
0 neutral, 1 happiness, 2 surprise, 3 sadness, 4 anger, 5 disgust, 6 fear, 7 contempt.
Images with no emotion vote (unknown / not a face only) are not in the file.

Image: `FERPlus_Image/<Image name>` (48x48 greyscale PNG, returned as RGB).
Sample id: the image name.
"""
from __future__ import annotations

from pathlib import Path

from common.datasets.base import Pool, load_csv_dataset

CLASS_NAMES = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
FOLDER = "FERPlus"
SOURCE = "https://github.com/Microsoft/FERPlus (fer2013new.csv; images made from FER2013 with its generate_training_data.py)"
LABEL_FILE = "FERPlus_Label_modified.csv"
IMAGE_FOLDER = "FERPlus_Image"
LAYOUT = """\
FERPlus/
    FERPlus_Label_modified.csv      # header "Image name,label"; label 0..7
    FERPlus_Image/
        fer0000000.png
        fer0000001.png
        ...
"""


def load(dataset_dir: Path, exclude_missing: bool = False) -> Pool:
    return load_csv_dataset(name="ferplus", class_names=CLASS_NAMES, dataset_dir=dataset_dir,
                            layout=LAYOUT, label_file=LABEL_FILE, name_col="Image name",
                            label_col="label", image_folder=IMAGE_FOLDER,
                            exclude_missing=exclude_missing)
