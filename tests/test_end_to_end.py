"""`make run`'s path with the real DAN: harness -> common.run -> DAN -> summary -> table."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_dan_run_beats_the_majority_class(tmp_path: Path) -> None:
    results = tmp_path / "results"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "harness", "run", "--model", "dan", "--dataset", "synthetic", "--profile", "quick",
           "--iterations", "1", "--results", str(results),
           "--set", "data.subset=1500", "train.epochs=5", "train.t_max=5", "pretrained=none"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    row = pd.read_csv(results / "summary.csv").iloc[0]
    assert row["status"] == "done"
    assert row["n_test"] == 300
    # Clearly above the majority-class rate (~0.39 on synthetic) and above chance.
    assert row["accuracy"] > row["majority_rate"] + 0.1, row.to_dict()
    assert row["balanced_accuracy"] > 1 / 7 + 0.1
    assert "DAN" in proc.stdout and "majority-class rate" in proc.stdout
    table = next((results / "tables").glob("*/accuracy.html")).read_text()
    assert "<strong>" in table and "DAN" in table
