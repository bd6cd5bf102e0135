"""`python -m harness bench`: a real (small) measurement through the subprocess, its JSON and its table,
and the harness staying importable without torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_measures_side_by_side_and_writes_the_json(tmp_path: Path) -> None:
    env = dict(os.environ, FER_MODELS_PATH=str(REPO / "tests" / "fixtures" / "models"), PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "harness", "bench", "--model", "tiny", "--size", "32", "--batch-size", "16",
           "--workers", "1", "--threads", "1", "--steps", "2", "--n-jpeg", "64", "--n-fer", "64",
           "--results", str(tmp_path)]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run,) = json.loads((tmp_path / "bench" / "bench.json").read_text())["runs"]
    assert run["model"] == "tiny" and run["image_size"] == 32 and run["workers"] == 1 and run["device"] == "cpu"
    for key in ("jpeg_reference_ips", "jpeg_suite_ips", "fer2013_reference_ips", "fer2013_suite_ips",
                "compute_ceiling_ips", "end_to_end_ips", "fer2013_float_floor_ips"):
        assert run[key] > 0, key
    # The floor (conversion only) is never slower than the full augmentation on the same batches.
    assert run["floor_ratio_fer2013"] >= 0.8 * run["data_ratio_fer2013"]
    assert abs(run["data_ratio_jpeg"] - run["jpeg_suite_ips"] / run["jpeg_reference_ips"]) < 0.01
    assert abs(run["end_to_end_over_ceiling"] - run["end_to_end_ips"] / run["compute_ceiling_ips"]) < 0.01
    assert run["targets"]["data_ratio_fer2013"]["target"] == 20.0
    assert run["versions"]["torch"] and run["threads"] == 1
    assert "| suite data path, JPEG |" in done.stdout and "data_ratio_jpeg" in done.stdout
    assert "floor: with augmentation costing nothing" in done.stdout


def test_the_harness_with_bench_imports_without_torch() -> None:
    code = "import sys, harness.cli, harness.bench; sys.exit('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
