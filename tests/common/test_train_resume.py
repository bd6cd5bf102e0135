"""Mid-run resume: a run stopped after an epoch continues from its last.pt and ends exactly where an
uninterrupted run ends. Real `python -m harness run` / `python -m common.run` subprocesses on CPU with
the test-only `tiny` model (tests/fixtures/models/tiny), which can SIGKILL itself at an epoch."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader, TensorDataset

from common.adapter import Task
from common.io import read_json
from common.train import fit

REPO = Path(__file__).resolve().parents[2]
SMALL = ["data.synthetic.n=300", "data.synthetic.size=48", "data.image_size=32", "train.threads=1",
         "data.num_workers=0", "train.epochs=3", "train.t_max=3"]


def _sweep(results: Path, cache: Path, **env_extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, FER_MODELS_PATH=str(REPO / "tests" / "fixtures" / "models"), FER_CACHE_DIR=str(cache),
               PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **env_extra)
    cmd = [sys.executable, "-m", "harness", "run", "--model", "tiny", "--dataset", "synthetic", "--profile", "quick",
           "--iterations", "1", "--jobs", "1", "--results", str(results), "--set", *SMALL]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _run_dir(results: Path) -> Path:
    (found,) = (results / "runs" / "tiny" / "synthetic").glob("*/iter-0")
    return found


def test_a_run_killed_after_epoch_1_resumes_and_ends_as_an_uninterrupted_run(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    whole = _sweep(tmp_path / "whole", cache)
    assert whole.returncode == 0, whole.stdout[-3000:]

    # The run kills itself (SIGKILL: nothing of it survives but its files) at the first batch of epoch 2.
    killed = _sweep(tmp_path / "resumed", cache, FER_TINY_FAIL="kill:0")
    run_dir = _run_dir(tmp_path / "resumed")
    assert read_json(run_dir / "status.json")["status"] != "done", killed.stdout[-3000:]
    last = torch.load(run_dir / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and last["resumes"] == 0

    again = _sweep(tmp_path / "resumed", cache)
    assert again.returncode == 0, again.stdout[-3000:]
    status = read_json(run_dir / "status.json")
    assert status["status"] == "done" and status["resumes"] == 1 and status["epochs_run"] == 3
    assert "resuming from last.pt after epoch 1/3 (resume 1)" in (run_dir / "run.log").read_text()
    assert not (run_dir / "last.pt").exists()  # removed once the results are written
    rows = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    whole_dir = _run_dir(tmp_path / "whole")
    assert (run_dir / "predictions.csv").read_text() == (whole_dir / "predictions.csv").read_text()
    whole_rows = [json.loads(line) for line in (whole_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in whole_rows]


def _fit(make_task: Callable[[], Task], run_dir: Path, spec_hash: str, epochs: int, lines: list[str]) -> list[float]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)
    data = TensorDataset(x, y, torch.arange(40))
    cfg = {"train": {"amp": False, "optimizer": "sgd", "lr": 0.1, "weight_decay": 0.0, "momentum": 0.9,
                     "scheduler": "cosine", "t_max": 4, "scheduler_step": "epoch", "grad_accum": 1,
                     "grad_clip": None, "patience": None, "epochs": epochs, "warmup_steps": 2, "batch_size": 8}}
    task = make_task()
    loader = DataLoader(data, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    fit(task, loader, DataLoader(data, batch_size=40), cfg, run_dir, torch.device("cpu"), log=lines.append,
        spec_hash=spec_hash)
    return [json.loads(r)["train_loss"] for r in (run_dir / "train_log.jsonl").read_text().splitlines()]


def test_last_pt_of_another_spec_is_not_resumed(tmp_path: Path, linear_task, caplog) -> None:
    lines: list[str] = []
    _fit(linear_task, tmp_path, "aaaa", 2, lines)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 2
    lines.clear()
    with caplog.at_level(logging.INFO, logger="common.train"):
        losses = _fit(linear_task, tmp_path, "bbbb", 2, lines)
    warned = [r.getMessage() for r in caplog.records if r.name == "common.train" and r.levelno == logging.WARNING]
    assert any("belongs to another spec (aaaa, this run is bbbb); starting from epoch 1" in m for m in warned)
    assert not any("resuming" in line for line in lines) and len(losses) == 2


def test_a_finished_last_pt_resumes_with_nothing_left_to_train(tmp_path: Path, linear_task) -> None:
    lines: list[str] = []
    first = _fit(linear_task, tmp_path, "aaaa", 2, lines)
    lines.clear()
    again = _fit(linear_task, tmp_path, "aaaa", 2, lines)
    assert "resuming from last.pt after epoch 2/2 (resume 1)" in lines
    assert not any(line.startswith("epoch ") for line in lines) and again == first
