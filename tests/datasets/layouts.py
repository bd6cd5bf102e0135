"""Writers for small datasets in the real reference layouts (seed/FER-crossval-README.md).

Shared by the loader tests and by any other test that needs a dataset on disk (e.g. the
ExpW alignment test: `from tests.datasets.layouts import write_expw`). Every writer takes
0-based class indices and writes them in the dataset's own encoding (RAF-DB: 1..7), and
returns the dataset folder it wrote, `root/<reference folder>`.

Images are tiny and encode their sample index in the red channel and their label in the
green channel (`sample_color`), so a test can tell which file an image came from.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from common.datasets import ckplus, class_names, expw, fer2013, ferplus, rafdb, sfew


def sample_color(index: int, label: int) -> tuple[int, int, int]:
    """Colour of sample `index`: red = 20 + 9 * index (mod 230), green = 30 * label."""
    return (20 + (9 * index) % 230, (30 * label) % 256, 128)


def write_image(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (16, 16),
                mode: str = "RGB") -> Path:
    """A solid image (format from the extension), with a few pixels of texture."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, color)
    img.putpixel((0, 0), (255, 255, 255))
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path)
    return path


def _dir(root: Path, folder: str, nested: bool) -> Path:
    out = Path(root) / folder if nested else Path(root)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_rafdb(root: Path, samples: Sequence[tuple[str, int]], *, nested: bool = True,
                skip: Iterable[str] = (), size: tuple[int, int] = (16, 16)) -> Path:
    """samples: (file name in the label file, e.g. 'train_00001.jpg', class index 0..6).
    Names in `skip` get a label line but no image."""
    d = _dir(root, rafdb.FOLDER, nested)
    skip = set(skip)
    label_file = d / rafdb.LABEL_FILE
    label_file.parent.mkdir(parents=True, exist_ok=True)
    label_file.write_text("".join(f"{n} {y + 1}\n" for n, y in samples), encoding="utf-8")
    for i, (name, y) in enumerate(samples):
        if name not in skip:
            write_image(d / rafdb.IMAGE_FOLDER / rafdb.image_filename(name), sample_color(i, y), size)
    return d


def write_fer2013(root: Path, labels: Sequence[int], pixels: np.ndarray | None = None, *,
                  nested: bool = True, extra_columns: bool = False) -> Path:
    """One CSV row per label; pixels [N, 48, 48] uint8 (default: the sample colour's red value
    with a gradient). extra_columns adds Kaggle's ' Usage' column and spaced header names."""
    d = _dir(root, fer2013.FOLDER, nested)
    if pixels is None:
        pixels = fer2013_pixels(labels)
    with open(d / fer2013.LABEL_FILE, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["emotion", " Usage", " pixels"] if extra_columns else ["emotion", "pixels"])
        for y, p in zip(labels, pixels):
            text = " ".join(map(str, p.ravel()))
            w.writerow([y, "Training", text] if extra_columns else [y, text])
    return d


def fer2013_pixels(labels: Sequence[int]) -> np.ndarray:
    """Deterministic 48x48 images: sample colour's red value plus a horizontal ramp."""
    ramp = np.arange(48, dtype=np.int64)[None, :] * 2
    return np.stack([np.broadcast_to((sample_color(i, y)[0] + ramp) % 256, (48, 48))
                     for i, y in enumerate(labels)]).astype(np.uint8)


