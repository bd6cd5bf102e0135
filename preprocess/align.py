"""Align a dataset: detect 5 landmarks with MTCNN, fit a similarity to the template, warp, save.

Pipeline: worker processes decode images (or, for an annotated box, an enlarged crop around it
resized to EXPW_DETECT_SIZE so that all crops batch together); the main process runs MTCNN on
one window of `batch_size` faces at a time, batched per image size, while the workers decode
the next window and warp + save the previous one. Outputs are written atomically, so an
existing output is always complete and a rerun skips it (resume).
"""
from __future__ import annotations

import math
import multiprocessing
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Sequence

import numpy as np
from PIL import Image

from common.datasets.base import to_rgb
from common.errors import ConfigError, DatasetLayoutError
from common.io import atomic_path
from preprocess import geometry, layouts
from preprocess.choose import SELECT_CHOICES, choose_face
from preprocess.detector import Detection, detect, load_mtcnn
from preprocess.manifest import ManifestWriter, manifest_path

NO_FACE_CHOICES = ("center", "skip")
# Landmarks inside an annotated box are detected in a square crop EXPW_CONTEXT times the box's
# longer side, resized to EXPW_DETECT_SIZE: the face is then ~96 px, where MTCNN is reliable,
# and every crop has the same size, so a whole window goes through MTCNN as one batch.
EXPW_CONTEXT = 2.0
EXPW_DETECT_SIZE = 192
EXPW_MIN_FACE = 40
MIN_FACE = 20
JPEG_QUALITY = 95
PROGRESS_EVERY_S = 2.0


@dataclass
class Summary:
    total: int
    counts: dict[str, int]
    manifest: Path
    seconds: float

    @property
    def images_per_s(self) -> float:
        done = self.total - self.counts.get("exists", 0)
        return done / self.seconds if self.seconds > 0 else 0.0


# ---- worker side (numpy + PIL only: workers never import torch) ---------------------------


def _open_rgb(path: Path) -> Image.Image:
    # The loaders' decode rule: 16-bit greyscale is scaled to 8 bits, not clipped white.
    with Image.open(path) as img:
        return to_rgb(img)


def load_for_detection(job: layouts.Job) -> dict[str, Any]:
    """The array MTCNN sees for `job`, and how its coordinates map back to the source."""
    try:
        img = _open_rgb(job.source)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        return {"error": f"cannot read {job.source}: {err}"}
    if job.box is None:
        return {"array": np.asarray(img), "scale": 1.0, "offset": (0.0, 0.0)}
    x1, y1, x2, y2 = job.box
    side = max(int(round(EXPW_CONTEXT * max(x2 - x1, y2 - y1))), 1)
    left = int(round((x1 + x2 - side) / 2.0))
    top = int(round((y1 + y2 - side) / 2.0))
    crop = img.crop((left, top, left + side, top + side)).resize(
        (EXPW_DETECT_SIZE, EXPW_DETECT_SIZE), Image.Resampling.BILINEAR
    )
    k = side / EXPW_DETECT_SIZE
    # resize maps pixel centres: crop index u -> source index left + (u + 0.5) * k - 0.5
    return {"array": np.asarray(crop), "scale": k, "offset": (left + 0.5 * (k - 1), top + 0.5 * (k - 1))}


def _save_atomic(img: Image.Image, path: Path) -> None:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot write image format of {path}: unknown extension {path.suffix!r}")
    with atomic_path(path) as tmp:  # the temp name ends in .tmp: the format is given, not guessed
        img.save(tmp, format=fmt, **({"quality": JPEG_QUALITY} if fmt == "JPEG" else {}))


def write_face(task: dict[str, Any]) -> dict[str, Any]:
    """Warp one face (or its fallback crop) and save it; returns the manifest fields it decides."""
    job: layouts.Job = task["job"]
    size: int = task["size"]
    try:
        img = _open_rgb(job.source)
        matrix = task["matrix"]
        if matrix is None:  # no-face fallback under --no-face center
            if job.box is not None:
                x1, y1, x2, y2 = job.box
                grow = max(x2 - x1, y2 - y1) * task["margin"]
                matrix = geometry.box_crop_matrix((x1 - grow, y1 - grow, x2 + grow, y2 + grow), size)
            else:
                w, h = img.size
                side = min(w, h)
                box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
                matrix = geometry.box_crop_matrix(box, size)
        _save_atomic(geometry.warp(img, np.asarray(matrix), size), job.output)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        return {"status": "error", "message": f"{type(err).__name__}: {err}"}
    return {}


# ---- main side ----------------------------------------------------------------------------


