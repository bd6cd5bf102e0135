"""The per-run manifest: one CSV row per face, appended and flushed as results arrive.

status:  aligned  - warped to the template from detected landmarks
         no_face  - no usable detection; `policy` says what was done (center_crop / box_crop
                    wrote a fallback crop, skip wrote nothing)
         exists   - output already there from an earlier run (resume); not recomputed
         error    - source missing or unreadable; `message` has the reason
Paths are relative to SRC (source) and DST (output); landmarks are in source pixels.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import IO, Any

from preprocess.geometry import LANDMARK_NAMES

STATUSES = ("aligned", "no_face", "exists", "error")
COLUMNS = (
    ["source", "face_id", "output", "status", "policy", "n_faces", "prob"]
    + [f"{name}_{axis}" for name in LANDMARK_NAMES for axis in ("x", "y")]
    + ["message"]
)


def manifest_path(dst: Path) -> Path:
    """A new file per run, so a resumed run never overwrites the record of an earlier one."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = dst / f"align_manifest_{stamp}.csv"
    n = 1
    while path.exists():
        n += 1
        path = dst / f"align_manifest_{stamp}_{n}.csv"
    return path


class ManifestWriter:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = open(self.path, "w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
        self._writer.writeheader()
        self.counts = {s: 0 for s in STATUSES}

    def write(self, row: dict[str, Any]) -> None:
        if row["status"] not in STATUSES:
            raise ValueError(f"status {row['status']!r} not in {STATUSES}")
        self.counts[row["status"]] += 1
        self._writer.writerow({k: row.get(k, "") for k in COLUMNS})
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "ManifestWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
