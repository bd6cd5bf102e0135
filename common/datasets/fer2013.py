"""FER2013, 35,887 greyscale 48x48 faces stored as text in one CSV, 7 classes.

Label file `fer2013_modified.csv` (Kaggle's icml_face_data.csv with only two columns kept):
a header row with columns `emotion` and `pixels` (spaces around header names are ignored,
other columns such as Usage are ignored), one row per image. `emotion` is 0..6 in FER2013's
own order: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral, named here
anger, disgust, fear, happiness, sadness, surprise, neutral. `pixels` is 2304 integers 0..255
separated by spaces, row-major.

All pixel strings are parsed once per load into one uint8 array [N, 48, 48] with numpy
(no per-sample or per-value Python work); a row with a wrong value count or a value
outside 0..255 is a corrupt label file, named by its line. There are no image files, so
nothing can be missing and `exclude_missing` has no effect.

Sample id: the 0-based data-row index, zero-padded to 5 digits (`00000`, `00001`, ...).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.datasets.base import (
    Pool,
    check_labels,
    encoding_text,
    int_column,
    layout_error,
    read_label_csv,
)

CLASS_NAMES = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
FOLDER = "FER2013"
SOURCE = "https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge/data (icml_face_data.csv, keep the emotion and pixels columns)"
LABEL_FILE = "fer2013_modified.csv"
SIDE = 48
LAYOUT = """\
FER2013/
    fer2013_modified.csv            # header "emotion,pixels"; emotion 0..6; pixels "p0 p1 ... p2303"
"""
# Rows parsed per numpy pass (~9 MB of text): bounds the temporaries to a few tens of MB.
_CHUNK_ROWS = 1024


class PixelFormatError(ValueError):
    """A pixel string that is not SIDE*SIDE integers 0..255; `row` is its 0-based index."""

    def __init__(self, row: int, problem: str) -> None:
        super().__init__(f"row {row}: {problem}")
        self.row = row


def parse_pixels(strings: Sequence[str], side: int = SIDE) -> np.ndarray:
    """Space-separated decimal pixel strings -> uint8 array [N, side, side], vectorised."""
    n_values = side * side
    out = np.empty((len(strings), n_values), dtype=np.uint8)
    for start in range(0, len(strings), _CHUNK_ROWS):
        chunk = strings[start:start + _CHUNK_ROWS]
        out[start:start + len(chunk)] = _parse_chunk(chunk, n_values, start)
    return out.reshape(len(strings), side, side)


# Byte classes: 0 not allowed, 1 digit, 2 blank (space, tab, CR), 3 newline (ends a row).
_KIND = np.zeros(256, dtype=np.uint8)
_KIND[ord("0"):ord("9") + 1] = 1
_KIND[[ord(" "), ord("\t"), ord("\r")]] = 2
_KIND[ord("\n")] = 3


def _parse_chunk(strings: Sequence[str], n_values: int, offset: int) -> np.ndarray:
    text = "\n".join(strings) + "\n"
    b = np.frombuffer(text.encode("ascii", errors="replace"), dtype=np.uint8)
    kind = _KIND[b]
    newlines = np.flatnonzero(kind == 3)
    if not kind.all():
        pos = int(np.argmin(kind))
        raise PixelFormatError(offset + int(np.searchsorted(newlines, pos)),
                               f"unexpected character {chr(b[pos])!r}")
    if newlines.size != len(strings):
        r = next(i for i, x in enumerate(strings) if "\n" in x)
        raise PixelFormatError(offset + r, "line break inside the pixel string")
    # Values per row = digit runs per row: run starts before each row's newline.
    digit = kind == 1
    starts = digit.copy()
    starts[1:] &= ~digit[:-1]
    per_row = np.diff(np.searchsorted(np.flatnonzero(starts), newlines), prepend=0)
    wrong = np.flatnonzero(per_row != n_values)
    if wrong.size:
        r = int(wrong[0])
        raise PixelFormatError(offset + r, f"{per_row[r]} pixel values, expected {n_values}")
    # Only digits and blanks are left, so numpy's C text parser reads every value.
    values = np.fromstring(text, dtype=np.int64, sep=" ").reshape(len(strings), n_values)
    too_big = np.flatnonzero((values > 255).any(axis=1))
    if too_big.size:
        raise PixelFormatError(offset + int(too_big[0]), "a pixel value is above 255")
    return values.astype(np.uint8)


def load(dataset_dir: Path, exclude_missing: bool = False) -> Pool:
    path = dataset_dir / LABEL_FILE
    df = read_label_csv(path, ["emotion", "pixels"], "fer2013", LAYOUT)
    labels = int_column(df["emotion"].tolist(), path, "emotion", "fer2013", LAYOUT)
    check_labels(labels, 0, len(CLASS_NAMES) - 1, path, dataset_dir, "fer2013", LAYOUT,
                 encoding_text(CLASS_NAMES), range(2, len(labels) + 2))
    try:
        pixels = parse_pixels(df["pixels"].tolist())
    except PixelFormatError as exc:
        raise layout_error(f"{path}: line {exc.row + 2}: corrupt 'pixels' ({exc})", "fer2013",
                           dataset_dir, LAYOUT) from None
    ids = [f"{i:05d}" for i in range(len(labels))]
    return Pool(name="fer2013", class_names=list(CLASS_NAMES), ids=ids, labels=labels,
                excluded=[], root=str(dataset_dir), pixels=pixels)
