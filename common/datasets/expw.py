"""ExpW (Expression in-the-Wild), 91,793 labelled faces in 85,000+ web images, 7 classes.

Label file `label/label.lst`: no header, one line per face, 8 fields separated by spaces:
`image_name face_id top left right bottom confidence label`, e.g.
`afraid_African_214.jpg 0 28 113 226 141 52.90 2`. face_id numbers the faces of one image;
the box is in pixels of the original image; confidence is the face detector's score.
`label` is 0..6 in ExpW's own order: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad,
5 surprise, 6 neutral, named here anger, disgust, fear, happiness, sadness, surprise, neutral.

One sample per label line (a face), keyed `<image_name>#<face_id>`, so the faces of one
image never collapse into one sample. The reference suite keyed by image name and read
`aligned_image/<image_name>` for every face of an image, so a multi-face image gave several
samples with one picture and different labels, and it silently dropped lines whose file was
absent.

The image of a face is `aligned_image/<stem>_<face_id><ext>` (`face_filename`, what our
alignment step writes). If that file is absent but `aligned_image/<image_name>` exists and
the image has exactly one label line, that file is used (the reference suite's layout).
An image with several label lines but only `aligned_image/<image_name>` is ambiguous (which
face is it?): an error naming the image, or, with exclude_missing, all its faces are
excluded with that reason.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from common.datasets.base import (
    Pool,
    check_labels,
    check_unique,
    encoding_text,
    finish_pool,
    layout_error,
    list_files,
)

CLASS_NAMES = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
FOLDER = "ExpW"
LABEL_FILE = "label/label.lst"
IMAGE_FOLDER = "aligned_image"
LAYOUT = """\
ExpW/
    label/
        label.lst                   # "image_name face_id top left right bottom confidence label"
    aligned_image/                  # one aligned face per label line:
        afraid_African_214_0.jpg    #   <image stem>_<face_id><ext>
        ...                         #   (or <image_name> itself if the image has one face)
"""
FIELDS = ("image_name", "face_id", "top", "left", "right", "bottom", "confidence", "label")


def face_filename(image_name: str, face_id: int | str) -> str:
    """File name of one aligned face: `afraid_African_214.jpg`, 0 -> `afraid_African_214_0.jpg`."""
    stem, ext = os.path.splitext(image_name)
    return f"{stem}_{int(face_id)}{ext}"


def sample_id(image_name: str, face_id: int | str) -> str:
    return f"{image_name}#{int(face_id)}"


def read_label_file(label_file: Path, dataset_dir: Path | None = None) -> list[dict]:
    """Parse label.lst into one dict per face (FIELDS as keys, ints except confidence, plus
    `line`), in file order. The alignment step reads the boxes through this too."""
    dataset_dir = dataset_dir if dataset_dir is not None else label_file.parent.parent
    faces = []
    with open(label_file, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                if len(parts) != len(FIELDS):
                    raise ValueError(f"expected {len(FIELDS)} fields, got {len(parts)}")
                face = {"image_name": parts[0], "line": lineno}
                for key, value in zip(FIELDS[1:], parts[1:]):
                    face[key] = float(value) if key == "confidence" else int(value)
            except ValueError as exc:
                raise layout_error(f"{label_file}: line {lineno}: expected '{' '.join(FIELDS)}', "
                                   f"got {line.rstrip()!r} ({exc})", "expw", dataset_dir,
                                   LAYOUT) from None
            faces.append(face)
    return faces


def load(dataset_dir: Path, exclude_missing: bool = False) -> Pool:
    label_file = dataset_dir / LABEL_FILE
    faces = read_label_file(label_file, dataset_dir)
    lines = [f["line"] for f in faces]
    labels = np.asarray([f["label"] for f in faces], dtype=np.int64)
    check_labels(labels, 0, len(CLASS_NAMES) - 1, label_file, dataset_dir, "expw", LAYOUT,
                 encoding_text(CLASS_NAMES), lines)
    ids = [sample_id(f["image_name"], f["face_id"]) for f in faces]
    check_unique(ids, label_file, dataset_dir, "expw", LAYOUT, lines)

    image_dir = dataset_dir / IMAGE_FOLDER
    present = list_files(image_dir)
    faces_per_image = Counter(f["image_name"] for f in faces)
    paths: list[str] = []
    reasons: dict[int, str] = {}
    for i, f in enumerate(faces):
        name, per_face = f["image_name"], face_filename(f["image_name"], f["face_id"])
        if per_face in present or name not in present:
            paths.append(str(image_dir / per_face))  # absent -> reported as missing
        elif faces_per_image[name] == 1:
            paths.append(str(image_dir / name))
        else:
            paths.append(str(image_dir / name))
            reasons[i] = (f"ambiguous: {name} has {faces_per_image[name]} faces in {LABEL_FILE} "
                          f"but one aligned file; expected per-face files such as {per_face}")
    return finish_pool("expw", CLASS_NAMES, dataset_dir, LAYOUT, ids, labels, paths, image_dir,
                       exclude_missing, reasons)
