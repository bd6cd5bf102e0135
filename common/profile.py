"""Efficiency of one model: `python -m common.profile MODEL --out row.json`.

What a FER comparison table needs beside accuracy, measured the same way for every model at its input
size: total and trainable parameters; multiply-accumulates (MACs) of one forward pass of the model's
prediction rule at batch 1, counted by torch's own FlopCounterMode (which counts 2 FLOPs per MAC), not by
hand-written formulas; inference latency at batch 1 and throughput at `--batch`; the throughput of one
training step (forward with the losses, backward, optimiser step) at `--train-batch`; and peak memory
(CUDA peak allocated on a GPU; the process's peak RSS on the CPU, interpreter and torch included). Each
timing is a median over `--repeats` timed calls after `--warmup` untimed ones, as timm's benchmark does.

One model per process, so that peak RSS belongs to that model alone; `python -m harness profile` runs
one such process per model and writes the table. Torch lives here; the harness stays torch-free.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from common import config, registry
from common.io import atomic_write_json
from common.run import environment, peak_memory_mb
from common.train import build_optimizer, resolve_device
from common.transforms import image_size

NUM_CLASSES = 7  # the six datasets but FERPlus have 7 classes


def count_macs(module: Callable[..., Any], *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one call of `module(*inputs)`, counted by torch.utils.flop_counter
    (which reports FLOPs as 2 per multiply-accumulate of matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops() // 2


def median_seconds(fn: Callable[[], Any], warmup: int, repeats: int, device: torch.device) -> float:
    """Median wall time of `fn()` over `repeats` calls after `warmup` untimed calls (CUDA synchronised)."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def device_slug(device: torch.device) -> str:
    """A file name for the device: `cpu`, or the GPU's name (`nvidia-h200`)."""
    if device.type != "cuda":
        return device.type
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")


def profile_model(model: str, *, dataset: str = "rafdb", device: str = "auto", batch: int = 64,
                  train_batch: int = 64, warmup: int = 3, repeats: int = 10,
                  overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of the profile table (see the module docstring). The model is built as `dataset`'s full
    profile builds it (its input size, model keys), untrained: weights do not change the cost."""
    dev = resolve_device(device)
    cfg = config.resolve(model, dataset, "full", {**(overrides or {}), "pretrained": "none"})
    adapter = registry.get_adapter(model)
    size = image_size(adapter.input_spec, cfg)
    torch.manual_seed(0)
    task = adapter.build(NUM_CLASSES, cfg, [1] * NUM_CLASSES).to(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    row: dict[str, Any] = {
        "model": model, "dataset": dataset, "image_size": size,
        "params_m": round(sum(p.numel() for p in task.parameters()) / 1e6, 4),
        "trainable_params_m": round(sum(p.numel() for p in task.parameters() if p.requires_grad) / 1e6, 4)}

    task.eval()
    one = torch.randn(1, 3, size, size, device=dev)
    row["gmacs"] = round(count_macs(task.predict, one) / 1e9, 4)
    with torch.no_grad():
        latency = median_seconds(lambda: task.predict(one), warmup, repeats, dev)
        many = torch.randn(batch, 3, size, size, device=dev)
        per_batch = median_seconds(lambda: task.predict(many), warmup, repeats, dev)
    row.update(latency_ms=round(latency * 1e3, 3), batch=batch, infer_images_per_s=round(batch / per_batch, 2))

    task.train()
    opt = build_optimizer(task.param_groups(), cfg["train"])
    x = torch.randn(train_batch, 3, size, size, device=dev)
    y = torch.arange(train_batch, device=dev) % NUM_CLASSES

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        task(x, y)["loss"].backward()
        opt.step()

    # Fewer repeats: a training step costs ~3 forward passes at a larger batch.
    train_s = median_seconds(step, min(warmup, 2), max(1, repeats // 2), dev)
    env = environment()
    row.update(train_batch=train_batch, train_images_per_s=round(train_batch / train_s, 2),
               peak_memory_mb=peak_memory_mb(dev), memory_kind="cuda_peak_allocated" if dev.type == "cuda"
               else "peak_rss", device=device_slug(dev), device_detail=_describe(dev),
               threads=torch.get_num_threads(), dtype="float32", warmup=warmup, repeats=repeats,
               torch=env["torch"], torchvision=env["torchvision"], timm=env["timm"], cuda=env["cuda"] or "",
               python=env["python"], git_commit=env["git_commit"], hostname=env["hostname"])
    return row


def _describe(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)}"
    import platform

    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m common.profile", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a registered model name")
    ap.add_argument("--out", type=Path, required=True, help="JSON file for the row")
    ap.add_argument("--dataset", default="rafdb", help="whose configuration sets the input size (default: rafdb)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--batch", type=int, default=64, help="inference throughput batch (default: 64)")
    ap.add_argument("--train-batch", type=int, default=64, help="training step batch (default: 64)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                    help="config overrides, e.g. data.image_size=112")
    args = ap.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            ap.error(f"--threads {args.threads}: give an integer >= 1")
        torch.set_num_threads(args.threads)
    for name in ("batch", "train_batch"):
        if getattr(args, name) < 2:  # BatchNorm in training mode needs 2 samples
            ap.error(f"--{name.replace('_', '-')} {getattr(args, name)}: give an integer >= 2")
    row = profile_model(args.model, dataset=args.dataset, device=args.device, batch=args.batch,
                        train_batch=args.train_batch, warmup=args.warmup, repeats=args.repeats,
                        overrides=config.parse_overrides(args.overrides))
    atomic_write_json(args.out, row)
    print(f"{args.model}: {row['params_m']:.2f}M params, {row['gmacs']:.3f} GMACs at {row['image_size']} px, "
          f"{row['latency_ms']:.1f} ms at batch 1, {row['infer_images_per_s']:.1f} img/s inference, "
          f"{row['train_images_per_s']:.1f} img/s training, peak {row['peak_memory_mb']:.0f} MB on {row['device']}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
