"""The local launcher behind a prefix (how Apptainer/Singularity or a wrapper runs a run), and GPU assignment."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from harness.cli import _gpus
from tests.harness.conftest import summary

RUN = ("run", "--model", "tiny", "--dataset", "synthetic", "--profile", "quick", "--iterations", "1")


def test_launch_prefix_runs_each_run_through_the_given_command(harness, tmp_path) -> None:
    marker = tmp_path / "launched"
    # A wrapper that records what it was asked to run, then runs it with the venv's `python` on PATH
    # (with a prefix, the launcher calls plain `python`, as inside an Apptainer image).
    script = f'echo "$@" >> {shlex.quote(str(marker))} && PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH exec "$@"'
    proc = harness(*RUN, "--launch-prefix", f"sh -c {shlex.quote(script)} wrapper")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [line] = marker.read_text().splitlines()
    assert line.startswith("python -m common.run /") and line.endswith("/iter-0/spec.json")
    assert list(summary(harness.results)["status"]) == ["done"]


def test_a_prefix_that_cannot_start_is_a_recorded_failure(harness) -> None:
    proc = harness(*RUN, "--launch-prefix", "false")
    assert proc.returncode == 1
    df = summary(harness.results)
    assert list(df["status"]) == ["failed"] and df["error_class"][0] == "ProcessExit"


def test_runner_options_belong_to_their_runner(harness) -> None:
    proc = harness(*RUN, "--memory", "1g", check=False)
    assert proc.returncode == 2 and "--memory applies to --runner container only" in proc.stdout


@pytest.mark.parametrize("value, ids", [("0,1", ["0", "1"]), ("3", ["3"]), (None, [])])
def test_gpus_are_listed_devices(value, ids) -> None:
    assert _gpus(value) == ids


@pytest.mark.parametrize("value", ["0,0", "a", "1,-1"])
def test_bad_gpus_name_the_value(value) -> None:
    with pytest.raises(ValueError, match="GPUS="):
        _gpus(value)


def test_a_run_that_cannot_even_be_started_is_a_recorded_failure(harness, tmp_path) -> None:
    proc = harness(*RUN, "--launch-prefix", str(tmp_path / "no-such-launcher"))
    assert proc.returncode == 1, proc.stdout[-2000:]
    df = summary(harness.results)
    assert list(df["status"]) == ["failed"] and df["error_class"][0] == "FileNotFoundError"
    assert "could not start the run" in df["error_message"][0]


@pytest.mark.parametrize("gpus, jobs, slots, share", [
    (["0", "1"], 2, ["0", "1"], 1),
    (["0", "1"], 1, ["0", "1"], 1),
    (["0", "1"], 4, ["0", "1", "0", "1"], 2),
    (["0", "1"], 3, ["0", "1", "0", "1"], 2),
    (["2"], 3, ["2", "2", "2"], 3),
])
def test_jobs_beyond_the_gpus_share_each_gpu_in_turn(gpus, jobs, slots, share) -> None:
    from harness.runners.supervisor import gpu_slots

    assert gpu_slots(gpus, jobs) == (slots, share)


def test_runs_sharing_a_gpu_are_told_so(harness, tmp_path) -> None:
    """JOBS=4 on GPUS=0,1: four runs at once, two per GPU, each told to cap itself at half its memory.
    (Without a GPU here each run then fails its preflight: a recorded failure, as it must be.)"""
    marker = tmp_path / "env"
    script = (f'echo "$CUDA_VISIBLE_DEVICES $FER_GPU_SHARE $FER_EXPECT_CUDA" >> {shlex.quote(str(marker))} && '
              f'PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH exec "$@"')
    run = RUN[:-1] + ("4",)
    proc = harness(*run, "--gpus", "0,1", "--jobs", "4", "--launch-prefix", f"sh -c {shlex.quote(script)} wrapper",
                   check=False)
    lines = sorted(marker.read_text().splitlines())
    assert lines == ["0 2 1", "0 2 1", "1 2 1", "1 2 1"], proc.stdout[-3000:]
    df = summary(harness.results)
    assert set(df["error_class"]) == {"GPUPreflightError"}


def _recording_wrapper(marker: Path) -> str:
    """A launch prefix that records the run's GPU environment, then runs it."""
    script = (f'echo "[$CUDA_VISIBLE_DEVICES] ${{CUDA_DEVICE_ORDER:-unset}}" >> {shlex.quote(str(marker))} && '
              f'PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH exec "$@"')
    return f"sh -c {shlex.quote(script)} wrapper"


def test_gpus_count_among_the_gpus_this_shell_may_use(harness, tmp_path) -> None:
    """Inside an allocation that shows this shell GPUs 5 and 7, GPUS=0,1 means those two (in PCI bus
    order, as nvidia-smi numbers them), and GPUS=2 is an error naming the visible set."""
    marker = tmp_path / "env"
    harness.env["CUDA_VISIBLE_DEVICES"] = "5,7"
    run = RUN[:-1] + ("2",)
    proc = harness(*run, "--gpus", "0,1", "--launch-prefix", _recording_wrapper(marker), check=False)
    assert sorted(marker.read_text().splitlines()) == ["[5] PCI_BUS_ID", "[7] PCI_BUS_ID"], proc.stdout[-3000:]
    proc = harness(*RUN, "--gpus", "2", check=False)
    assert proc.returncode == 2 and "CUDA_VISIBLE_DEVICES=5,7" in proc.stdout and "valid 0..1" in proc.stdout


def test_without_gpus_a_run_sees_no_gpu(harness, tmp_path) -> None:
    """GPUS unset means the CPU, for the local runner as for a container: train.device=auto must not
    take GPU 0 of a GPU machine unasked (several runs at once, without any memory cap)."""
    marker = tmp_path / "env"
    harness.env["CUDA_VISIBLE_DEVICES"] = "0"
    proc = harness(*RUN, "--launch-prefix", _recording_wrapper(marker))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert marker.read_text().splitlines() == ["[] unset"]
