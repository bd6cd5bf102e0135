"""Harness tests run the real harness and real `python -m common.run` subprocesses on a small
synthetic dataset, with the test-only `tiny` model (tests/fixtures/models/tiny) found through
FER_MODELS_PATH."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE_MODELS = REPO / "tests" / "fixtures" / "models"
SMALL = ["data.synthetic.n=300", "data.synthetic.size=48", "data.image_size=32", "train.threads=1",
         "data.num_workers=0"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def harness(tmp_path: Path, cache_dir: Path, monkeypatch):
    """Run `python -m harness ...` in a subprocess; returns (CompletedProcess, results folder)."""
    results = tmp_path / "results"
    env = dict(os.environ, FER_MODELS_PATH=str(FIXTURE_MODELS), FER_CACHE_DIR=str(cache_dir),
               PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")

    def run(*args: str, sets: list[str] = (), timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "harness", *args, "--results", str(results)]
        if args and args[0] in ("run", "plan"):
            cmd += ["--set", *SMALL, *sets]
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode not in (0, 1):
            raise AssertionError(f"harness exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    run.results = results
    run.env = env
    return run


def summary(results: Path) -> pd.DataFrame:
    return pd.read_csv(results / "summary.csv", dtype=str, keep_default_na=False)
