"""What every dataset module shares: the Pool, the layout error, and the image checks.

Torch-free on purpose (numpy, pandas, PIL only): the harness imports this package on
machines without torch to list datasets and to validate configs.

A dataset module provides CLASS_NAMES, FOLDER, LABEL_FILE, LAYOUT and
`load(dataset_dir, exclude_missing) -> Pool`. The pool is every image of the dataset
in label-file order; splitting it is common/splits.py's job.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from common.errors import DatasetLayoutError

# How many offending files an error message lists before it says "and N more".
_SHOW = 5
# Bytes read from the end of a file to find the JPEG/PNG end marker: a file cut short
# by an interrupted copy or download loses it, while PIL's verify() only reads headers.
_TAIL_BYTES = 1024
_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}


# DatasetLayoutError (a user error, common/errors.py): the message names the missing or corrupt
# file and prints the expected layout, so the user can fix the folder without reading the code.


def layout_error(problem: str, dataset: str, dataset_dir: Path | str, layout: str,
                 hint: str = "") -> DatasetLayoutError:
    """Build the error every loader raises: problem, the folder looked at, the expected tree."""
    text = (f"{dataset}: {problem}\n"
            f"dataset folder: {dataset_dir}\n"
            f"expected layout:\n{layout.rstrip()}\n"
            "Point the dataset root at the folder that holds it: load_pool(root=...), "
            "--data-root / DATA_ROOT=, or FER_DATA_ROOT.")
    if hint:
        text += "\n" + hint
    return DatasetLayoutError(text)


# Pillow's modes for 16-bit greyscale: PNG and TIFF open as I;16 (or its byte orders), 16-bit
# PGM as I. convert("RGB") clips those at 255 instead of scaling them.
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_rgb(im: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of `im`; 16-bit greyscale is scaled to 8 bits, not clipped.

    Pillow's convert("RGB") clips 16-bit greyscale at 255 (a real 16-bit face became 99%
    white). Scaled by >> 8 (the high byte), the rule Pillow itself applies to 16-bit RGB and
    grey+alpha PNGs, so every 16-bit source reaches 8 bits alike, and an 8-bit image stored
    as 16 bits (v * 257) comes back exactly. Not stretched to the image's own min..max: that
    would change each image's brightness and contrast differently, which no 8-bit image
    of the dataset undergoes.
    """
    if im.mode not in _SIXTEEN_BIT_MODES:
        return im.convert("RGB")
    a = np.asarray(im)
    if im.mode == "I" and a.size and (a.min() < 0 or a.max() > 0xFFFF):
        # 32-bit integer images are no face format; scaling them by a guess would be silent.
        raise ValueError(f"{getattr(im, 'filename', '') or 'image'}: 32-bit integer pixels "
                         f"{int(a.min())}..{int(a.max())}; expected 8- or 16-bit images")
    return Image.fromarray((a.astype(np.uint16) >> 8).astype(np.uint8), "L").convert("RGB")


@dataclass
class Pool:
    """All samples of one dataset, in label-file order.

    Images come either from files (`paths`) or from one in-memory array (`pixels`,
    FER2013's CSV). `image(i)` always returns an RGB PIL image, whatever the source mode.
    """

    name: str
    class_names: list[str]
    ids: list[str]
    labels: np.ndarray
    excluded: list[dict] = field(default_factory=list)
    root: str = ""
    paths: list[str] | None = None
    pixels: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        n = len(self.ids)
        if self.labels.shape != (n,):
            raise ValueError(f"{self.name}: {n} ids but labels of shape {self.labels.shape}")
        if (self.paths is None) == (self.pixels is None):
            raise ValueError(f"{self.name}: give exactly one image source, paths or pixels")
        source = self.paths if self.paths is not None else self.pixels
        if len(source) != n:
            raise ValueError(f"{self.name}: {n} ids but {len(source)} images")

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, i: int) -> Image.Image:
        if self.pixels is not None:
            return Image.fromarray(self.pixels[i]).convert("RGB")
        with Image.open(self.paths[i]) as im:
            # to_rgb decodes and copies, so the file is closed when we return.
            return to_rgb(im)

    def class_counts(self, indices: Sequence[int] | np.ndarray | None = None) -> list[int]:
        labels = self.labels if indices is None else self.labels[np.asarray(indices, dtype=np.int64)]
        return np.bincount(labels, minlength=len(self.class_names)).tolist()


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def default_data_root() -> Path:
    """FER_DATA_ROOT if set, else data/ at the repository root."""
    env = os.environ.get("FER_DATA_ROOT")
    return Path(env) if env else repo_root() / "data"


