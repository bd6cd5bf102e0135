"""`python -m harness bench` (make bench): the data path and the training step measured side by side.

The measurements run in a subprocess (`python -m common.bench`, which imports torch and the model),
so the harness itself stays importable where torch is not installed. Per model, one table row set
and one entry of <results>/bench/bench.json:

- images/s of a reference-style per-sample loader (PIL decode or FER2013's text row parsed per
  sample, per-image torchvision augmentation) and of this suite's data path (decoded cache + batched
  augmentation), on generated RAF-DB-like JPEGs and FER2013-like rows, with the same worker count;
- images/s of training steps on one in-memory batch (the compute ceiling) and fed by the suite's
  loader (end to end);
- the ratios data_ratio_jpeg, data_ratio_fer2013, end_to_end_over_ceiling against TARGETS.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common.config import ROOT
from common.io import atomic_write_json

# What the suite promises on 2 CPU cores (same worker count for both loaders).
TARGETS = {"data_ratio_jpeg": 3.0, "data_ratio_fer2013": 20.0, "end_to_end_over_ceiling": 0.9}
_ROWS = [("reference loader, JPEG", "jpeg_reference_ips"), ("suite data path, JPEG", "jpeg_suite_ips"),
         ("suite loader alone (augmentation left to the device), JPEG", "jpeg_suite_loader_ips"),
         ("reference loader, FER2013 rows", "fer2013_reference_ips"), ("suite data path, FER2013", "fer2013_suite_ips"),
         ("suite loader alone (augmentation left to the device), FER2013", "fer2013_suite_loader_ips"),
         ("suite loader + float32 conversion only (no augmentation: the floor), FER2013", "fer2013_float_floor_ips"),
         ("training, in-memory batch (ceiling)", "compute_ceiling_ips"), ("training, end to end", "end_to_end_ips")]


def measure(model: str, args: list[str], timeout: float | None = None) -> dict[str, Any]:
    """One `python -m common.bench` run for `model`; its JSON plus each ratio's target and verdict."""
    with tempfile.TemporaryDirectory(prefix="fer-bench-") as tmp:
        out = Path(tmp) / "bench.json"
        cmd = [sys.executable, "-m", "common.bench", "--model", model, "--out", str(out), *args]
        done = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"bench of {model} failed (exit {done.returncode}): {' '.join(cmd)}")
        result = json.loads(out.read_text(encoding="utf-8"))
    result["targets"] = {k: {"target": v, "met": result[k] >= v} for k, v in TARGETS.items()}
    return result


def table(result: dict[str, Any]) -> str:
    """The printed table of one model's measurement."""
    head = (f"{result['model']} at {result['image_size']} px on {result['device']}: batch {result['batch_size']}, "
            f"{result['workers']} workers, {result['threads']} threads")
    lines = [head, "", "| measured | images/s |", "|---|---:|"]
    lines += [f"| {name} | {result[key]:.1f} |" for name, key in _ROWS]
    lines += ["", "| ratio | value | target | met |", "|---|---:|---:|---|"]
    lines += [f"| {k} | {result[k]:.2f} | >= {t['target']:g} | {'yes' if t['met'] else 'NO'} |"
              for k, t in result["targets"].items()]
    if "floor_ratio_fer2013" in result:
        lines.append(f"floor: with augmentation costing nothing, the FER2013 ratio could reach "
                     f"{result['floor_ratio_fer2013']:.2f} on this device")
    lines.append(f"one-time costs: JPEG cache {result['jpeg_cache_build_s']} s, "
                 f"FER2013 parse + cache {result['fer2013_parse_and_cache_s']} s")
    return "\n".join(lines)


def bench(args: argparse.Namespace) -> int:
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    extra = ["--batch-size", str(args.batch_size), "--workers", str(args.workers), "--threads", str(args.threads),
             "--steps", str(args.steps), "--device", args.device]
    if args.size:
        extra += ["--size", str(args.size)]
    if args.n_jpeg:
        extra += ["--n-jpeg", str(args.n_jpeg)]
    if args.n_fer:
        extra += ["--n-fer", str(args.n_fer)]
    results = [measure(m, extra) for m in models]
    out = args.out or args.results / "bench" / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, {"runs": results})
    for r in results:
        print("\n" + table(r))
    print(f"\nwrote {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """The `bench` subcommand of `python -m harness`."""
    p = sub.add_parser("bench", help="data path vs reference-style loader vs training step, side by side (make bench)")
    p.add_argument("--model", default="dan", help="model name(s), comma-separated (default: dan)")
    p.add_argument("--size", type=int, default=None, help="image size (default: the model's input size)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers, the same for both loaders (default 2)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the training process (default 2)")
    p.add_argument("--steps", type=int, default=4, help="timed training steps per measurement (default 4)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--n-jpeg", type=int, default=None, help="generated JPEGs (default 512)")
    p.add_argument("--n-fer", type=int, default=None, help="generated FER2013 rows (default 2048)")
    p.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: results)")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default: <results>/bench/bench.json)")
    p.set_defaults(func=bench)
