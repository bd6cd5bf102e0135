"""Runners execute planned runs: one supervisor (harness/runners/supervisor.py) and a launcher per place.

Every runner is called as `runner(planned, jobs=..., timeout=..., gpus=...)`, plus its own options.
"""
from __future__ import annotations

from typing import Callable

from common.errors import UnknownNameError
from harness.runners.container import run_container
from harness.runners.local import run_local
from harness.runners.slurm import run_slurm

# slurm submits and returns at once (detached); `python -m harness status` follows its runs.
RUNNERS: dict[str, Callable[..., list[dict]]] = {"local": run_local, "container": run_container, "slurm": run_slurm}


def get_runner(name: str) -> Callable[..., list[dict]]:
    if name not in RUNNERS:
        raise UnknownNameError(f"unknown runner {name!r}; valid runners: {', '.join(RUNNERS)}")
    return RUNNERS[name]