def _write_csv_dataset(d: Path, label_file: str, header: Sequence[str], image_folder: str,
                       samples: Sequence[tuple[str, int]], skip: Iterable[str],
                       size: tuple[int, int], mode: str) -> Path:
    skip = set(skip)
    with open(d / label_file, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows([n, y] for n, y in samples)
    for i, (name, y) in enumerate(samples):
        if name not in skip:
            write_image(d / image_folder / name, sample_color(i, y), size, mode)
    return d


def write_ferplus(root: Path, samples: Sequence[tuple[str, int]], *, nested: bool = True,
                  skip: Iterable[str] = ()) -> Path:
    """samples: ('fer0000000.png', class 0..7); images are 48x48 greyscale PNGs like FERPlus's."""
    d = _dir(root, ferplus.FOLDER, nested)
    return _write_csv_dataset(d, ferplus.LABEL_FILE, ["Image name", "label"], ferplus.IMAGE_FOLDER,
                              samples, skip, (48, 48), "L")


def write_sfew(root: Path, samples: Sequence[tuple[str, int]], *, nested: bool = True,
               skip: Iterable[str] = ()) -> Path:
    """samples: ('image_000000.png', class 0..6)."""
    d = _dir(root, sfew.FOLDER, nested)
    return _write_csv_dataset(d, sfew.LABEL_FILE, ["image_name", "label"], sfew.IMAGE_FOLDER,
                              samples, skip, (20, 20), "RGB")


def write_ckplus(root: Path, samples: Sequence[tuple[str, int]], *, nested: bool = True,
                 skip: Iterable[str] = ()) -> Path:
    """samples: ('image_000000.png', class 0..6); greyscale frames like CK+'s."""
    d = _dir(root, ckplus.FOLDER, nested)
    return _write_csv_dataset(d, ckplus.LABEL_FILE, ["image_name", "label"], ckplus.IMAGE_FOLDER,
                              samples, skip, (24, 24), "L")


def expw_face(image_name: str, face_id: int, label: int,
              box: tuple[int, int, int, int] | None = None, confidence: float = 50.0) -> dict:
    """One ExpW label line as a dict; box = (top, left, right, bottom), default a 40 px square
    placed by face_id so the faces of one image do not overlap."""
    if box is None:
        left = 10 + 60 * int(face_id)
        box = (10, left, left + 40, 50)
    return {"image_name": image_name, "face_id": int(face_id), "label": int(label),
            "box": tuple(int(v) for v in box), "confidence": float(confidence)}


def write_expw(root: Path, faces: Sequence[dict | tuple], *, aligned: str | None = "per_face",
               origin: bool = False, nested: bool = True, skip: Iterable[str] = (),
               face_size: tuple[int, int] = (16, 16)) -> Path:
    """ExpW: label/label.lst plus images.

    faces: dicts from `expw_face` or tuples (image_name, face_id, label[, box]).
    aligned: 'per_face' writes aligned_image/<stem>_<face_id><ext> for every face (what our
    alignment step writes); 'per_image' writes one aligned_image/<image_name> per image (the
    reference suite's layout); None writes no aligned images.
    origin: also write the raw photos image/origin/<image_name>, large enough to hold every
    box, each face box filled with its sample colour (input for the alignment step).
    skip: aligned file names not to write.
    """
    faces = [f if isinstance(f, dict) else expw_face(*f) for f in faces]
    d = _dir(root, expw.FOLDER, nested)
    label_file = d / expw.LABEL_FILE
    label_file.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{f['image_name']} {f['face_id']} {' '.join(map(str, f['box']))} "
             f"{f['confidence']:.2f} {f['label']}\n" for f in faces]
    label_file.write_text("".join(lines), encoding="utf-8")
    skip = set(skip)
    if aligned not in ("per_face", "per_image", None):
        raise ValueError(f"aligned must be 'per_face', 'per_image' or None, got {aligned!r}")
    for i, f in enumerate(faces):
        name = (expw.face_filename(f["image_name"], f["face_id"]) if aligned == "per_face"
                else f["image_name"])
        if aligned is not None and name not in skip and not (d / expw.IMAGE_FOLDER / name).exists():
            write_image(d / expw.IMAGE_FOLDER / name, sample_color(i, f["label"]), face_size)
    if origin:
        _write_expw_origin(d, faces)
    return d


def _write_expw_origin(d: Path, faces: list[dict]) -> None:
    by_image: dict[str, list[tuple[int, dict]]] = {}
    for i, f in enumerate(faces):
        by_image.setdefault(f["image_name"], []).append((i, f))
    for name, group in by_image.items():
        width = max(f["box"][2] for _, f in group) + 10
        height = max(f["box"][3] for _, f in group) + 10
        a = np.full((height, width, 3), 90, dtype=np.uint8)
        for i, f in group:
            top, left, right, bottom = f["box"]
            a[top:bottom, left:right] = sample_color(i, f["label"])
        path = d / "image" / "origin" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(path)


def reference_expw_faces(n_images: int = 60, seed: int = 0) -> list[dict]:
    """ExpW-like label lines: n_images images with 1-4 faces (most with one, as in ExpW), labels
    with ExpW-like imbalance (happiness and neutral most common), and face 0 of the first
    multi-face image moved to the last line, so a test sees that the pool keeps file order."""
    rng = np.random.default_rng(seed)
    faces = []
    for image in range(n_images):
        n_faces = int(rng.choice([1, 2, 3, 4], p=[0.7, 0.15, 0.1, 0.05]))
        for fid in range(n_faces):
            label = int(rng.choice(7, p=[0.04, 0.04, 0.01, 0.33, 0.1, 0.08, 0.4]))
            faces.append(expw_face(f"img_{image:03d}.jpg", fid, label))
    multi = next(i for i in range(len(faces) - 1) if faces[i + 1]["face_id"] == 1)
    faces.append(faces.pop(multi))  # face 0 of a multi-face image moves to the end of the file
    return faces


