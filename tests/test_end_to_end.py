"""`make run`'s path end to end: harness -> python -m common.run -> model -> predictions -> summary -> tables."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE_MODELS = REPO / "tests" / "fixtures" / "models"


def _run(tmp_path: Path, model: str, sets: list[str]) -> tuple[subprocess.CompletedProcess, Path]:
    results = tmp_path / "results"
    env = dict(os.environ, PYTHONPATH=str(REPO), FER_MODELS_PATH=str(FIXTURE_MODELS))
    cmd = [sys.executable, "-m", "harness", "run", "--model", model, "--dataset", "synthetic", "--profile", "quick",
           "--iterations", "1", "--results", str(results), "--set", *sets]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, results


@pytest.mark.slow
def test_quick_run_learns_the_synthetic_faces(tmp_path: Path) -> None:
    """A 4-stage CNN from scratch on the default synthetic dataset: clearly above the majority class."""
    proc, results = _run(tmp_path, "tiny", ["data.image_size=32", "data.subset=null", "train.epochs=4", "train.t_max=4",
                                            "train.lr=2e-3"])
    row = pd.read_csv(results / "summary.csv").iloc[0]
    assert row["status"] == "done" and row["n_test"] == 600
    assert row["accuracy"] > row["majority_rate"] + 0.2, row.to_dict()
    assert row["balanced_accuracy"] > 1 / 7 + 0.2, row.to_dict()
    assert "majority-class rate" in proc.stdout


@pytest.mark.slow
def test_quick_dan_run_end_to_end(tmp_path: Path) -> None:
    """DAN through the whole path on a synthetic subset (too short to learn: this checks the plumbing)."""
    proc, results = _run(tmp_path, "dan", ["data.subset=600", "data.image_size=32", "train.epochs=2", "train.t_max=2"])
    row = pd.read_csv(results / "summary.csv").iloc[0]
    assert row["status"] == "done" and row["n_test"] == 120 and row["epochs_run"] == 2
    assert 0.0 <= row["accuracy"] <= 1.0 and row["pretrained"] == "scratch"
    preds = pd.read_csv(results / row["run_dir"] / "predictions.csv")
    assert len(preds) == 120 and abs(preds.filter(like="p_").sum(axis=1) - 1).max() < 1e-4
    assert "DAN" in proc.stdout
    table = next((results / "tables").glob("*/accuracy.html")).read_text()
    assert "<strong>" in table and "DAN" in table
