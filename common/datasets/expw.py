"""ExpW (Expression in-the-Wild), 91,793 labelled faces in 85,000+ web images, 7 classes.

Label file `label/label.lst`: no header, one line per face, 8 fields separated by spaces:
`image_name face_id top left right bottom confidence label`, e.g.
`afraid_African_214.jpg 0 28 113 226 141 52.90 2`. face_id numbers the faces of one image;
the box is in pixels of the original image; confidence is the face detector's score.
`label` is 0..6 in ExpW's own order: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad,
5 surprise, 6 neutral, named here anger, disgust, fear, happiness, sadness, surprise, neutral.

One sample per label line (a face), keyed `<image_name>#<face_id>`. Two layouts of
`aligned_image/` (config `data.expw_layout`):

- `per-face` (default): one aligned file per face, `<stem>_<face_id><ext>` (`face_filename`,
  what `make align` writes). A one-face image may instead have `aligned_image/<image_name>`.
  A multi-face image with only `aligned_image/<image_name>` is ambiguous (which face is it?):
  an error that names `data.expw_layout=reference`, or, with exclude_missing, its faces are
  excluded with that reason.
- `reference`: the reference suite's downloadable aligned ExpW, one file per *image name*
  (90,560 kept lines). Its scripts keep every label line whose `aligned_image/<image_name>`
  exists, in file order, and drop the others silently; a multi-face image so gives one sample
  per face, all with the same picture and possibly different labels, and ShuffleSplit puts them
  in different folds. This layout reproduces that pool exactly (same size, order and labels, so
  the same folds) and warns once with the counts. Dropped lines are listed in pool.excluded.
"""
from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from common.datasets.base import (
    Pool,
    check_labels,
    check_names,
    check_unique,
    encoding_text,
    finish_pool,
    layout_error,
    list_files,
)
from common.errors import ConfigError

CLASS_NAMES = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
FOLDER = "ExpW"
SOURCE = "https://mmlab.ie.cuhk.edu.hk/projects/socialrelation/index.html (raw web images: align them first)"
LABEL_FILE = "label/label.lst"
IMAGE_FOLDER = "aligned_image"
LAYOUTS = ("per-face", "reference")
LAYOUT = """\
ExpW/
    label/
        label.lst                   # "image_name face_id top left right bottom confidence label"
    aligned_image/                  # data.expw_layout=per-face (default): one file per label line,
        afraid_African_214_0.jpg    #   <image stem>_<face_id><ext> (or <image_name> for a one-face image)
        ...                         # data.expw_layout=reference: one file per image, <image_name>
"""
FIELDS = ("image_name", "face_id", "top", "left", "right", "bottom", "confidence", "label")


class SharedPictureWarning(UserWarning):
    """The reference layout gives several samples (faces) the same picture."""


def face_filename(image_name: str, face_id: int | str) -> str:
    """File name of one aligned face: `afraid_African_214.jpg`, 0 -> `afraid_African_214_0.jpg`."""
    stem, ext = os.path.splitext(image_name)
    return f"{stem}_{int(face_id)}{ext}"


def sample_id(image_name: str, face_id: int | str) -> str:
    return f"{image_name}#{int(face_id)}"


def read_label_file(label_file: Path, dataset_dir: Path | None = None) -> list[dict]:
    """Parse label.lst into one dict per face (FIELDS as keys, ints except confidence, plus
    `line`), in file order. The alignment step reads the boxes through this too, so an image
    name pointing outside the folder (check_names) stops both the loader and `make align`."""
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
    check_names([f["image_name"] for f in faces], label_file, [f["line"] for f in faces], "expw",
                dataset_dir, LAYOUT)
    return faces


