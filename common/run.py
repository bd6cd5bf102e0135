"""Run entry point: `python -m common.run RUN_DIR/spec.json`.

Executes one model × dataset × iteration and writes, next to the spec: status.json (running ->
done | failed | interrupted, with the error class and message on failure), train_log.jsonl,
best.pt, predictions.csv, metrics.json and run.log. Every write is atomic; status 'done' is
written last, so a run that dies at any point is never read as a result. The run does not know
which runner started it.

Reliability: the run holds the folder's lock (common/runlock.py) for its whole life, so a folder
has one writer; a folder locked by another process is left untouched (exit code 75). Its own
stdout/stderr are copied to run.log (common/runlog.py), and a console that goes away (closed
terminal, broken pipe) does not stop it. With FER_PARENT_PID set (the local launcher sets it),
the run stops as `interrupted` when that process is gone, so a killed harness leaves no orphans.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from common.config import ROOT
from common.fingerprint import resolve_weights, weights_fingerprint
from common import logs
from common.io import atomic_write_json, atomic_write_text, file_sha256
from common.metrics import compute
from common.predictions import index_hash
from common.provenance import git_commit
from common.runlock import EXIT_LOCKED, RunLock, RunLocked
from common.runlog import tee_output
from common.spec import RunSpec
from common.status import RunStatus
from common.watchdog import watch_parent


# The run's lines; common/logs.py:setup_run prints them as `[HH:MM:SS] message` into run.log too.
# Named, not __name__: run as `python -m common.run` this module is __main__, outside "common".
logger = logging.getLogger("common.run")


def environment() -> dict[str, Any]:
    import timm
    import torch
    import torchvision

    return {"hostname": socket.gethostname(), "python": platform.python_version(), "git_commit": git_commit(),
            "torch": torch.__version__, "torchvision": torchvision.__version__, "timm": timm.__version__,
            "numpy": np.__version__, "cuda": torch.version.cuda, "platform": platform.platform()}


def resolve_pretrained(adapter: Any, cfg: dict[str, Any]) -> dict[str, Path] | None:
    """Which weight files to load (common/fingerprint.resolve_weights, the rule the plan hashed):
    `none` -> None; `auto` -> the files if all are present, else None with a loud warning; a path."""
    return resolve_weights(adapter.name, tuple(adapter.pretrained_files), dict(adapter.pretrained_aliases), cfg,
                           warn=logger.warning)


def check_weights(spec: RunSpec, paths: dict[str, Path] | None) -> None:
    """The files about to be loaded must be the ones the plan hashed into the spec."""
    if spec.weights is None:  # a spec written before weights were recorded
        return
    found = weights_fingerprint(paths)
    if found != spec.weights:
        raise RuntimeError(f"the weight files changed since the run was planned (planned {spec.weights}, "
                           f"found {found}); plan again (rerun the same command)")


def select_pool_indices(n: int, subset: int | None, seed: int) -> np.ndarray:
    """All of the pool, or a seeded subset kept in pool order (the same for every iteration)."""
    if not subset or subset >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:subset])


def write_predictions(path: Path, ids: list[str], idx: np.ndarray, labels: np.ndarray, logits: np.ndarray,
                      class_names: list[str]) -> None:
    import torch

    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    header = ["sample_id", "pool_index", "label", "pred"] + [f"p_{c}" for c in class_names]
    lines = [",".join(header)]
    for j in range(len(idx)):
        sid = ids[int(idx[j])].replace('"', '""')
        row = [f'"{sid}"', str(int(idx[j])), str(int(labels[j])), str(int(probs[j].argmax()))]
        lines.append(",".join(row + [f"{p:.6f}" for p in probs[j]]))
    atomic_write_text(path, "\n".join(lines) + "\n")


def peak_memory_mb(device: Any) -> float:
    """Peak memory of this process so far: CUDA peak allocated on a GPU, peak RSS on the CPU."""
    import resource

    import torch

    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    # ru_maxrss is KiB on Linux (bytes on macOS)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (2**20 if sys.platform == "darwin" else 2**10), 1)


def training_cost(log_path: Path, n_batches: int, batch_size: int, n_train: int, drop_last: bool,
                  device: Any) -> dict[str, Any]:
    """What the run's training cost, measured on the run itself: seconds per epoch (the mean of
    train_log.jsonl's epoch times, so epochs done before a resume count too; an epoch's time includes
    its validation pass), training images per second, and peak memory."""
    rows = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    seconds = [float(r["seconds"]) for r in rows]
    per_epoch = n_batches * batch_size if drop_last else n_train
    s_per_epoch = sum(seconds) / len(seconds) if seconds else None
    return {"s_per_epoch": round(s_per_epoch, 3) if s_per_epoch else None,
            "train_images_per_s": round(per_epoch / s_per_epoch, 2) if s_per_epoch else None,
            "peak_memory_mb": peak_memory_mb(device)}


def _prepare_device(cfg: dict[str, Any], iteration: int, status: dict[str, Any]) -> tuple[Any, Any]:
    """Threads, device (checked before any data is read), seeds and determinism: (device, generator)."""
    import torch

    from common import gpu
    from common.seeding import seed_everything
    from common.train import resolve_device

    if cfg["train"]["threads"]:
        torch.set_num_threads(int(cfg["train"]["threads"]))
    device = resolve_device(cfg["train"]["device"])
    status["device"] = gpu.preflight(device)  # before any data is read
    generator = seed_everything(iteration)
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    return device, generator


def _load_and_split(spec: RunSpec, status: dict[str, Any]) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """The dataset's pool and this iteration's (train, val, test) pool indices, recorded in `status`."""
    from common import datasets
    from common.splits import make_split, split_hash

    cfg = spec.config
    logger.info(f"loading dataset {spec.dataset}")
    pool = datasets.load_pool(spec.dataset, spec.data_root, exclude_missing=cfg["data"]["exclude_missing"],
                              synthetic=cfg["data"]["synthetic"] if spec.dataset == "synthetic" else None,
                              expw_layout=cfg["data"]["expw_layout"])
    status["excluded"] = pool.excluded
    base = select_pool_indices(len(pool), cfg["data"]["subset"], cfg["protocol"]["random_state"])
    split = make_split(pool.labels[base], spec.iteration, cfg["protocol"])
    train_idx, val_idx, test_idx = base[split.train], base[split.val], base[split.test]
    status.update(split_hash=split_hash(split), pool_size=len(pool), n_used=len(base),
                  n_train=len(train_idx), n_val=len(val_idx), n_test=len(test_idx),
                  test_index_hash=index_hash(test_idx))
    logger.info(f"pool {len(pool)} images ({len(base)} used), split {status['split_hash']}: "
        f"train {len(train_idx)} / val {len(val_idx)} / test {len(test_idx)}")
    return pool, train_idx, val_idx, test_idx


def _build_task(spec: RunSpec, adapter: Any, n_classes: int, counts: Any, status: dict[str, Any]) -> Any:
    """The model's Task, with the pretrained weights the plan hashed (or from scratch)."""
    cfg = spec.config
    task = adapter.build(n_classes, cfg, counts)
    paths = resolve_pretrained(adapter, cfg)
    check_weights(spec, paths)
    if paths:
        report = adapter.load_pretrained(task, paths)
        status["pretrained"] = {"summary": report.summary(), **report.__dict__}
    else:
        status["pretrained"] = {"summary": "scratch"}
    return task