def find_dataset_dir(root: Path | str | None, folder: str, label_file: str,
                     dataset: str, layout: str) -> Path:
    """root/<folder> of the reference layout, or root itself if it directly holds the label file."""
    base = Path(root) if root is not None else default_data_root()
    for candidate in (base / folder, base):
        if (candidate / label_file).is_file():
            return candidate
    return_dir = base / folder
    raise layout_error(f"label file not found: {return_dir / label_file} "
                       f"(nor {base / label_file})", dataset, return_dir, layout)


def check_label_rows(label_file: Path, header_rows: int, dataset: str, dataset_dir: Path,
                     layout: str) -> None:
    """The label file must list at least one sample: `header_rows` non-blank lines, then one more.

    Reads only up to that line, so it is cheap enough for the plan-time check of every dataset
    (FER2013's 300 MB CSV included). Without it an empty file gave an empty pool that failed
    later inside sklearn's splitter, naming no file.
    """
    seen = 0
    with open(label_file, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                seen += 1
                if seen > header_rows:
                    return
    what = "is empty" if seen == 0 else "has a header row but no sample rows"
    raise layout_error(f"label file {what}: {label_file}", dataset, dataset_dir, layout)


def check_names(names: Sequence[str], label_file: Path, lines: Sequence[int], dataset: str,
                dataset_dir: Path, layout: str) -> None:
    """Image names in a label file are paths relative to the image folder: refuse any that could
    point outside the dataset folder (absolute, a drive, or a `..` part), naming the line.

    The loaders would read such a file from anywhere on the machine, and `make align` would
    write its output outside DST. Lexical on purpose: an image folder of symlinks stays valid.
    """
    for value, line in zip(names, lines):
        why = _outside(value)
        if why:
            raise layout_error(f"{label_file}: line {line}: image name {value!r} {why}; names are "
                               "relative to the dataset's image folder and stay inside it",
                               dataset, dataset_dir, layout)


def _outside(value: str) -> str:
    """Why `value` could leave the folder it is joined to ('' if it cannot); / and \\ both split."""
    if value.startswith(("/", "\\")) or (len(value) > 2 and value[1] == ":" and value[2] in "/\\"):
        return "is an absolute path"
    if ".." in value.replace("\\", "/").split("/"):
        return "has a '..' part"
    return ""


def check_image(path: str) -> str | None:
    """None if the file looks like a whole, readable image, else the reason it does not.

    Cheap but real: PIL parses the header and runs verify() (PNG chunk CRCs), and the
    format's end marker must be near the end of the file, which catches truncated files.
    Measured: about 0.1 ms per 100 px JPEG on an idle core, against 0.35 ms for a full decode.
    """
    try:
        with Image.open(path) as im:
            fmt = im.format
            im.verify()
    except FileNotFoundError:
        return "missing"
    # PIL's format parsers raise many exception types on bad bytes; all mean "unreadable".
    except Exception as exc:  # noqa: BLE001
        return f"unreadable ({type(exc).__name__}: {exc})"
    marker = _END_MARKERS.get(fmt or "")
    if marker is not None:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - _TAIL_BYTES))
            if marker not in f.read():
                return f"truncated (no {fmt} end marker)"
    return None


def check_files(paths: Sequence[str], folder: Path, reasons: dict[int, str] | None = None) -> dict[int, str]:
    """Reason per bad sample index: missing (one directory listing) or failing check_image.

    `reasons` carries problems a loader found before (e.g. ExpW's ambiguous files); those
    samples are not checked again.
    """
    bad = dict(reasons or {})
    present = list_files(folder)
    for i, p in enumerate(paths):
        if i in bad:
            continue
        # The listing saves one stat per file; paths in sub-folders fall back to a stat.
        name = Path(p).name
        exists = name in present if Path(p).parent == folder else os.path.isfile(p)
        if not exists:
            bad[i] = "missing"
            continue
        reason = check_image(p)
        if reason is not None:
            bad[i] = reason
    return bad


def list_files(folder: Path) -> set[str]:
    """Names of the files in `folder` (empty if it does not exist): one scandir, no stat per file."""
    try:
        return {e.name for e in os.scandir(folder) if e.is_file()}
    except FileNotFoundError:
        return set()


def finish_pool(name: str, class_names: list[str], dataset_dir: Path, layout: str,
                ids: list[str], labels: Iterable[int], paths: list[str], image_dir: Path,
                exclude_missing: bool, reasons: dict[int, str] | None = None) -> Pool:
    """Check every image, then raise or drop (exclude_missing) the bad ones, and build the pool."""
    bad = check_files(paths, image_dir, reasons)
    labels = np.asarray(list(labels), dtype=np.int64)
    excluded = [{"id": ids[i], "path": paths[i], "reason": bad[i]} for i in sorted(bad)]
    if bad and not exclude_missing:
        shown = "\n".join(f"  {e['path']}: {e['reason']}" for e in excluded[:_SHOW])
        more = f"\n  ... and {len(excluded) - _SHOW} more" if len(excluded) > _SHOW else ""
        raise layout_error(f"{len(excluded)} of {len(ids)} samples have no usable image "
                           f"(missing, unreadable or ambiguous):\n{shown}{more}",
                           name, dataset_dir, layout,
                           hint="To drop them (they are listed in the run spec), set "
                                "data.exclude_missing=true / load_pool(..., exclude_missing=True).")
    keep = [i for i in range(len(ids)) if i not in bad]
    return Pool(name=name, class_names=list(class_names), ids=[ids[i] for i in keep],
                labels=labels[keep], excluded=excluded, root=str(dataset_dir),
                paths=[paths[i] for i in keep])


