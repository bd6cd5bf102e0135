"""The measurements behind `make bench` (harness/bench.py runs this in a subprocess and prints the table).

    python -m common.bench --model dan --out bench.json [--size 224] [--batch-size 32] [--workers 2]

On generated data of realistic size (RAF-DB-like 100x100 JPEGs, FER2013-like rows of 2304 pixel
values as text), in one process, side by side and with the same worker count:

- reference-style loader: per sample, PIL decode (FER2013: the text row parsed), the model's
  resize and the recipe's per-image torchvision augmentation, as the reference scripts do;
- this suite's data path as a run takes it: the decoded cache (built once, its time reported apart)
  read as uint8 batches in the training process (common/data.build_loaders uses no workers for
  them), then the batched tensor augmentation (common/augment.py) on the training device;
- the suite's loader alone (uint8 batches, augmentation left to the device): what the CPU has to
  deliver when the augmentation runs on a GPU;
- the float32 floor (FER2013): the suite's loader plus the conversion to normalised float32 and nothing
  else, the least any data path that hands the model float32 batches of this size must spend;
- the compute ceiling: training steps on one in-memory batch (no data loading at all);
- end to end: training steps fed by the suite's loader, augmentation inside the clock.

Each pair (reference vs suite, ceiling vs end to end) is measured in alternating passes or steps,
so load from other processes on a shared machine falls on both sides alike and the ratios stay fair.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

# Sizes of the generated data: enough batches for a steady rate, little enough for 2 cores.
N_JPEG = 512
N_FER = 2048
JPEG_SIDE = 100  # RAF-DB's aligned images
FER_SIDE = 48


def _faces(n: int, side: int, seed: int = 0) -> np.ndarray:
    """Smooth random images (a blurred gradient and blobs) that compress like photos, not like noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    out = np.empty((n, side, side, 3), dtype=np.uint8)
    for i in range(n):
        cx, cy, r = rng.uniform(0.3, 0.7, 3)
        base = 120 + 80 * np.sin(6 * xx * rng.uniform(0.5, 2) + 4 * yy * rng.uniform(0.5, 2))
        blob = 60 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.05 * r))
        img = base + blob + rng.normal(0, 6, (side, side))
        out[i] = np.clip(img[..., None] * rng.uniform(0.8, 1.1, 3), 0, 255).astype(np.uint8)
    return out


def make_jpeg_pool(folder: Path, n: int = N_JPEG):
    from PIL import Image

    from common.datasets.base import Pool

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(_faces(n, JPEG_SIDE)):
        path = folder / f"train_{i:05d}_aligned.jpg"
        Image.fromarray(img).save(path, quality=95)
        paths.append(str(path))
    labels = np.arange(n) % 7
    return Pool(name="bench-jpeg", class_names=[str(c) for c in range(7)], ids=[Path(p).stem for p in paths],
                labels=labels, root=str(folder), paths=paths)


def make_fer_rows(n: int = N_FER) -> tuple[list[str], np.ndarray]:
    grey = _faces(n, FER_SIDE, seed=1)[..., 0]
    return [" ".join(map(str, img.ravel().tolist())) for img in grey], np.arange(n) % 7


class ReferenceJpeg:
    """A reference-style Dataset: open, decode and transform one JPEG per sample."""

    def __init__(self, paths: list[str], labels: np.ndarray, transform: Callable) -> None:
        self.paths, self.labels, self.transform = paths, labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.open(self.paths[i]).convert("RGB")), int(self.labels[i])


class ReferenceFer:
    """A reference-style FER2013 Dataset: the pixel text row parsed per sample."""

    def __init__(self, rows: list[str], labels: np.ndarray, transform: Callable) -> None:
        self.rows, self.labels, self.transform = rows, labels, transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        from PIL import Image

        pixels = np.asarray([int(v) for v in self.rows[i].split()], dtype=np.uint8).reshape(FER_SIDE, FER_SIDE)
        return self.transform(Image.fromarray(pixels).convert("RGB")), int(self.labels[i])