def reference_expw_selection(dataset_dir: Path) -> tuple[list[str], list[int]]:
    """(image paths, labels) the reference suite's ExpW scripts build: every label.lst line whose
    aligned_image/<image_name> exists, in file order, label = last field. Written the way the
    scripts read the file, independently of common.datasets.expw, as the oracle for its tests."""
    paths, labels = [], []
    with open(Path(dataset_dir) / "label" / "label.lst") as f:
        for line in f:
            parts = line.strip().split()
            path = Path(dataset_dir) / "aligned_image" / parts[0]
            if path.exists():
                paths.append(str(path))
                labels.append(int(parts[-1]))
    return paths, labels


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to a fraction of its bytes (a download interrupted half-way)."""
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


# Small datasets of every layout, for the loader tests.

REAL = ["rafdb", "fer2013", "ferplus", "expw", "sfew", "ckplus"]
N = 9  # samples per fixture: enough for every class of a 7-class set plus repeats


@dataclass
class SmallDataset:
    """A dataset written by write_small and what its pool must contain."""

    name: str
    dir: Path
    ids: list[str]
    labels: list[int]
    paths: list[Path] | None  # image file per sample (None for FER2013)
    size: tuple[int, int]


def _labels(name: str, n: int) -> list[int]:
    c = len(class_names(name))
    return [(3 * i + 1) % c for i in range(n)]  # every class, not sorted, first label not 0


def write_small(name: str, root: Path, n: int = N, *, nested: bool = True,
                skip_index: int | None = None) -> SmallDataset:
    """Write n samples of dataset `name` under root in its real layout and say what the pool
    must hold. skip_index: that sample gets a label line but no image file."""
    labels = _labels(name, n)
    if name == "rafdb":
        n_train = n - 3
        names = ([f"train_{i + 1:05d}.jpg" for i in range(n_train)]
                 + [f"test_{i + 1:04d}.jpg" for i in range(n - n_train)])
        skip = [names[skip_index]] if skip_index is not None else []
        d = write_rafdb(root, list(zip(names, labels)), nested=nested, skip=skip)
        paths = [d / rafdb.IMAGE_FOLDER / rafdb.image_filename(x) for x in names]
        return SmallDataset(name, d, names, labels, paths, (16, 16))
    if name == "fer2013":
        d = write_fer2013(root, labels, nested=nested)
        return SmallDataset(name, d, [f"{i:05d}" for i in range(n)], labels, None, (48, 48))
    if name == "expw":
        # Images with one, two and three faces; face ids as ExpW numbers them.
        faces, image = [], 0
        while len(faces) < n:
            for fid in range(min(1 + image % 3, n - len(faces))):
                faces.append(expw_face(f"img_{image:03d}.jpg", fid, labels[len(faces)]))
            image += 1
        skip = []
        if skip_index is not None:
            f = faces[skip_index]
            skip = [expw.face_filename(f["image_name"], f["face_id"])]
        d = write_expw(root, faces, nested=nested, skip=skip)
        ids = [f"{f['image_name']}#{f['face_id']}" for f in faces]
        paths = [d / expw.IMAGE_FOLDER / expw.face_filename(f["image_name"], f["face_id"]) for f in faces]
        return SmallDataset(name, d, ids, labels, paths, (16, 16))
    writer, stem, folder, size = {
        "ferplus": (write_ferplus, "fer{:07d}.png", "FERPlus_Image", (48, 48)),
        "sfew": (write_sfew, "image_{:06d}.png", "sfew2.0_images", (20, 20)),
        "ckplus": (write_ckplus, "image_{:06d}.png", "ckplus_images", (24, 24)),
    }[name]
    names = [stem.format(i) for i in range(n)]
    skip = [names[skip_index]] if skip_index is not None else []
    d = writer(root, list(zip(names, labels)), nested=nested, skip=skip)
    return SmallDataset(name, d, names, labels, [d / folder / x for x in names], size)
