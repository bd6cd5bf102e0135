"""`make plan ... ESTIMATE=1`: the device-hours a sweep will take, printed before anything starts.

Per model, a few training steps are timed on this machine (`python -m common.bench --step-time`, a
subprocess, so the harness stays torch-free) at the planned image size, batch size and threads; the
seconds per step are cached in $FER_CACHE_DIR/estimate/ (default .cache/estimate/) per host, so the next
plan prints at once. A run's steps are its epochs times the batches of its training split (60 % of the
pool it uses, or of data.subset). This is an upper bound on training time: early stopping can end a run
sooner, and the validation passes (a forward pass over a fifth of the pool per epoch) are not counted.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from common import config
from common.config import ROOT
from common.status import RunStatus

TIMED_STEPS = 3


def cache_dir() -> Path:
    base = Path(os.environ["FER_CACHE_DIR"]) if os.environ.get("FER_CACHE_DIR") else ROOT / ".cache"
    return base / "estimate"


def pool_size(spec: Any) -> int:
    """Samples the run uses: data.subset, the synthetic n, the image count of the dataset's fingerprint,
    else the label file's line count (FER2013 keeps its images in the label file)."""
    cfg = spec.config
    if spec.dataset == "synthetic":
        n = int(cfg["data"]["synthetic"]["n"])
    elif (spec.dataset_fingerprint or {}).get("images"):
        n = int(spec.dataset_fingerprint["images"])
    else:
        from common import datasets

        module = datasets._module(spec.dataset)
        with open(datasets.dataset_dir(spec.dataset, spec.data_root) / module.LABEL_FILE, "rb") as f:
            n = max(0, sum(1 for _ in f) - 1)
    subset = cfg["data"]["subset"]
    return min(n, int(subset)) if subset else n


def steps_per_run(spec: Any) -> int:
    cfg = spec.config
    n_train = int(pool_size(spec) * (1 - cfg["protocol"]["test_size"]) * (1 - cfg["protocol"]["val_size"]))
    batch = int(cfg["train"]["batch_size"])
    batches = n_train // batch if cfg["train"]["drop_last"] else -(-n_train // batch)
    return int(cfg["train"]["epochs"]) * max(batches, 1)  # one forward/backward per batch, as timed


def measure_step(model: str, size: int | None, batch: int, threads: int, device: str) -> float:
    """Seconds per training step, measured in a subprocess (cached per host, model, size, batch, threads, device)."""
    key = f"{socket.gethostname()}-{model}-{size or 'model'}px-b{batch}-t{threads}-{device}.json"
    path = cache_dir() / key
    if path.is_file():
        return float(json.loads(path.read_text(encoding="utf-8"))["step_s"])
    with tempfile.TemporaryDirectory(prefix="fer-estimate-") as tmp:
        out = Path(tmp) / "step.json"
        cmd = [sys.executable, "-m", "common.bench", "--step-time", "--model", model, "--batch-size", str(batch),
               "--threads", str(threads), "--steps", str(TIMED_STEPS), "--device", device, "--out", str(out)]
        if size:
            cmd += ["--size", str(size)]
        done = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"timing {model} failed (exit {done.returncode}): {done.stderr[-2000:]}")
        result = json.loads(out.read_text(encoding="utf-8"))
    try:  # a cache that cannot be written only means measuring again next time
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result) + "\n", encoding="utf-8")
    except OSError as e:
        print(f"estimate: cannot cache step times in {path.parent} ({e.strerror or e})", flush=True)
    return float(result["step_s"])


def estimate(planned: list[Any], measure: Callable[..., float] = measure_step) -> list[dict[str, Any]]:
    """One row per model over the runs that are not done: runs, seconds per step, steps, device-hours."""
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: {"runs": 0, "steps": 0, "hours": 0.0, "step_s": set()})
    for p in planned:
        if p.state == RunStatus.DONE:
            continue
        cfg = p.spec.config
        # The threads a run will get: its own setting, else the cores split among the profile's parallel
        # runs, as `harness run` splits them.
        jobs = int(config.profiles().get(p.spec.profile, {}).get("jobs") or 1)
        threads = int(cfg["train"]["threads"] or max(1, (os.cpu_count() or 1) // jobs))
        step_s = measure(p.spec.model, cfg["data"]["image_size"], int(cfg["train"]["batch_size"]), threads,
                         cfg["train"]["device"])
        steps = steps_per_run(p.spec)
        row = rows[p.spec.model]
        row["runs"] += 1
        row["steps"] += steps
        row["hours"] += steps * step_s / 3600
        row["step_s"].add(step_s)
    return [{"model": m, "runs": r["runs"], "steps": r["steps"], "hours": r["hours"],
             "step_s": sorted(r["step_s"])} for m, r in rows.items()]


def render(rows: list[dict[str, Any]]) -> str:
    lines = ["", "estimate (training steps timed on this machine; early stopping and validation not counted):",
             f"{'model':10s} {'runs':>5s} {'s/step':>14s} {'steps':>10s} {'device-hours':>13s}"]
    for r in rows:
        per_step = "/".join(f"{s:.3f}" for s in r["step_s"])
        lines.append(f"{r['model']:10s} {r['runs']:5d} {per_step:>14s} {r['steps']:10d} {r['hours']:13.2f}")
    total = sum(r["hours"] for r in rows)
    lines.append(f"{'total':10s} {sum(r['runs'] for r in rows):5d} {'':>14s} {sum(r['steps'] for r in rows):10d} "
                 f"{total:13.2f}")
    return "\n".join(lines)