def _pass(loader: Any, transform: Callable | None, device: Any, skip_first: bool) -> tuple[int, float]:
    """(images, seconds) of one pass over `loader`; `transform`: the batched augmentation, applied to
    each batch on `device` as the training loop does. `skip_first`: leave the first batch out of the
    count and the clock (worker start-up)."""
    import torch

    seen, t0 = 0, None if skip_first else time.perf_counter()
    for batch in loader:
        x = batch[0]
        if transform is not None:
            x = transform(x.to(device, non_blocking=True))
            if device.type == "cuda":
                torch.cuda.synchronize()
        if t0 is None:
            t0 = time.perf_counter()
            continue
        seen += len(x)
    return seen, time.perf_counter() - t0


def paired_images_per_s(feeds: dict[str, tuple[Any, Callable | None]], device: Any, passes: int = 3) -> dict[str, float]:
    """Images per second of each loader, measured in alternating passes (A, B, A, B, ...), so load
    from other processes that comes and goes falls on every loader alike and the ratio between them
    stays fair. Workers persist across passes, as over a run's epochs; between passes they idle."""
    seen = {name: 0 for name in feeds}
    spent = {name: 0.0 for name in feeds}
    for k in range(passes):
        for name, (loader, transform) in feeds.items():
            n, dt = _pass(loader, transform, device, skip_first=k == 0)
            seen[name] += n
            spent[name] += dt
    return {name: seen[name] / spent[name] for name in feeds}


def _loader(dataset: Any, batch: int, workers: int, collate: Callable | None = None):
    import torch
    from torch.utils.data import DataLoader

    from common.seeding import worker_init

    return DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                      generator=torch.Generator().manual_seed(0), worker_init_fn=worker_init,
                      pin_memory=torch.cuda.is_available(), collate_fn=collate, persistent_workers=workers > 0)


