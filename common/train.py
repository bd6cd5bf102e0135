"""The training loop, once for every model.

Selection follows the protocol: keep the checkpoint with the best validation accuracy, stop early
when the validation loss has not improved for `patience` epochs; the test fold is evaluated once,
by the caller, on the selected checkpoint. Validation loss is the cross-entropy of the logits of
the model's prediction rule (task.predict), so it means the same thing for every model.
"""
from __future__ import annotations

import json
import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from common import accel
from common.adapter import Task
from common.checkpoint import atomic_torch_save, load_resume_state, rng_state, save_resume_state, set_rng_state
from common.progress import EpochProgress

logger = logging.getLogger(__name__)


# The training loss of each of the first LOGGED_STEPS optimiser steps goes into train_log.jsonl
# (`step_losses` of each epoch's row): `make regress` compares these curves with committed baselines.
LOGGED_STEPS = 100


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the run is recorded as failed."""


@dataclass
class FitResult:
    best_epoch: int
    best_val_accuracy: float
    epochs_run: int
    stopped_early: bool
    resumes: int = 0  # how many times this run continued from last.pt


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={name!r} but CUDA is not available; use device=cpu or auto")
    return device


def build_optimizer(groups: list[dict[str, Any]], tcfg: dict[str, Any]) -> torch.optim.Optimizer:
    name, lr, wd = tcfg["optimizer"], float(tcfg["lr"]), float(tcfg["weight_decay"])
    # Adam(W)'s fused kernel gives the same update up to float rounding in one pass instead of a
    # chain of per-tensor ops: on CPU the unfused step was ~20 % of a DAN step and ~10x slower for MFER.
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=wd, fused=True)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=wd, fused=True)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, weight_decay=wd, momentum=float(tcfg["momentum"]))
    raise ValueError(f"train.optimizer={name!r}; valid: adamw, adam, sgd")


def build_scheduler(opt: torch.optim.Optimizer, tcfg: dict[str, Any]) -> torch.optim.lr_scheduler.LRScheduler | None:
    name = tcfg["scheduler"]
    if name == "cosine":
        # Stepped past T_max, CosineAnnealingLR climbs back up: the reference suite's cyclic schedule.
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(tcfg["t_max"]))
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=int(tcfg["step_size"]), gamma=float(tcfg["gamma"]))
    if name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=float(tcfg["gamma"]))
    if name == "none":
        return None
    raise ValueError(f"train.scheduler={name!r}; valid: cosine, step, exponential, none")


def _step_with_warmup(opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, step: int, warmup: int) -> None:
    """Optimiser step; during the first `warmup` steps the scheduler's lr is scaled by (step+1)/warmup.

    Applied on top of whatever the scheduler set and undone after the step, so warm-up composes
    with per-epoch and per-batch schedules alike."""
    if step >= warmup:
        scaler.step(opt)
        return
    scheduled = [g["lr"] for g in opt.param_groups]
    for g in opt.param_groups:
        g["lr"] *= (step + 1) / warmup
    scaler.step(opt)
    for g, lr in zip(opt.param_groups, scheduled):
        g["lr"] = lr


@torch.no_grad()
def predict(task: Task, loader: DataLoader, device: torch.device,
            amp_dtype: torch.dtype | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pool indices, labels, logits) over a loader, in eval mode; under autocast to `amp_dtype` when
    given (accel.autocast_dtype: the dtype the run trained in)."""
    task.eval()
    idx, ys, logits = [], [], []
    for x, y, i in loader:
        with torch.autocast(device.type, enabled=amp_dtype is not None, dtype=amp_dtype):
            out = task.predict(x.to(device, non_blocking=True))
        logits.append(out.float().cpu())
        ys.append(y)
        idx.append(i)
    return torch.cat(idx).numpy(), torch.cat(ys).numpy(), torch.cat(logits).numpy()