class _Inline:
    """Pool stand-in for --workers 0: runs in this process, same interface."""

    class _Done:
        def __init__(self, value: list[Any]):
            self._value = value

        def get(self) -> list[Any]:
            return self._value

    def map_async(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> "_Inline._Done":
        return self._Done([fn(x) for x in items])

    def close(self) -> None:
        pass

    def join(self) -> None:
        pass


def _row(job: layouts.Job, src: Path, dst: Path, status: str, **fields: Any) -> dict[str, Any]:
    row = {
        "source": _rel(job.source, src),
        "face_id": job.face_id,
        "output": _rel(job.output, dst),
        "status": status,
    }
    det: Detection | None = fields.pop("detection", None)
    if det is not None:
        row["prob"] = f"{det.prob:.6f}"
        for name, (x, y) in zip(geometry.LANDMARK_NAMES, det.points):
            row[f"{name}_x"], row[f"{name}_y"] = f"{x:.2f}", f"{y:.2f}"
    row.update(fields)
    return row


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _progress(
    log: IO[str], done: int, total: int, counts: dict[str, int], t0: float, computed: int
) -> None:
    dt = max(time.perf_counter() - t0, 1e-9)
    rate = computed / dt
    left = total - done
    eta = f"{int(left / rate // 60)}m{int(left / rate % 60):02d}s" if rate > 0 else "?"
    tally = " ".join(f"{k} {v}" for k, v in counts.items())
    pct = 100.0 * done / total if total else 100.0
    line = f"[align] {done}/{total} ({pct:.0f}%) | {tally} | {rate:.1f} img/s | eta {eta}"
    print(line, file=log, flush=True)


@dataclass(frozen=True)
class AlignOptions:
    """How faces are aligned (the command line's options); `check` names a bad value and the choices."""

    size: int = 112
    margin: float = 0.25
    no_face: str = "center"
    select: str = "largest"
    workers: int = 2
    batch_size: int = 32
    device: str | None = None
    threads: int | None = None

    def check(self) -> None:
        if self.size not in geometry.SIZES:
            raise ConfigError(f"size must be one of {geometry.SIZES}, got {self.size}")
        if self.no_face not in NO_FACE_CHOICES:
            raise ConfigError(f"no_face must be one of {NO_FACE_CHOICES}, got {self.no_face!r}")
        if self.select not in SELECT_CHOICES:
            raise ConfigError(f"select must be one of {SELECT_CHOICES}, got {self.select!r}")
        if self.workers < 0 or self.batch_size < 1:
            raise ConfigError(f"need workers >= 0 and batch_size >= 1, got {self.workers} and {self.batch_size}")


@dataclass(frozen=True)
class _Window:
    """What detecting one window needs besides its faces: the options, the template, the roots."""

    opts: AlignOptions
    target: np.ndarray
    src: Path
    dst: Path


def align_dataset(
    dataset: str,
    src: Path,
    dst: Path,
    *,
    size: int = 112,
    margin: float = 0.25,
    no_face: str = "center",
    select: str = "largest",
    workers: int = 2,
    batch_size: int = 32,
    device: str | None = None,
    threads: int | None = None,
    log: IO[str] = sys.stderr,
) -> Summary:
    """Align every face of `dataset` under `src` into the loader layout under `dst`.

    Writes the aligned images, the label file (entries without an image left out) and a new
    manifest CSV in `dst`; progress goes to `log`. Returns the per-status counts.
    """
    opts = AlignOptions(size, margin, no_face, select, workers, batch_size, device, threads)
    opts.check()
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise ConfigError(f"--dst must differ from --src (both {src}): the originals are never overwritten")
    plan = _plan_jobs(dataset, src, dst)
    ctx = _Window(opts, geometry.template(size, margin), src, dst)
    t0 = time.perf_counter()
    dst.mkdir(parents=True, exist_ok=True)
    manifest = ManifestWriter(manifest_path(dst))
    pending = _record_existing(plan.jobs, manifest, src, dst)
    print(
        f"[align] {dataset}: {len(plan.jobs)} faces, {len(plan.jobs) - len(pending)} already aligned; "
        f"manifest {manifest.path}",
        file=log,
        flush=True,
    )
    done, computed = _align_pending(pending, ctx, manifest, len(plan.jobs), t0, log)
    _progress(log, done, len(plan.jobs), manifest.counts, t0, computed)
    plan.write_labels({j.line for j in plan.jobs if j.output.exists()})
    return Summary(len(plan.jobs), dict(manifest.counts), manifest.path, time.perf_counter() - t0)


def _plan_jobs(dataset: str, src: Path, dst: Path) -> layouts.Plan:
    """The dataset's jobs; two faces writing one output would silently overwrite each other."""
    plan = layouts.plan(dataset, src, dst)
    seen: dict[Path, layouts.Job] = {}
    for job in plan.jobs:
        if job.output in seen:
            raise DatasetLayoutError(f"two faces map to one output {job.output}: {seen[job.output]} and {job}")
        seen[job.output] = job
    return plan


def _record_existing(jobs: list[layouts.Job], manifest: ManifestWriter, src: Path, dst: Path) -> list[layouts.Job]:
    """Outputs that exist are complete (atomic writes): record them as `exists`; return the rest."""
    pending = []
    for job in jobs:
        if job.output.exists():
            manifest.write(_row(job, src, dst, "exists"))
        else:
            pending.append(job)
    return pending


def _align_pending(
    pending: list[layouts.Job], ctx: _Window, manifest: ManifestWriter, total: int, t0: float, log: IO[str]
) -> tuple[int, int]:
    """Detect and write `pending` window by window; returns (faces done, faces computed here)."""
    opts = ctx.opts
    net = None
    if pending:
        min_face = EXPW_MIN_FACE if any(j.box is not None for j in pending) else MIN_FACE
        net = load_mtcnn(opts.device, min_face_size=min_face, threads=opts.threads)
    # spawn, not fork: this process holds torch's thread pools, which do not survive a fork
    pool: Any = multiprocessing.get_context("spawn").Pool(opts.workers) if opts.workers > 0 and pending else _Inline()
    windows = [pending[i : i + opts.batch_size] for i in range(0, len(pending), opts.batch_size)]
    done, computed, last = total - len(pending), 0, 0.0
    try:
        loading = pool.map_async(load_for_detection, windows[0]) if windows else None
        writing: tuple[Any, list[dict[str, Any]], list[int]] | None = None
        for w, window in enumerate(windows):
            loaded = loading.get()
            if w + 1 < len(windows):  # decode the next window while this one is detected
                loading = pool.map_async(load_for_detection, windows[w + 1])
            rows, tasks, task_rows = _detect_window(net, window, loaded, ctx)
            started = pool.map_async(write_face, tasks)
            if writing is not None:
                done += _finish(writing, manifest)
            writing = (started, rows, task_rows)
            computed += len(window)
            if time.perf_counter() - last > PROGRESS_EVERY_S:
                _progress(log, done, total, manifest.counts, t0, computed)
                last = time.perf_counter()
        if writing is not None:
            done += _finish(writing, manifest)
        pool.close()
    except BaseException:
        if hasattr(pool, "terminate"):
            pool.terminate()  # stop the workers now (e.g. Ctrl-C); finished outputs stay
        raise
    finally:
        pool.join()
        manifest.close()
    return done, computed


def _detect_window(
    net: Any, window: list[layouts.Job], loaded: list[dict[str, Any]], ctx: _Window
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[int]]:
    """Detect, choose, fit: a manifest row per face, the write tasks for the workers, and the
    row each task belongs to."""
    src, dst, opts = ctx.src, ctx.dst, ctx.opts
    ok = [i for i, item in enumerate(loaded) if "error" not in item]
    found = detect(net, [loaded[i]["array"] for i in ok]) if ok else []
    dets: dict[int, list[Detection]] = {
        i: [d.mapped(loaded[i]["scale"], loaded[i]["offset"]) for d in faces]
        for i, faces in zip(ok, found)
    }
    rows: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    task_rows: list[int] = []
    for i, job in enumerate(window):
        if "error" in loaded[i]:
            rows.append(_row(job, src, dst, "error", message=loaded[i]["error"], output=""))
            continue
        chosen, rule = choose_face(dets[i], job.box, opts.select)
        matrix = _fit(chosen.points, ctx.target) if chosen is not None else None
        if chosen is not None and matrix is None:
            chosen, rule = None, "degenerate_landmarks"
        n = len(dets[i])
        if chosen is not None:
            rows.append(_row(job, src, dst, "aligned", policy=rule, n_faces=n, detection=chosen))
        elif opts.no_face == "skip":
            rows.append(_row(job, src, dst, "no_face", policy="skip", n_faces=n, message=rule, output=""))
            continue
        else:
            fallback = "box_crop" if job.box is not None else "center_crop"
            rows.append(_row(job, src, dst, "no_face", policy=fallback, n_faces=n, message=rule))
        tasks.append({"job": job, "matrix": matrix, "size": opts.size, "margin": opts.margin})
        task_rows.append(len(rows) - 1)
    return rows, tasks, task_rows


def _fit(points: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """The similarity onto the template, or None if the landmarks cannot define one."""
    try:
        m = geometry.similarity_transform(points, target)
    except ValueError:
        return None
    if not np.all(np.isfinite(m)) or math.isclose(np.linalg.det(m[:, :2]), 0.0):
        return None
    return m


def _finish(writing: tuple[Any, list[dict[str, Any]], list[int]], manifest: ManifestWriter) -> int:
    """Wait for a window's writes, fold their outcome into its rows, write the rows."""
    started, rows, task_rows = writing
    for outcome, row_index in zip(started.get(), task_rows):
        if outcome:  # the write failed: the row becomes an error without an output
            rows[row_index].update(outcome, output="")
    for row in rows:
        manifest.write(row)
    return len(rows)
