"""The decoded cache: every image of a pool decoded once, resized to the size a model needs, and kept
as one uint8 array [N, 3, size, size] memory-mapped from disk.

Without it every sample of every epoch is decoded from JPEG (or FER2013's pixel rows) and resized
again; on a GPU that CPU work, not the model, sets the pace. The array holds exactly what the
per-image path's first step (decode to RGB, then the model's Resize) produces, so a run reads the
same pixels either way and its results do not change. Channels come first (planes), the layout the
model reads: a batch read from the cache becomes float32 NCHW in one contiguous pass, and the batched
augmentation gathers whole planes (a pixel-interleaved [N, size, size, 3] array made that
conversion a transpose, about four times slower on a CPU).

Layout (one folder per pool content × size × interpolation; nothing else is written):

    $FER_CACHE_DIR/decoded/            (default <repo>/.cache/decoded/)
        <dataset>-<size>px-<interpolation>-<key>/images.npy   uint8 [N, 3, size, size], np.load(mmap_mode="r")
        <dataset>-<size>px-<interpolation>-<key>/meta.json    dataset, size, interpolation, ids, key
        <dataset>-<size>px-<interpolation>-<key>.lock         flock held while one process builds it

`key` hashes the pool's content: the sample ids in pool order (so images the loader excluded stay
excluded), each file's path relative to the dataset folder with its size and mtime (or FER2013's
pixel array itself), the size and interpolation, and CACHE_FORMAT. A changed, added or removed image
gives a new key, hence a new folder: a stale cache is never read.

Two runs that need the same cache at once: the first takes the lock and builds into a temporary
folder renamed into place when complete; the other waits on the lock, then reads the finished
folder. A cache location that is missing, read-only or full is a log line and the run decodes per
sample as before; it never stops a run.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from common.datasets.base import Pool, repo_root

logger = logging.getLogger(__name__)

# Bump when the stored bytes change meaning (decode or resize rule, layout): old folders are then ignored.
# 2: planes [N, 3, S, S] (1 was [N, S, S, 3]).
CACHE_FORMAT = 2
# Seconds between two progress lines in the log while a cache is built.
PROGRESS_INTERVAL_S = 10.0


def cache_root() -> Path:
    """$FER_CACHE_DIR/decoded, else <repo>/.cache/decoded."""
    base = Path(os.environ["FER_CACHE_DIR"]) if os.environ.get("FER_CACHE_DIR") else repo_root() / ".cache"
    return base / "decoded"


def content_key(pool: Pool, size: int, interpolation: str) -> str:
    """Hash of what the cached array depends on (see the module docstring); one stat per file, no reads."""
    h = hashlib.sha256(f"{CACHE_FORMAT}\n{pool.name}\n{size}\n{interpolation}\n{len(pool)}\n".encode())
    h.update("\n".join(pool.ids).encode())
    if pool.pixels is not None:
        h.update(np.ascontiguousarray(pool.pixels).tobytes())
    else:
        root = pool.root or "/"
        for p in pool.paths:
            st = os.stat(p)
            h.update(f"\n{os.path.relpath(p, root)}\t{st.st_size}\t{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def folder_name(pool: Pool, size: int, interpolation: str) -> str:
    return f"{pool.name}-{size}px-{interpolation}-{content_key(pool, size, interpolation)}"


def _load(folder: Path, n: int) -> np.ndarray | None:
    """The finished cache in `folder`, memory-mapped, or None if there is none (or it is not whole)."""
    try:
        images = np.load(folder / "images.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    return images if images.shape[0] == n else None


def _build(pool: Pool, resize: Callable[[Any], Any], size: int, folder: Path, meta: dict[str, Any],
           log: Callable[[str], None]) -> None:
    """Decode every image into a temporary folder beside `folder`, then rename it into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        out = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8,
                                        shape=(len(pool), 3, size, size))
        bar = _Progress(len(pool), f"decoding {pool.name} at {size} px", log)
        for i in range(len(pool)):
            out[i] = np.asarray(resize(pool.image(i)), dtype=np.uint8).transpose(2, 0, 1)
            bar.update(i + 1)
        out.flush()
        del out
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared like any folder
        os.rename(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def decoded_images(pool: Pool, size: int, interpolation: str, resize: Callable[[Any], Any],
                   log: Callable[[str], None] | None = None, root: Path | None = None) -> np.ndarray | None:
    """uint8 [len(pool), 3, size, size]: image i is `resize(pool.image(i))` as planes, read from the cache
    (built first when absent). None, after one log line saying why, when the cache location cannot be
    used; the caller then decodes per sample. Messages go to `log` when given, else to this module's logger."""
    log = log or logger.info
    root = cache_root() if root is None else Path(root)
    name = folder_name(pool, size, interpolation)
    folder = root / name
    images = _load(folder, len(pool))
    if images is not None:  # finished folders never change, so reading needs no lock (read-only mounts too)
        log(f"decoded cache: {folder}")
        return images
    meta = {"dataset": pool.name, "size": size, "interpolation": interpolation, "format": CACHE_FORMAT,
            "n": len(pool), "key": name.rsplit("-", 1)[1], "ids_sha256": hashlib.sha256("\n".join(pool.ids).encode()).hexdigest()}
    try:
        root.mkdir(parents=True, exist_ok=True)
        with open(root / f"{name}.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"decoded cache: another process is building {folder}; waiting for it")
                fcntl.flock(lock, fcntl.LOCK_EX)
            images = _load(folder, len(pool))  # the other process may have finished it meanwhile
            if images is None:
                t0 = time.time()
                _build(pool, resize, size, folder, meta, log)
                log(f"decoded cache: built {folder} ({len(pool)} images, {time.time() - t0:.1f}s)")
                images = _load(folder, len(pool))
                _mention_older_formats(root, log)
            else:
                log(f"decoded cache: {folder}")
    except OSError as e:
        log(f"decoded cache unavailable at {root} ({e.strerror or e}); decoding every image per sample "
            "(set FER_CACHE_DIR to a writable folder, or data.cache=false to silence this)")
        return None
    return images


def older_formats(root: Path) -> list[Path]:
    """Cache folders under `root` written by an earlier CACHE_FORMAT: this code never reads them."""
    old = []
    for meta in sorted(root.glob("*/meta.json")):
        try:
            fmt = json.loads(meta.read_text(encoding="utf-8")).get("format", 1)
        except (OSError, ValueError):
            continue
        if isinstance(fmt, int) and fmt < CACHE_FORMAT:
            old.append(meta.parent)
    return old


def _mention_older_formats(root: Path, log: Callable[[str], None]) -> None:
    """One log line when a cache of an earlier format still takes space (a format change orphans
    every cache, tens of GB for a full sweep's datasets); deleting is left to the user, whose
    other checkouts may still read them."""
    old = older_formats(root)
    if old:
        gb = sum(f.stat().st_size for d in old for f in d.iterdir() if f.is_file()) / 1e9
        log(f"decoded cache: {len(old)} folder(s) in {root} hold an older cache format (before {CACHE_FORMAT}) that "
            f"this version no longer reads ({gb:.2f} GB): {', '.join(d.name for d in old)}; delete them to free the space")


class _Progress:
    """A bar on a terminal, a line in the log every PROGRESS_INTERVAL_S (so a long build looks alive)."""

    def __init__(self, total: int, what: str, log: Callable[[str], None]) -> None:
        self.total, self.what, self.log = total, what, log
        self.start = self.last = time.monotonic()
        self.tty = sys.__stderr__ is not None and sys.__stderr__.isatty()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if self.tty and (done == self.total or done % 64 == 0):
            filled = 24 * done // max(1, self.total)
            sys.__stderr__.write(f"\r[{'#' * filled}{'.' * (24 - filled)}] {self.what}: {done}/{self.total}\x1b[K")
            if done == self.total:
                sys.__stderr__.write("\r\x1b[K")
            sys.__stderr__.flush()
        if now - self.last >= PROGRESS_INTERVAL_S and done < self.total:
            self.last = now
            rate = done / max(now - self.start, 1e-9)
            self.log(f"  {self.what}: {done}/{self.total} ({rate:.0f} images/s, ~{(self.total - done) / rate:.0f}s left)")