def _step(task: Any, opt: Any, x: Any, y: Any, device: Any) -> None:
    import torch

    loss = task(x, y)["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def _train_steps(task: Any, opt: Any, batches: Any, device: Any, steps: int) -> float:
    """Images per second of `steps` training steps (after one warm-up step) on `batches`."""
    task.train()
    seen, t0 = 0, None
    for k, (x, y, *_) in enumerate(batches):
        _step(task, opt, x.to(device, non_blocking=True), y.to(device, non_blocking=True), device)
        if t0 is None:
            t0 = time.perf_counter()
        else:
            seen += len(x)
        if k >= steps:
            break
    return seen / (time.perf_counter() - t0)


def paired_train_steps(task: Any, opt: Any, batch: tuple[Any, Any], feed: Any, device: Any, steps: int,
                       transform: Callable | None = None) -> tuple[float, float]:
    """(ceiling, end-to-end) images per second, one step of each in turn after one warm-up step of
    each: the ceiling steps on one in-memory batch (no data loading at all), the end-to-end steps
    take their batch from `feed` (the suite's loader) and augment it with `transform` inside the
    clock. Alternating keeps load from other processes out of the ratio."""
    task.train()
    x0, y0 = batch[0].to(device), batch[1].to(device)
    spent = [0.0, 0.0]
    seen = [0, 0]
    for k in range(steps + 1):
        t0 = time.perf_counter()
        _step(task, opt, x0, y0, device)
        t1 = time.perf_counter()
        x, y, *_ = next(feed)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if transform is not None:
            x = transform(x)
        _step(task, opt, x, y, device)
        t2 = time.perf_counter()
        if k:  # the first pair warms up (allocator, thread pool, first-batch costs)
            spent[0] += t1 - t0
            spent[1] += t2 - t1
            seen[0] += len(x0)
            seen[1] += len(x)
    return seen[0] / spent[0], seen[1] / spent[1]


def measure(model: str, size: int | None, batch: int, workers: int, threads: int, steps: int,
            device_name: str, log: Callable[[str], None] = print, n_jpeg: int = N_JPEG,
            n_fer: int = N_FER) -> dict[str, Any]:
    import itertools

    import torch
    import torchvision

    from common import cache, config, registry
    from common.augment import BatchAugment, batch_collate
    from common.data import PoolDataset
    from common.datasets.base import Pool
    from common.datasets.fer2013 import parse_pixels
    from common.train import build_optimizer, resolve_device
    from common.transforms import batch_train_transform, resize_op, train_transform

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = resolve_device(device_name)
    cfg = config.resolve(model, "rafdb", "full", {"data": {"image_size": size}} if size else None)
    adapter = registry.get_adapter(model)
    spec = adapter.input_spec
    size = int(cfg["data"]["image_size"] or spec.size)
    cfg["data"]["image_size"] = size
    per_image = train_transform(spec, cfg)
    resize = resize_op(spec, size)
    # The suite's path as a run takes it: batched (RandAugment included): the loader reads uint8 batches
    # and the training process augments them on its device.
    collate, on_device = batch_collate(None), batch_train_transform(spec, cfg)
    normalise_only = BatchAugment(mean=tuple(spec.mean), std=tuple(spec.std), hflip=False)
    out: dict[str, Any] = {"model": model, "image_size": size, "batch_size": batch, "workers": workers,
                           "n_jpeg": n_jpeg, "n_fer2013": n_fer,
                           "threads": threads, "device": str(device), "augment": {k: cfg["augment"][k] for k in
                           ("hflip", "random_apply_p", "rotation", "crop_padding", "randaugment", "erasing",
                            "erasing_scale")},
                           "suite_augmentation": f"batched on {device}"}
    with tempfile.TemporaryDirectory(prefix="fer-bench-") as tmp:
        tmp = Path(tmp)
        log(f"generating {n_jpeg} {JPEG_SIDE}x{JPEG_SIDE} JPEGs and {n_fer} FER2013 text rows")
        pool = make_jpeg_pool(tmp / "jpeg", n_jpeg)
        rows, fer_labels = make_fer_rows(n_fer)

        t0 = time.perf_counter()
        images = cache.decoded_images(pool, size, spec.interpolation, resize, log=log, root=tmp / "cache")
        out["jpeg_cache_build_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        fer = Pool(name="bench-fer2013", class_names=[str(c) for c in range(7)], ids=[f"{i:05d}" for i in range(len(rows))],
                   labels=fer_labels, pixels=parse_pixels(rows))
        fer_images = cache.decoded_images(fer, size, spec.interpolation, resize, log=log, root=tmp / "cache")
        out["fer2013_parse_and_cache_s"] = round(time.perf_counter() - t0, 2)
        suite = PoolDataset(pool, np.arange(len(pool)), None, images, resize)
        fer_suite = PoolDataset(fer, np.arange(len(fer)), None, fer_images, resize)
        # As common/data.build_loaders: batches read from the cache need no worker processes.
        suite_workers = 0
        out["suite_loader_workers"] = suite_workers

        log("JPEG: reference-style loader and this suite's data path (decoded cache + batched augmentation), "
            "alternating passes")
        rates = paired_images_per_s({"reference": (_loader(ReferenceJpeg(pool.paths, pool.labels, per_image), batch, workers), None),
                                     "suite": (_loader(suite, batch, suite_workers, collate), on_device),
                                     "loader": (_loader(suite, batch, suite_workers, collate), None)}, device)
        out["jpeg_reference_ips"], out["jpeg_suite_ips"] = rates["reference"], rates["suite"]
        out["jpeg_suite_loader_ips"] = rates["loader"]
        log("FER2013: reference-style loader (text row parsed per sample) and this suite's data path, alternating")
        rates = paired_images_per_s({"reference": (_loader(ReferenceFer(rows, fer_labels, per_image), batch, workers), None),
                                     "suite": (_loader(fer_suite, batch, suite_workers, collate), on_device),
                                     "loader": (_loader(fer_suite, batch, suite_workers, collate), None),
                                     "floor": (_loader(fer_suite, batch, suite_workers, collate), normalise_only)},
                                    device)
        out["fer2013_reference_ips"], out["fer2013_suite_ips"] = rates["reference"], rates["suite"]
        out["fer2013_suite_loader_ips"], out["fer2013_float_floor_ips"] = rates["loader"], rates["floor"]

        log(f"{model}: compute ceiling (one in-memory batch) and end to end (fed by the suite's loader), "
            f"{steps} steps each, alternating")
        task = adapter.build(7, cfg, pool.class_counts()).to(device)
        opt = build_optimizer(task.param_groups(), cfg["train"])
        x, y, _ = next(iter(_loader(suite, batch, 0, collate)))
        x = on_device(x.to(device))
        feed = iter(itertools.chain.from_iterable(itertools.repeat(_loader(suite, batch, suite_workers, collate))))
        out["compute_ceiling_ips"], out["end_to_end_ips"] = paired_train_steps(task, opt, (x, y), feed, device, steps,
                                                                               on_device)
    out["data_ratio_jpeg"] = out["jpeg_suite_ips"] / out["jpeg_reference_ips"]
    out["data_ratio_fer2013"] = out["fer2013_suite_ips"] / out["fer2013_reference_ips"]
    out["end_to_end_over_ceiling"] = out["end_to_end_ips"] / out["compute_ceiling_ips"]
    # The most data_ratio_fer2013 could be on this device if flip, rotation, crop and erasing cost nothing.
    out["floor_ratio_fer2013"] = out["fer2013_float_floor_ips"] / out["fer2013_reference_ips"]
    out = {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}
    out["versions"] = {"python": platform.python_version(), "torch": torch.__version__,
                       "torchvision": torchvision.__version__, "numpy": np.__version__, "cuda": torch.version.cuda}
    out["host"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                   "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    return out


def step_time(model: str, size: int | None, batch: int, threads: int, steps: int, device_name: str) -> dict[str, Any]:
    """Seconds per training step of `model` on one in-memory batch (random pixels) on the device: what
    `make plan ESTIMATE=1` multiplies by a sweep's step count."""
    import itertools

    import torch

    from common import config, registry
    from common.train import build_optimizer, resolve_device

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = resolve_device(device_name)
    cfg = config.resolve(model, "rafdb", "full", {"data": {"image_size": size}} if size else None)
    adapter = registry.get_adapter(model)
    size = int(cfg["data"]["image_size"] or adapter.input_spec.size)
    task = adapter.build(7, cfg, [batch] * 7).to(device)
    opt = build_optimizer(task.param_groups(), cfg["train"])
    x, y = torch.randn(batch, 3, size, size), torch.arange(batch) % 7
    ips = _train_steps(task, opt, itertools.repeat((x, y)), device, steps)
    return {"model": model, "image_size": size, "batch_size": batch, "threads": threads, "device": str(device),
            "step_s": round(batch / ips, 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m common.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="dan")
    ap.add_argument("--size", type=int, default=None, help="image size (default: the model's)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers, the same for both loaders")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the training process")
    ap.add_argument("--steps", type=int, default=4, help="timed training steps (after one warm-up step)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n-jpeg", type=int, default=N_JPEG, help="generated JPEGs")
    ap.add_argument("--n-fer", type=int, default=N_FER, help="generated FER2013 rows")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--step-time", action="store_true", help="only time training steps (for make plan ESTIMATE=1)")
    args = ap.parse_args(argv)
    if args.step_time:
        result = step_time(args.model, args.size, args.batch_size, args.threads, args.steps, args.device)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        return 0
    result = measure(args.model, args.size, args.batch_size, args.workers, args.threads, args.steps, args.device,
                     log=lambda m: print(f"[bench] {m}", flush=True), n_jpeg=args.n_jpeg, n_fer=args.n_fer)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