def check_labels(raw: np.ndarray, low: int, high: int, label_file: Path, dataset_dir: Path,
                 dataset: str, layout: str, encoding: str, lines: Sequence[int]) -> None:
    """Labels as written in the file must lie in [low, high]; name the first bad line otherwise.

    `lines[i]` is the label-file line number of sample i, for the message."""
    bad = np.flatnonzero((raw < low) | (raw > high))
    if bad.size:
        i = int(bad[0])
        raise layout_error(f"{label_file}: line {lines[i]}: label {raw[i]} is outside "
                           f"the expected encoding {encoding}", dataset, dataset_dir, layout)


def check_unique(ids: Sequence[str], label_file: Path, dataset_dir: Path, dataset: str,
                 layout: str, lines: Sequence[int]) -> None:
    """Sample ids must be unique: the predictions and the splits are keyed by them."""
    seen: dict[str, int] = {}
    for i, key in enumerate(ids):
        if key in seen:
            raise layout_error(f"{label_file}: sample {key!r} appears twice (lines "
                               f"{lines[seen[key]]} and {lines[i]})", dataset, dataset_dir, layout)
        seen[key] = i


def read_label_csv(label_file: Path, columns: Sequence[str], dataset: str, layout: str):
    """Read a CSV label file with a header row; the named columns must be present.

    Header names are compared after stripping spaces (Kaggle's FER2013 CSV has ' pixels').
    Returns a pandas DataFrame with only those columns, in file order.
    """
    import pandas as pd  # imported here: keeps `import common.datasets` light for the harness

    try:
        df = pd.read_csv(label_file, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise layout_error(f"{label_file}: not a readable CSV ({exc})", dataset,
                           label_file.parent, layout) from exc
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise layout_error(f"{label_file}: header lacks column(s) {missing}; found {list(df.columns)}",
                           dataset, label_file.parent, layout)
    return df[list(columns)]


def int_column(values: Sequence[str], label_file: Path, column: str, dataset: str,
               layout: str, first_line: int = 2) -> np.ndarray:
    """Parse a column of integer strings; name the first line that is not an integer."""
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        try:
            out[i] = int(str(v).strip())
        except ValueError:
            raise layout_error(f"{label_file}: line {i + first_line}: column {column!r} "
                               f"must be an integer, got {v!r}", dataset,
                               label_file.parent, layout) from None
    return out


def name_column(values: Sequence[str], label_file: Path, column: str, dataset: str,
                layout: str, first_line: int = 2) -> list[str]:
    """File names from a column; an empty name is a corrupt line."""
    names = [str(v).strip() for v in values]
    for i, v in enumerate(names):
        if not v:
            raise layout_error(f"{label_file}: line {i + first_line}: empty {column!r}",
                               dataset, label_file.parent, layout)
    return names


def encoding_text(class_names: Sequence[str]) -> str:
    return ", ".join(f"{i}={c}" for i, c in enumerate(class_names))


def load_csv_dataset(*, name: str, class_names: list[str], dataset_dir: Path, layout: str,
                     label_file: str, name_col: str, label_col: str, image_folder: str,
                     exclude_missing: bool) -> Pool:
    """The CSV layouts (FERPlus, SFEW2.0, CK+): a header row, a file-name and an integer label
    column, images in one folder named by the file-name column. Sample id = file name."""
    path = dataset_dir / label_file
    df = read_label_csv(path, [name_col, label_col], name, layout)
    names = name_column(df[name_col].tolist(), path, name_col, name, layout)
    labels = int_column(df[label_col].tolist(), path, label_col, name, layout)
    lines = range(2, len(names) + 2)  # line 1 is the header
    check_names(names, path, lines, name, dataset_dir, layout)
    check_labels(labels, 0, len(class_names) - 1, path, dataset_dir, name, layout,
                 encoding_text(class_names), lines)
    check_unique(names, path, dataset_dir, name, layout, lines)
    image_dir = dataset_dir / image_folder
    paths = [str(image_dir / n) for n in names]
    return finish_pool(name, class_names, dataset_dir, layout, names, labels, paths, image_dir,
                       exclude_missing)