def _test_and_record(task: Any, test_loader: Any, pool: Any, run_dir: Path, device: Any, amp_dtype: Any) -> float:
    """Predict the test fold once, with the selected checkpoint: predictions.csv, metrics.json, accuracy."""
    from common.train import predict

    idx, labels, logits = predict(task, test_loader, device, amp_dtype)
    write_predictions(run_dir / "predictions.csv", pool.ids, idx, labels, logits, pool.class_names)
    metrics = compute(labels, logits.argmax(1), len(pool.class_names))
    atomic_write_json(run_dir / "metrics.json", {**metrics, "class_names": pool.class_names})
    return float((logits.argmax(1) == labels).mean())


def execute(spec: RunSpec, run_dir: Path, status: dict[str, Any]) -> None:
    """One run, start to end: device, data and split, model, training, test predictions; `status`
    collects what the run learns on the way (the caller writes it)."""
    from common import accel, registry
    from common.checkpoint import remove_resume_state
    from common.data import build_loaders
    from common.train import fit

    cfg, tcfg = spec.config, spec.config["train"]
    device, generator = _prepare_device(cfg, spec.iteration, status)
    pool, train_idx, val_idx, test_idx = _load_and_split(spec, status)
    adapter = registry.get_adapter(spec.model)
    task = _build_task(spec, adapter, len(pool.class_names), pool.class_counts(train_idx), status)
    atomic_write_json(run_dir / "status.json", status)

    loaders = build_loaders(pool, train_idx, val_idx, test_idx, adapter.input_spec, cfg, generator)
    status["data_path"] = loaders.info  # decoded cache folder (or none) and per-image | batched augmentation
    n_params = sum(p.numel() for p in task.parameters())
    logger.info(f"{spec.model}: {n_params / 1e6:.2f}M parameters on {status['device']}, "
        f"{tcfg['epochs']} epochs of {len(loaders.train)} batches")
    result = fit(task, loaders.train, loaders.val, cfg, run_dir, device, spec_hash=spec.hash,
                 batch_transform=loaders.batch_transform)
    status.update(training_cost(run_dir / "train_log.jsonl", len(loaders.train), tcfg["batch_size"],
                                len(train_idx), tcfg["drop_last"], device))
    test_acc = _test_and_record(task, loaders.test, pool, run_dir, device, accel.autocast_dtype(tcfg, device))
    logger.info(f"selected epoch {result.best_epoch} (val acc {result.best_val_accuracy:.4f}); test acc {test_acc:.4f}")
    if not tcfg["keep_checkpoint"]:
        (run_dir / "best.pt").unlink(missing_ok=True)
    else:  # `make predict` checks that best.pt is this run's own checkpoint, not one copied in
        status["checkpoint_sha256"] = file_sha256(run_dir / "best.pt")
    status.update(best_epoch=result.best_epoch, epochs_run=result.epochs_run, stopped_early=result.stopped_early,
                  best_val_accuracy=result.best_val_accuracy, num_params=n_params, class_names=pool.class_names,
                  resumes=result.resumes)
    remove_resume_state(run_dir)  # the results are written: nothing left to resume


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m common.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec", type=Path, help="path to a spec.json written by the harness")
    args = ap.parse_args(argv)
    # The harness stops a run with SIGINT; a run started from a background shell would ignore it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    run_dir = args.spec.parent
    try:
        lock = RunLock(run_dir).acquire()
    except RunLocked as e:
        # Another process owns this folder: write nothing into it, not even a log line.
        print(f"error: {e}", file=sys.stderr, flush=True)
        return EXIT_LOCKED
    with lock, tee_output(run_dir / "run.log"):
        logs.setup_run()
        try:
            return _run(args.spec, run_dir)
        except Exception:  # e.g. an unreadable spec: the traceback belongs in run.log too
            traceback.print_exc()
            return 1


