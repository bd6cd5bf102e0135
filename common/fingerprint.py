"""What a result depends on beyond its config: the dataset's identity and the weight files loaded.

Torch-free: the harness puts both into every RunSpec and its hash, so relabelling or re-aligning a
dataset, or weight files arriving for `pretrained: auto`, marks the old results stale; paths are
not hashed, so moving DATA_ROOT or the weights folder to another disk redoes nothing.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from common.config import ROOT
from common.errors import ConfigError, MissingWeightsError
from common.io import file_sha256
from common.meta import model_meta as read_model_meta


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, cached per (path, size, mtime) for the life of the process."""
    return file_sha256(Path(path))


def sha256(path: Path) -> str:
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def _listing(folder: Path) -> tuple[int, str]:
    """(number of files, sha256 of their relative paths and sizes): cheap (one stat per file, no
    reads) and changes when images are added, removed, renamed or re-written with another size."""
    lines = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            lines.append(f"{os.path.relpath(full, folder)}\t{os.path.getsize(full)}")
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


def dataset_fingerprint(name: str, root: str | Path | None, synthetic: dict | None = None) -> dict[str, Any]:
    """The identity of dataset `name` under `root`: its label file's sha256 and its image listing.
    Raises DatasetLayoutError (naming the folder, the layout and where to get the data) if the
    dataset is not there: this is the plan-time check, before any run starts. Not cached (a
    relabelled file must be seen at once); the label file's hash is, per size and mtime."""
    from common import datasets
    from common.datasets import synthetic as synthetic_data

    if name == "synthetic":
        # Generated: its parameters and the generator's digest name the cache folder.
        return {"synthetic": synthetic_data.cache_dir(synthetic).name}
    folder = datasets.dataset_dir(name, root)
    return _fingerprint_folder(name, str(folder.resolve()))


def _fingerprint_folder(name: str, folder: str) -> dict[str, Any]:
    from common.datasets import _module

    module = _module(name)
    out: dict[str, Any] = {"label_file": module.LABEL_FILE, "label_sha256": sha256(Path(folder) / module.LABEL_FILE)}
    image_folder = getattr(module, "IMAGE_FOLDER", None)
    if image_folder:
        out["images"], out["images_sha256"] = _listing(Path(folder) / image_folder)
    return out


def model_meta(model: str) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """(pretrained_files, pretrained_aliases) of the model: the arguments resolve_weights takes after it."""
    meta = read_model_meta(model)
    return meta.pretrained_files, meta.pretrained_aliases


def weights_folder(cfg: dict[str, Any]) -> Path:
    """The folder `weights_dir` names (FER_WEIGHTS_DIR is already in it); relative to the repository."""
    folder = Path(cfg["weights_dir"])
    return folder if folder.is_absolute() else ROOT / folder


def resolve_weights(model: str, files: tuple[str, ...], aliases: dict[str, tuple[str, ...]],
                    cfg: dict[str, Any], warn=None) -> dict[str, Path] | None:
    """Which weight files to load: `none` -> None; `auto` -> the files if all are present in the
    weights folder, else None (calling `warn` with why); a path -> that file (one-file models) or folder."""
    choice = cfg["pretrained"]
    if choice in (None, "none") or not files:
        if choice not in (None, "none", "auto"):
            raise ConfigError(f"pretrained={choice!r} given, but model {model!r} has no pretrained weights")
        return None
    folder = weights_folder(cfg)
    if choice != "auto":
        given = Path(choice)
        if given.is_dir():
            folder = given
        elif given.is_file() and len(files) == 1:
            return {files[0]: given}
        else:
            raise MissingWeightsError(f"pretrained={choice!r}: no such file or folder (model {model!r} "
                                    f"expects {', '.join(files)})")
    names = {name: (name, *aliases.get(name, ())) for name in files}
    found = {}
    for name, options in names.items():
        present = [folder / n for n in options if (folder / n).is_file()]
        if present:
            found[name] = present[0]
    missing = [" or ".join(options) for name, options in names.items() if name not in found]
    if missing and choice == "auto":
        if warn is not None:
            warn(f"PRETRAINED WEIGHTS NOT FOUND for {model}: {', '.join(missing)} not in {folder}. "
                 f"Training from scratch; results are NOT comparable with the published numbers. "
                 f"Put the files there (see models/{model}/README.md) or set pretrained=none to silence this.")
        return None
    if missing:
        raise MissingWeightsError(f"pretrained weights missing in {folder}: {', '.join(missing)}")
    return found


def weights_fingerprint(paths: dict[str, Path] | None) -> dict[str, str] | str:
    """{file name: sha256} of the files a run loads, or "scratch"."""
    if not paths:
        return "scratch"
    return {name: sha256(path) for name, path in sorted(paths.items())}