def evaluate(task: Task, loader: DataLoader, device: torch.device,
             amp_dtype: torch.dtype | None = None) -> tuple[float, float]:
    """(cross-entropy, accuracy) of the prediction logits."""
    _, y, logits = predict(task, loader, device, amp_dtype)
    t = torch.from_numpy(logits)
    loss = float(F.cross_entropy(t, torch.from_numpy(y)).item())
    return loss, float((logits.argmax(1) == y).mean())


def _keep_log_rows(path: Path, epochs: int) -> None:
    """train_log.jsonl without the rows of epochs after `epochs` (written before a kill, redone now)."""
    if not path.is_file():
        return
    rows = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line)["epoch"] <= epochs]
    path.write_text("".join(line + "\n" for line in rows), encoding="utf-8")


@dataclass
class _Selection:
    """Best-checkpoint and early-stopping state: the best validation accuracy picks the checkpoint,
    validation loss not improving for `patience` epochs stops the run. Part of last.pt."""

    best_acc: float = -1.0
    best_epoch: int = -1
    best_loss: float = math.inf
    since_best_loss: int = 0
    stopped: bool = False

    def update(self, epoch: int, val_loss: float, val_acc: float) -> bool:
        """Fold in one epoch's validation; True when its accuracy is the best so far."""
        improved = val_acc > self.best_acc
        if improved:
            self.best_acc, self.best_epoch = val_acc, epoch
        if val_loss < self.best_loss:
            self.best_loss, self.since_best_loss = val_loss, 0
        else:
            self.since_best_loss += 1
        return improved

    def state(self) -> dict[str, Any]:
        return {"stopped": self.stopped, "best_accuracy": self.best_acc, "best_epoch": self.best_epoch,
                "best_loss": self.best_loss, "since_best_loss": self.since_best_loss}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "_Selection":
        return cls(best_acc=float(state["best_accuracy"]), best_epoch=int(state["best_epoch"]),
                   best_loss=float(state["best_loss"]), since_best_loss=int(state["since_best_loss"]),
                   stopped=bool(state["stopped"]))


@dataclass
class _Trainer:
    """What the epochs share: the model as stepped, optimiser, schedule, scaler and the step count."""

    task: Task
    step_model: Any
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler
    device: torch.device
    tcfg: dict[str, Any]
    amp_dtype: torch.dtype | None  # autocast dtype (accel.autocast_dtype), for the steps and evaluation alike
    step: int = 0

    @property
    def per_batch(self) -> bool:
        return self.tcfg["scheduler_step"] == "batch"


def _build_trainer(task: Task, device: torch.device, tcfg: dict[str, Any], n_batches: int, n_samples: int) -> _Trainer:
    amp_dtype = accel.autocast_dtype(tcfg, device)
    if tcfg["amp"] and device.type != "cuda":
        # A Python warning, not a log line: tests/common/test_accel.py checks it with pytest.warns.
        warnings.warn("train.amp=true is ignored on CPU (mixed precision here is CUDA only)", stacklevel=3)
    task.to(device)
    step_model = accel.prepare(task, device, tcfg)  # channels-last / compiled on CUDA; `task` itself on CPU
    opt = build_optimizer(task.param_groups(), tcfg)
    sched = build_scheduler(opt, tcfg)
    scaler = torch.amp.GradScaler("cuda", enabled=accel.needs_scaler(amp_dtype is not None, tcfg))
    if n_batches == 0:
        raise ValueError(f"the training split ({n_samples} samples) is smaller than one batch "
                         f"(train.batch_size={tcfg['batch_size']}); lower the batch size")
    return _Trainer(task, step_model, opt, sched, scaler, device, tcfg, amp_dtype)


