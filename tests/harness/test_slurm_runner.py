"""The SLURM runner's pieces that need no cluster (the cluster tests are tests/slurm/, `make test-slurm`):
time limits, sbatch options, sacct's array rows, the one-line error without sbatch, torch-free imports."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.runners.slurm import array_tasks, minutes, parse_sacct, sbatch_options

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text, expected", [("90", 90), ("1:30", 2), ("08:00:00", 480), ("1-12", 2160),
                                            ("2-00:30:00", 2910), ("0:59", 1)])
def test_slurm_time_in_minutes_rounded_up(text: str, expected: int) -> None:
    assert minutes(text) == expected


@pytest.mark.parametrize("text", ["8h", "", "0", "1:2:3:4"])
def test_a_bad_slurm_time_names_the_syntax(text: str) -> None:
    with pytest.raises(ValueError, match="e.g. 08:00:00"):
        minutes(text)


def test_sbatch_options_become_submitit_parameters() -> None:
    assert sbatch_options('--qos=high --account=my-lab --exclusive --comment="a b"') == {
        "qos": "high", "account": "my-lab", "exclusive": True, "comment": "a b"}
    with pytest.raises(ValueError, match="--name=value or --flag"):
        sbatch_options("-p gpu")


def test_sacct_rows_of_an_array_not_started_yet_name_each_task() -> None:
    assert array_tasks("12_3") == ["12_3"]
    assert array_tasks("12_[0-2,5%4]") == ["12_0", "12_1", "12_2", "12_5"]
    assert array_tasks("12") == ["12"]


def test_no_sbatch_on_path_is_one_line(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with python and nothing of SLURM
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = dict(os.environ, PATH=str(bin_dir), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--runner", "slurm", "--model", "dan",
                           "--profile", "quick", "--results", str(tmp_path / "results"),
                           "--set", "data.synthetic.n=300"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("error: no `sbatch` on PATH")
    assert not list((tmp_path / "results").glob("runs/*/*/*/iter-*/status.json"))  # nothing was prepared


def test_slurm_options_belong_to_the_slurm_runner(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--partition", "gpu", "--results", str(tmp_path)],
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True)
    assert proc.returncode == 2 and "error: --partition applies to --runner slurm only (runner: local)" in proc.stdout


def test_the_slurm_runner_and_status_are_torch_free() -> None:
    code = "import sys, harness.runners.slurm, harness.status, harness.cli; sys.exit('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=dict(os.environ, PYTHONPATH="."),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("rows", [["7_[1]|PENDING|0:0|00:00:00", "7_1|CANCELLED by 0|0:0|00:00:00"],
                                  ["7_1|CANCELLED by 0|0:0|00:00:00", "7_[1]|PENDING|0:0|00:00:00"]])
def test_a_task_row_wins_over_the_pending_array_row(rows) -> None:
    """A pending array task that is cancelled gets its own row while the array's row of unstarted tasks may
    still list it for a while: whatever the order, the task's own state is the one reported."""
    states = parse_sacct("\n".join(["7_0|RUNNING|0:0|00:00:05", *rows, "garbage"]))
    assert states == {"7_0": {"state": "RUNNING", "exit_code": "0:0", "elapsed": "00:00:05"},
                      "7_1": {"state": "CANCELLED", "exit_code": "0:0", "elapsed": "00:00:00"}}
