"""Runners execute planned runs. Each one calls `python -m common.run SPEC` somewhere."""
from __future__ import annotations

from harness.runners.local import run_local

RUNNERS = {"local": run_local}


def get_runner(name: str):
    if name not in RUNNERS:
        raise ValueError(f"unknown runner {name!r}; valid runners: {', '.join(RUNNERS)}")
    return RUNNERS[name]