def _resume(tr: _Trainer, run_dir: Path, spec_hash: str, generator: torch.Generator | None, epochs: int,
            log: Callable[[str], None]) -> tuple[int, int, _Selection]:
    """Continue from last.pt written for `spec_hash`, if any: (first epoch to run, resumes, selection)."""
    log_path, ckpt = run_dir / "train_log.jsonl", run_dir / "best.pt"
    state, why = load_resume_state(run_dir, spec_hash)
    if why:
        logger.warning(why)
    if state is not None and state["best_epoch"] >= 0 and not ckpt.is_file():
        logger.warning(f"{run_dir / 'last.pt'} has no {ckpt.name} beside it; starting from epoch 1")
        state = None
    if state is None:
        log_path.unlink(missing_ok=True)
        return 0, 0, _Selection()
    tr.task.load_state_dict(state["model"])
    tr.opt.load_state_dict(state["optimizer"])
    if tr.sched is not None:
        tr.sched.load_state_dict(state["scheduler"])
    if state["scaler"]:  # empty when written with mixed precision off (a CPU attempt of a GPU run)
        tr.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"], generator)
    start, tr.step = int(state["epoch"]), int(state["step"])
    resumes = int(state["resumes"]) + 1
    _keep_log_rows(log_path, start)
    log(f"resuming from last.pt after epoch {start}/{epochs} (resume {resumes})")
    return start, resumes, _Selection.from_state(state)


def _train_epoch(tr: _Trainer, loader: DataLoader, epoch: int, epochs: int, log: Callable[[str], None],
                 batch_transform: Callable[[torch.Tensor], torch.Tensor] | None) -> dict[str, Any]:
    """One pass over the training loader: the epoch's training loss and accuracy, and the losses of
    the first LOGGED_STEPS optimiser steps it made."""
    tcfg, device, opt = tr.tcfg, tr.device, tr.opt
    accum, clip, warmup, n_batches = int(tcfg["grad_accum"]), tcfg["grad_clip"], int(tcfg["warmup_steps"]), len(loader)
    tr.task.on_epoch_start(epoch)
    tr.task.train()
    opt.zero_grad(set_to_none=True)
    loss_sum, correct, seen = 0.0, 0, 0
    progress = EpochProgress(epoch + 1, epochs, n_batches, log)
    step_losses, step_loss, step_batches = [], 0.0, 0
    for b, (x, y, _) in enumerate(loader):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if batch_transform is not None:
            x = batch_transform(x)
        x = accel.layout(x, device, tcfg)
        with torch.autocast(device.type, enabled=tr.amp_dtype is not None, dtype=tr.amp_dtype):
            out = tr.step_model(x, y)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"training loss is {loss.item()} at epoch {epoch + 1}, batch {b + 1}")
        tr.scaler.scale(loss / accum).backward()
        loss_value = float(loss.detach())
        step_loss, step_batches = step_loss + loss_value, step_batches + 1
        if (b + 1) % accum == 0 or b + 1 == n_batches:
            if clip:
                tr.scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], float(clip))
            _step_with_warmup(opt, tr.scaler, tr.step, warmup)
            if tr.step < LOGGED_STEPS:  # mean over the step's accumulated batches
                step_losses.append(step_loss / step_batches)
            tr.step, step_loss, step_batches = tr.step + 1, 0.0, 0
            tr.scaler.update()
            opt.zero_grad(set_to_none=True)
            if tr.sched is not None and tr.per_batch:
                tr.sched.step()
        loss_sum += loss_value * len(y)
        correct += int((out["logits"].detach().argmax(1) == y).sum())
        seen += len(y)
        progress.update(b + 1, loss_sum / seen)
    progress.close()
    tr.task.on_epoch_end(epoch)
    return {"train_loss": loss_sum / seen, "train_accuracy": correct / seen, "step_losses": step_losses}


def _log_epoch(log_path: Path, row: dict[str, Any], epochs: int, log: Callable[[str], None]) -> None:
    """Append the epoch's row to train_log.jsonl and say it on the console."""
    with open(log_path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    log(f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.3f}  "
        f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.3f}  lr {row['lr']:.2e}  {row['seconds']:.1f}s"
        + ("  *best" if row["best"] else ""))