def load(dataset_dir: Path, exclude_missing: bool = False, layout: str = "per-face") -> Pool:
    if layout not in LAYOUTS:
        raise ConfigError(f"data.expw_layout={layout!r}; valid: {', '.join(LAYOUTS)}")
    label_file = dataset_dir / LABEL_FILE
    faces = read_label_file(label_file, dataset_dir)
    lines = [f["line"] for f in faces]
    labels = np.asarray([f["label"] for f in faces], dtype=np.int64)
    check_labels(labels, 0, len(CLASS_NAMES) - 1, label_file, dataset_dir, "expw", LAYOUT,
                 encoding_text(CLASS_NAMES), lines)
    ids = [sample_id(f["image_name"], f["face_id"]) for f in faces]
    check_unique(ids, label_file, dataset_dir, "expw", LAYOUT, lines)
    present = list_files(dataset_dir / IMAGE_FOLDER)
    if layout == "reference":
        return _load_reference(dataset_dir, faces, ids, present, exclude_missing)
    return _load_per_face(dataset_dir, faces, ids, present, exclude_missing)


def _load_per_face(dataset_dir: Path, faces: list[dict], ids: list[str], present: set[str],
                   exclude_missing: bool) -> Pool:
    image_dir = dataset_dir / IMAGE_FOLDER
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
    if reasons and not exclude_missing:
        # A folder of one file per image is the reference suite's download: say how to load it.
        images = sorted({faces[i]["image_name"] for i in reasons})
        first = faces[min(reasons)]
        raise layout_error(
            f"{len(images)} multi-face images have one aligned file per image, not one per face "
            f"(e.g. {first['image_name']} has {faces_per_image[first['image_name']]} faces in "
            f"{LABEL_FILE} but no {face_filename(first['image_name'], first['face_id'])}): "
            "this is the reference suite's layout",
            "expw", dataset_dir, LAYOUT,
            hint="To use it as the reference suite did (every label line whose aligned_image/<image_name> "
                 "exists; the faces of one image share its picture), set data.expw_layout=reference "
                 "(SET=\"data.expw_layout=reference\"). To drop the multi-face images instead, set "
                 "data.exclude_missing=true. To train on per-face crops, align the raw images with "
                 "`make align DATASET=expw`.")
    return finish_pool("expw", CLASS_NAMES, dataset_dir, LAYOUT, ids, np.asarray([f["label"] for f in faces]),
                       paths, image_dir, exclude_missing, reasons)


def _load_reference(dataset_dir: Path, faces: list[dict], ids: list[str], present: set[str],
                    exclude_missing: bool) -> Pool:
    """The reference scripts' rule: keep a label line iff aligned_image/<image_name> exists."""
    image_dir = dataset_dir / IMAGE_FOLDER
    keep = [i for i, f in enumerate(faces) if f["image_name"] in present]
    dropped = [{"id": ids[i], "path": str(image_dir / faces[i]["image_name"]),
                "reason": "no aligned_image/<image_name> (dropped, as the reference suite's rule does)"}
               for i, f in enumerate(faces) if f["image_name"] not in present]
    kept = [faces[i] for i in keep]
    pool = finish_pool("expw", CLASS_NAMES, dataset_dir, LAYOUT, [ids[i] for i in keep],
                       np.asarray([f["label"] for f in kept], dtype=np.int64),
                       [str(image_dir / f["image_name"]) for f in kept], image_dir, exclude_missing)
    pool.excluded = dropped + pool.excluded
    _warn_shared_pictures(kept, len(faces))
    return pool


def _warn_shared_pictures(kept: list[dict], n_lines: int) -> None:
    per_image = Counter(f["image_name"] for f in kept)
    shared = {name for name, n in per_image.items() if n > 1}
    if not shared:
        return
    labels: dict[str, set[int]] = {}
    for f in kept:
        if f["image_name"] in shared:
            labels.setdefault(f["image_name"], set()).add(f["label"])
    conflicting = sum(len(v) > 1 for v in labels.values())
    samples = sum(per_image[name] for name in shared)
    warnings.warn(
        f"expw (data.expw_layout=reference): {len(kept)} of {n_lines} label lines kept; "
        f"{samples} samples come from {len(shared)} multi-face images and share their image's picture "
        f"({conflicting} of those images carry different labels). The random splits put such samples "
        "into different folds, so the same picture can be in train and test, with different labels. "
        "This reproduces the reference suite's pool; per-face crops (data.expw_layout=per-face, "
        "`make align`) avoid it.",
        SharedPictureWarning, stacklevel=3)