def _run(spec_path: Path, run_dir: Path) -> int:
    spec = RunSpec.load(spec_path)
    status: dict[str, Any] = {"status": RunStatus.RUNNING, "spec_hash": spec.hash, "pid": os.getpid(),
                              "started": time.time(), **environment()}
    atomic_write_json(run_dir / "status.json", status)
    logger.info(f"run {spec.model} / {spec.dataset} / iteration {spec.iteration} ({spec.profile} profile) -> {run_dir}")
    code = 0
    watchdog = None
    try:
        watchdog = watch_parent(os.environ.get("FER_PARENT_PID"))
        execute(spec, run_dir, status)
        status["status"] = RunStatus.DONE
    except KeyboardInterrupt:
        gone = watchdog is not None and watchdog.gone
        msg = (f"the process that started this run (pid {watchdog.pid}) is gone" if gone
               else "interrupted by the user")
        status.update(status=RunStatus.INTERRUPTED, error_class="ParentGone" if gone else "KeyboardInterrupt",
                      error_message=msg)
        logger.error(f"INTERRUPTED: {msg}")
        code = 130
    except Exception as e:  # a crashed run is recorded, never lost; the harness goes on
        status.update(status=RunStatus.FAILED, error_class=type(e).__name__, error_message=str(e),
                      traceback=traceback.format_exc())
        logger.error(f"FAILED: {type(e).__name__}: {e}")
        traceback.print_exc()
        code = 1
    finally:
        if watchdog is not None:
            watchdog.stop()
    status["finished"] = time.time()
    status["wall_s"] = round(status["finished"] - status["started"], 2)
    atomic_write_json(run_dir / "status.json", status)
    return code


if __name__ == "__main__":
    sys.exit(main())