def _save_last(tr: _Trainer, run_dir: Path, spec_hash: str, epoch: int, sel: _Selection, resumes: int,
               generator: torch.Generator | None) -> None:
    """last.pt after `epoch` (0-based): everything an interrupted run needs to go on identically."""
    save_resume_state(run_dir, {
        "spec_hash": spec_hash, "epoch": epoch + 1, "step": tr.step, "resumes": resumes, **sel.state(),
        "model": tr.task.state_dict(), "optimizer": tr.opt.state_dict(),
        "scheduler": tr.sched.state_dict() if tr.sched is not None else None, "scaler": tr.scaler.state_dict(),
        "rng": rng_state(generator)})


def fit(task: Task, train_loader: DataLoader, val_loader: DataLoader, cfg: dict[str, Any], run_dir: Path,
        device: torch.device, log: Callable[[str], None] | None = None, spec_hash: str = "",
        batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> FitResult:
    """Train with selection on validation. Every epoch ends by writing `last.pt` (model, optimiser,
    scheduler, GradScaler, selection and early-stopping state, every RNG state); a `last.pt` written
    for the same `spec_hash` is continued from, so a run stopped at epoch 63 goes on at epoch 64 and
    ends with the predictions an uninterrupted run would have made. The caller removes last.pt once
    the run's results are written (checkpoint.remove_resume_state). `batch_transform` (batched
    augmentation, common/augment.py) turns each uint8 training batch into the model's input on
    `device`, so on a GPU the augmentation runs there. Progress and epoch lines go to `log` when given
    (a caller collecting them), else to this module's logger; warnings always go to the logger."""
    log = log or logger.info
    tcfg = cfg["train"]
    run_dir = Path(run_dir)
    tr = _build_trainer(task, device, tcfg, len(train_loader), len(train_loader.dataset))
    epochs, patience = int(tcfg["epochs"]), tcfg["patience"]
    log_path, ckpt = run_dir / "train_log.jsonl", run_dir / "best.pt"
    generator = train_loader.generator  # the shuffling stream; its state is part of last.pt
    start, resumes, sel = _resume(tr, run_dir, spec_hash, generator, epochs, log)
    epoch = start - 1
    for epoch in range(start, epochs if not sel.stopped else start):
        t0 = time.time()
        train = _train_epoch(tr, train_loader, epoch, epochs, log, batch_transform)
        lr = tr.opt.param_groups[0]["lr"]
        if tr.sched is not None and not tr.per_batch:
            tr.sched.step()
        val_loss, val_acc = evaluate(task, val_loader, device, tr.amp_dtype)
        improved = sel.update(epoch, val_loss, val_acc)
        if improved:
            atomic_torch_save(task.state_dict(), ckpt)
        step_losses = train.pop("step_losses")
        _log_epoch(log_path, {"epoch": epoch + 1, **train, "val_loss": val_loss, "val_accuracy": val_acc, "lr": lr,
                              "seconds": round(time.time() - t0, 2), "best": improved,
                              **({"step_losses": step_losses} if step_losses else {})}, epochs, log)
        if not math.isfinite(val_loss):
            raise NonFiniteLossError(f"validation loss is {val_loss} at epoch {epoch + 1}")
        if patience is not None and sel.since_best_loss >= patience:
            log(f"early stop: validation loss has not improved for {patience} epochs")
            sel.stopped = True
        # After best.pt: a run killed between the two redoes this epoch from the previous last.pt,
        # and the redone epoch (deterministic) writes the same best.pt again.
        _save_last(tr, run_dir, spec_hash, epoch, sel, resumes, generator)
        if sel.stopped:
            break
    # Select the best-validation-accuracy checkpoint, read back the way any checkpoint is read.
    task.load_state_dict(torch.load(ckpt, map_location=device, weights_only=True))
    return FitResult(best_epoch=sel.best_epoch + 1, best_val_accuracy=sel.best_acc, epochs_run=epoch + 1,
                     stopped_early=sel.stopped, resumes=resumes)
