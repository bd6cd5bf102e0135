"""Where each dataset's raw images are, and where their aligned versions go.

The output layout is what the dataset loaders read (common/datasets; file and folder names
and the ExpW label parser are imported from there, so they exist once):
    expw    SRC/label/label.lst + SRC/image/origin/ (or SRC/origin/, SRC/image/)
            -> DST/label/label.lst, DST/aligned_image/<face_filename(name, face_id)>, one per face
    rafdb   SRC/EmoLabel/list_patition_label.txt + SRC/Image/original/x.jpg
            -> DST/EmoLabel/list_patition_label.txt, DST/Image/aligned/<rafdb.image_filename(x)>
    sfew    SRC/sfew_2.0_labels.csv + SRC/sfew2.0_images/<image_name>   -> same under DST
    ckplus  SRC/ckplus_labels.csv + SRC/ckplus_images/<image_name>      -> same under DST
    folder  any tree of images under SRC -> the same relative tree under DST
The label file is copied; an entry whose image could not be written (no face under
`--no-face skip`, unreadable source) is left out of it, and the manifest says why.
A label entry whose image name points outside SRC (absolute, `..`) is refused before anything is
written, by the loaders' own check (common.datasets.base.check_names): its output would land
outside DST.
"""
from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable

from common.datasets import ckplus, expw, rafdb, sfew
from common.datasets.base import check_names
from common.errors import ConfigError, DatasetLayoutError
from common.io import atomic_path, atomic_write_text

DATASETS = ("expw", "rafdb", "sfew", "ckplus", "folder")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
EXPW_IMAGE_DIRS = ("image/origin", "origin", "image")


@dataclass(frozen=True)
class Job:
    """One face to align: a source image (and, for ExpW, the annotated face box)."""

    source: Path
    output: Path
    line: int = -1  # index of the label-file entry this face belongs to; -1 in folder mode
    face_id: str = ""
    box: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2 in source pixels


@dataclass
class Plan:
    jobs: list[Job]
    # writes the DST label file keeping only the entries (by index) whose image exists
    write_labels: Callable[[set[int]], None] = field(default=lambda kept: None)


def _require(path: Path, what: str, layout: str) -> Path:
    if not path.exists():
        raise DatasetLayoutError(f"{what} not found: {path}\nexpected layout:\n{layout}")
    return path


def _line_file_writer(src: Path, dst: Path, n_entries: int) -> Callable[[set[int]], None]:
    """Keep the original text of each kept entry (non-empty line); copy verbatim if all kept."""

    def write(kept: set[int]) -> None:
        if len(kept) == n_entries:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            return
        lines = [ln for ln in src.read_text(encoding="utf-8").splitlines() if ln.strip()]
        atomic_write_text(dst, "".join(ln + "\n" for i, ln in enumerate(lines) if i in kept))

    return write


def _csv_writer(src: Path, dst: Path, header: list[str], rows: list[list[str]]) -> Callable[[set[int]], None]:
    def write(kept: set[int]) -> None:
        if len(kept) == len(rows):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            return
        with atomic_path(dst) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(r for i, r in enumerate(rows) if i in kept)

    return write


def _expw(src: Path, dst: Path) -> Plan:
    layout = f"  SRC/{expw.LABEL_FILE}\n  SRC/image/origin/<image files> (or SRC/origin/, SRC/image/)"
    labels = _require(src / expw.LABEL_FILE, "ExpW label file", layout)
    image_dir = next((src / d for d in EXPW_IMAGE_DIRS if (src / d).is_dir()), None)
    if image_dir is None:
        raise DatasetLayoutError(
            f"ExpW image folder not found under {src}: tried {', '.join(EXPW_IMAGE_DIRS)}\n"
            f"expected layout:\n{layout}"
        )
    faces = expw.read_label_file(labels, src)  # the loader's parser: one dict per non-empty line
    jobs = [
        Job(
            source=image_dir / f["image_name"],
            output=dst / expw.IMAGE_FOLDER / expw.face_filename(f["image_name"], f["face_id"]),
            line=i,
            face_id=str(f["face_id"]),
            box=(float(f["left"]), float(f["top"]), float(f["right"]), float(f["bottom"])),
        )
        for i, f in enumerate(faces)
    ]
    return Plan(jobs, _line_file_writer(labels, dst / expw.LABEL_FILE, len(faces)))


def _rafdb(src: Path, dst: Path) -> Plan:
    layout = f"  SRC/{rafdb.LABEL_FILE}\n  SRC/Image/original/train_00001.jpg ..."
    labels = _require(src / rafdb.LABEL_FILE, "RAF-DB label file", layout)
    image_dir = _require(src / "Image" / "original", "RAF-DB original image folder", layout)
    numbered = [(n, ln.split()[0]) for n, ln in enumerate(labels.read_text(encoding="utf-8").splitlines(), 1)
                if ln.strip()]
    names = [name for _, name in numbered]
    check_names(names, labels, [n for n, _ in numbered], "RAF-DB", src, layout)
    jobs = [
        Job(image_dir / n, dst / rafdb.IMAGE_FOLDER / rafdb.image_filename(n), line=i)
        for i, n in enumerate(names)
    ]
    return Plan(jobs, _line_file_writer(labels, dst / rafdb.LABEL_FILE, len(names)))


def _csv_dataset(src: Path, dst: Path, module: ModuleType, title: str) -> Plan:
    label_name, image_dir_name = module.LABEL_FILE, module.IMAGE_FOLDER
    layout = f"  SRC/{label_name} (columns image_name, label)\n  SRC/{image_dir_name}/<image_name>"
    labels = _require(src / label_name, f"{title} label file", layout)
    image_dir = _require(src / image_dir_name, f"{title} image folder", layout)
    with open(labels, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        numbered = [(reader.line_num, r) for r in reader if r]
    rows = [r for _, r in numbered]
    stripped = [h.strip() for h in header]
    if "image_name" not in stripped:
        raise DatasetLayoutError(f"{labels}: no 'image_name' column; columns are {stripped}")
    col = stripped.index("image_name")
    names = [r[col].strip() for r in rows]
    check_names(names, labels, [n for n, _ in numbered], title, src, layout)
    jobs = [Job(image_dir / n, dst / image_dir_name / n, line=i) for i, n in enumerate(names)]
    return Plan(jobs, _csv_writer(labels, dst / label_name, header, rows))


def _folder(src: Path, dst: Path) -> Plan:
    if not src.is_dir():
        raise DatasetLayoutError(f"source folder not found: {src}")
    dst_resolved = dst.resolve()
    jobs = []
    for path in sorted(src.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if dst_resolved in path.resolve().parents:  # DST inside SRC: never re-align outputs
            continue
        jobs.append(Job(path, dst / path.relative_to(src)))
    return Plan(jobs)


def plan(dataset: str, src: Path, dst: Path) -> Plan:
    """The faces to align for `dataset` and how to write its label file."""
    src, dst = Path(src), Path(dst)
    if dataset == "expw":
        return _expw(src, dst)
    if dataset == "rafdb":
        return _rafdb(src, dst)
    if dataset == "sfew":
        return _csv_dataset(src, dst, sfew, "SFEW2.0")
    if dataset == "ckplus":
        return _csv_dataset(src, dst, ckplus, "CK+")
    if dataset == "folder":
        return _folder(src, dst)
    raise ConfigError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
