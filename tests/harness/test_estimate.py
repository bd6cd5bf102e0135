"""`make plan ... ESTIMATE=1`: device-hours from step times measured here, cached, before anything runs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SMALL = ["data.synthetic.n=300", "data.synthetic.size=48", "data.image_size=32", "train.threads=1",
         "train.epochs=4", "train.batch_size=16"]


def _plan(tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, FER_MODELS_PATH=str(REPO / "tests" / "fixtures" / "models"), PYTHONPATH=str(REPO),
               FER_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "harness", "plan", "--model", "tiny", "--dataset", "synthetic", "--profile", "quick",
           "--iterations", "2", "--results", str(tmp_path / "results"), "--estimate", "--set", *SMALL]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_plan_estimate_prints_hours_per_model_from_timed_steps_and_caches_them(tmp_path: Path) -> None:
    first = _plan(tmp_path)
    row = next(line.split() for line in first.stdout.splitlines() if line.startswith("tiny "))
    runs, step_s, steps, hours = int(row[1]), float(row[2]), int(row[3]), float(row[4])
    # 300 synthetic images -> 180 training images -> 11 batches of 16, 4 epochs, 2 iterations.
    assert runs == 2 and steps == 2 * 4 * 11 and step_s > 0
    assert abs(hours - steps * step_s / 3600) < 0.01
    assert "total" in first.stdout and not (tmp_path / "results" / "runs").exists()  # nothing ran
    (cached,) = (tmp_path / "cache" / "estimate").iterdir()
    assert "tiny-32px-b16-t1-auto" in cached.name
    again = _plan(tmp_path)
    assert next(line.split() for line in again.stdout.splitlines() if line.startswith("tiny "))[2] == row[2]
