"""In-epoch progress: periodic log lines (time-based) and a bar only on a terminal."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

import common.progress
from common.progress import EpochProgress
from common.train import fit


class Clock:
    """A clock that moves only when told to: 10 s per batch below."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _epoch(n_batches: int, seconds_per_batch: float, terminal=None) -> tuple[list[str], EpochProgress]:
    lines: list[str] = []
    clock = Clock()
    progress = EpochProgress(2, 5, n_batches, lines.append, terminal=terminal, clock=clock, line_interval=30)
    for b in range(n_batches):
        clock.now += seconds_per_batch
        progress.update(b + 1, 1.0 / (b + 1))
    progress.close()
    return lines, progress


def test_a_line_every_interval_but_not_for_the_last_batch(monkeypatch):
    monkeypatch.setattr(sys, "__stderr__", io.StringIO())  # not a terminal: no bar
    lines, progress = _epoch(n_batches=10, seconds_per_batch=10)
    # 30 s apart: batches 3, 6, 9; batch 10 ends the epoch and its own line follows.
    assert [line.split(" loss")[0] for line in lines] == [
        "  epoch 2/5 batch 3/10", "  epoch 2/5 batch 6/10", "  epoch 2/5 batch 9/10"]
    assert lines[0] == "  epoch 2/5 batch 3/10 loss 0.3333 30s elapsed, ~1m10s left"
    assert progress.terminal is None


def test_a_short_epoch_logs_nothing():
    lines, _ = _epoch(n_batches=20, seconds_per_batch=1, terminal=io.StringIO())
    assert lines == []


def test_the_bar_is_drawn_on_the_terminal_and_erased_at_the_end():
    terminal = io.StringIO()
    lines, _ = _epoch(n_batches=4, seconds_per_batch=1, terminal=terminal)
    out = terminal.getvalue()
    frames = out.split("\r")
    assert "[######..................] epoch 2/5 batch 1/4" in out
    assert "[########################] epoch 2/5 batch 4/4 loss 0.2500" in out
    assert frames[-1] == "\x1b[K"  # the last write erases the bar
    assert lines == []


def test_fit_reports_progress_within_epochs(tmp_path: Path, monkeypatch, linear_task):
    monkeypatch.setattr(common.progress, "LINE_INTERVAL_S", 0.0)  # a line at every batch but the last
    monkeypatch.setattr(sys, "__stderr__", io.StringIO())
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)
    data = TensorDataset(x, y, torch.arange(40))
    cfg = {"train": {"amp": False, "optimizer": "sgd", "lr": 0.1, "weight_decay": 0.0, "momentum": 0.0,
                     "scheduler": "none", "scheduler_step": "epoch", "grad_accum": 1, "grad_clip": None,
                     "patience": None, "epochs": 2, "warmup_steps": 0, "batch_size": 8}}
    lines: list[str] = []
    fit(linear_task(), DataLoader(data, batch_size=8), DataLoader(data, batch_size=40), cfg, tmp_path,
        torch.device("cpu"), log=lines.append)
    batch_lines = [line.split(" loss")[0].strip() for line in lines if " batch " in line]
    assert batch_lines == [f"epoch {e}/2 batch {b}/5" for e in (1, 2) for b in (1, 2, 3, 4)]
