"""One writer per run folder, no orphans: two sweeps at once, a harness killed with SIGKILL, a run
whose console is gone. Real `python -m harness run` / `python -m common.run` subprocesses on the
small synthetic set with the test-only `tiny` model."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.io import read_json
from common.runlock import EXIT_LOCKED, RunLock, is_held
from tests.harness.conftest import REPO, SMALL, summary

RUN = ("run", "--model", "tiny", "--dataset", "synthetic", "--profile", "quick")


def _start(harness, *args: str, env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    """A sweep in the background. FER_PARENT_PID is the harness's own pid (bash execs python), so its
    runs watch it whether or not the launcher sets the variable itself."""
    cmd = [sys.executable, "-m", "harness", *RUN, *args, "--results", str(harness.results), "--set", *SMALL]
    env = dict(harness.env, **(env_extra or {}))
    return subprocess.Popen(["bash", "-c", 'export FER_PARENT_PID=$$; exec "$@"', "bash", *cmd], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _epochs(run_dir: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run_dir / "train_log.jsonl").read_text().splitlines()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, not yet reaped by its new parent) is not running.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


@pytest.mark.slow
def test_two_sweeps_at_once_do_not_share_a_run_folder(harness) -> None:
    # Sweep A runs both iterations side by side, each slowed down in its second epoch.
    first = _start(harness, "--iterations", "2", "--jobs", "2", env_extra={"FER_TINY_FAIL": "sleep"})
    runs = harness.results / "runs" / "tiny" / "synthetic"
    _wait_for(lambda: len([d for d in runs.glob("*/iter-*") if is_held(d)]) == 2, 240, "sweep A's runs to start")
    holders = {d.name: read_json(d / "run.lock") for d in runs.glob("*/iter-*")}
    assert all(h["pid"] != first.pid and h["host"] for h in holders.values())

    # Sweep B, same selection, same folder: it leaves A's runs alone and says so.
    second = harness(*RUN, "--iterations", "2")
    assert "skipping tiny/synthetic/iter-0: in use by pid" in second.stdout, second.stdout[-2000:]
    assert "skipping tiny/synthetic/iter-1: in use by pid" in second.stdout
    assert "0 to run" in second.stdout
    assert not list(runs.glob("*/superseded")), "sweep B moved sweep A's folders aside"
    assert {d.name: read_json(d / "run.lock") for d in runs.glob("*/iter-*")} == holders
    # Its tables show A's runs as in progress (not failures, not dropped from the folder).
    assert set(summary(harness.results)["status"]) == {"running"}

    # Sweep A's runs are interrupted (Ctrl-C), recorded by their own process, then a rerun finishes them.
    os.killpg(first.pid, signal.SIGINT)
    first.communicate(timeout=120)
    again = harness(*RUN, "--iterations", "2")
    assert "0 already done (skipped), 2 to run" in again.stdout, again.stdout[-2000:]
    df = summary(harness.results)
    assert list(df["status"]) == ["done", "done"]
    for d in runs.glob("*/iter-*"):
        assert _epochs(d) == [1, 2, 3]  # one writer: no epochs of another process interleaved


@pytest.mark.slow
def test_sigkill_of_the_harness_stops_its_runs_and_the_rerun_redoes_them(harness) -> None:
    # One run at a time: iteration 0 finishes, iteration 1 sleeps in its second epoch.
    sweep = _start(harness, "--iterations", "2", "--jobs", "1", env_extra={"FER_TINY_FAIL": "sleep:1"})
    run_dir = _wait_for(lambda: next((d for d in harness.results.glob("runs/tiny/synthetic/*/iter-1")
                                      if (d / "train_log.jsonl").exists()), None), 240, "iteration 1's first epoch")
    run_pid = read_json(run_dir / "status.json")["pid"]
    os.kill(sweep.pid, signal.SIGKILL)  # no handler runs: the runs are on their own
    sweep.communicate(timeout=30)

    # The run notices within seconds, records why, and lets go of its folder.
    _wait_for(lambda: not _alive(run_pid), 60, f"run pid {run_pid} to stop after its harness died")
    status = read_json(run_dir / "status.json")
    assert (status["status"], status["error_class"]) == ("interrupted", "ParentGone"), status
    assert not is_held(run_dir)
    assert "is gone" in (run_dir / "run.log").read_text()

    rerun = harness(*RUN, "--iterations", "2")
    assert "1 already done (skipped), 1 to run" in rerun.stdout, rerun.stdout[-2000:]
    assert list(summary(harness.results)["status"]) == ["done", "done"]


def _prepared_spec(harness, monkeypatch) -> Path:
    """A real spec.json for the tiny model on the small synthetic set, prepared as a sweep would."""
    from common.config import parse_overrides
    from harness.plan import plan, prepare

    monkeypatch.setenv("FER_MODELS_PATH", harness.env["FER_MODELS_PATH"])
    monkeypatch.setenv("FER_CACHE_DIR", harness.env["FER_CACHE_DIR"])
    return prepare(plan("tiny", "synthetic", "quick", "1", parse_overrides(SMALL), harness.results)[0])


@pytest.mark.slow
def test_a_run_keeps_going_and_logging_when_its_console_is_gone(harness, monkeypatch) -> None:
    spec = _prepared_spec(harness, monkeypatch)
    proc = subprocess.Popen([sys.executable, "-m", "common.run", str(spec)], cwd=REPO, env=harness.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    proc.stdout.readline()  # the run has started writing to its console ...
    proc.stdout.close()     # ... which now goes away (a closed `| tee`, a dead harness)
    assert proc.wait(timeout=300) == 0
    assert read_json(spec.parent / "status.json")["status"] == "done"
    log = (spec.parent / "run.log").read_text()
    assert "epoch 3/3" in log and "test acc" in log


@pytest.mark.slow
def test_a_run_does_not_touch_a_folder_another_process_holds(harness, monkeypatch) -> None:
    spec = _prepared_spec(harness, monkeypatch)
    before = {p.name: p.read_bytes() for p in spec.parent.iterdir()}
    with RunLock(spec.parent).acquire(role="test"):
        proc = subprocess.run([sys.executable, "-m", "common.run", str(spec)], cwd=REPO, env=harness.env,
                              capture_output=True, text=True, timeout=300)
    assert proc.returncode == EXIT_LOCKED
    assert f"is in use by pid {os.getpid()}" in proc.stderr
    assert {p.name for p in spec.parent.iterdir()} == set(before)
    assert all(spec.parent.joinpath(n).read_bytes() == b for n, b in before.items() if n != "run.lock")
