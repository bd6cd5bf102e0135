"""`python -m harness status` (make status): where every run of a selection stands, wherever it runs.

One line per run: queued (how long it has waited, its SLURM job), running (the epoch reached), done
(test accuracy), failed (the error class: the run's own, or the SLURM state for a job that ended
without a result: TIMEOUT, PREEMPTED, OUT_OF_MEMORY, NODE_FAIL, CANCELLED), pending, stale... Runs
submitted to SLURM are first brought up to date from the cluster's accounting (harness/runners/slurm.py).
"""
from __future__ import annotations

import logging
from collections import Counter

from common.io import read_json
from common.status import FAILURES, RunStatus
from harness.plan import Planned
from harness.runners.slurm import SLURM_FILE, SlurmError, refresh

logger = logging.getLogger(__name__)


def _epochs(p: Planned) -> str:
    try:
        lines = (p.run_dir / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
        done = sum(1 for line in lines if line.strip())
    except OSError:
        done = 0
    return f"epoch {done}/{p.spec.config['train']['epochs']}"


def detail(p: Planned) -> str:
    """What a user wants to know about a run in this state, in a few words."""
    if p.state == RunStatus.DONE:
        try:
            return f"test accuracy {read_json(p.run_dir / 'metrics.json')['accuracy']:.4f}"
        except (OSError, ValueError, KeyError):
            return ""
    if p.state == RunStatus.RUNNING:
        return f"{_epochs(p)}; {p.note}" if p.note else _epochs(p)
    if p.state in FAILURES:
        try:
            status = read_json(p.run_dir / "status.json")
        except (OSError, ValueError):
            return p.note
        text = f"{status.get('error_class', '?')}: {str(status.get('error_message', '')).splitlines()[0][:160]}" \
            if status.get("error_message") else str(status.get("error_class", ""))
        return text + (f" (last.pt: resumes from {_epochs(p)})" if (p.run_dir / "last.pt").is_file() else "")
    return p.note


def show(planned: list[Planned]) -> int:
    """Print the runs of `planned` with their state; returns 0."""
    if any((p.run_dir / SLURM_FILE).is_file() for p in planned):
        try:
            refresh(planned)
        except SlurmError as e:  # e.g. looked at from a machine without SLURM: the files still tell a lot
            logger.warning(f"SLURM states not refreshed: {e}")
    for p in planned:
        print(f"{p.state:11s} {p.spec.model:9s} {p.spec.dataset:10s} iter {p.spec.iteration}  {detail(p)}")
    counts = Counter(p.state for p in planned)
    print(f"{len(planned)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 0
