"""Sweeps end to end: resume, interruption, failure capture, determinism."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from common.io import read_json
from harness.collect import SUMMARY_COLUMNS
from tests.harness.conftest import REPO, SMALL, summary

RUN = ("run", "--model", "tiny", "--dataset", "synthetic", "--profile", "quick")


def test_sweep_then_resume_skips_finished(harness) -> None:
    first = harness(*RUN, "--iterations", "2")
    assert first.returncode == 0, first.stdout[-2000:]
    df = summary(harness.results)
    assert list(df.columns) == SUMMARY_COLUMNS
    assert list(df["status"]) == ["done", "done"] and list(df["iteration"]) == ["0", "1"]
    assert len(set(df["split_hash"])) == 2
    preds = harness.results / df["run_dir"][0] / "predictions.csv"
    mtime = preds.stat().st_mtime_ns
    assert "majority-class rate" in first.stdout and "± " in first.stdout

    again = harness(*RUN, "--iterations", "3")
    assert "2 already done (skipped), 1 to run" in again.stdout
    assert preds.stat().st_mtime_ns == mtime
    assert list(summary(harness.results)["status"]) == ["done"] * 3

    # A changed config is a different spec: the old result is moved aside, not overwritten.
    changed = harness(*RUN, "--iterations", "1", sets=["train.lr=0.01"])
    assert "0 already done (skipped), 1 to run" in changed.stdout
    aside = list((preds.parent.parent / "superseded").iterdir())
    assert len(aside) == 1 and (aside[0] / "predictions.csv").is_file()


def test_plan_shows_state(harness) -> None:
    harness(*RUN, "--iterations", "1")
    out = harness("plan", "--model", "tiny", "--dataset", "synthetic", "--profile", "quick", "--iterations", "2").stdout
    assert "done " in out and "pending " in out and "1 would run" in out


def test_failures_are_recorded_and_the_sweep_goes_on(harness) -> None:
    # Iteration 1 raises, the other iterations finish; then NaN loss, a killed process and a timeout.
    proc = harness(*RUN, "--iterations", "3", sets=["model.fail=raise", "model.fail_iteration=1"])
    assert proc.returncode == 1
    df = summary(harness.results)
    assert list(df["status"]) == ["done", "failed", "done"]
    row = df.iloc[1]
    assert row["error_class"] == "RuntimeError" and "on purpose" in row["error_message"]
    assert row["accuracy"] == ""
    status = read_json(harness.results / row["run_dir"] / "status.json")
    assert "Traceback" in status["traceback"]
    table = (harness.results / "tables" / df["protocol"][0] / "accuracy.md").read_text()
    assert "n=2/3" in table and "RuntimeError" in table

    for fail, tag, expect, extra in [("nan", "nan", ("failed", "NonFiniteLossError"), []),
                                     ("kill", "kill", ("killed", "Killed"), []),
                                     ("sleep", "sleep", ("timeout", "Timeout"), ["--timeout", "20"])]:
        harness(*RUN, "--iterations", "1", "--tag", tag, *extra, sets=[f"model.fail={fail}"])
        df = summary(harness.results)
        row = df[df["protocol"].str.endswith(tag)].iloc[0]
        assert (row["status"], row["error_class"]) == expect, (fail, row.to_dict())


def test_ctrl_c_then_rerun_redoes_the_interrupted_run(harness) -> None:
    # One run at a time, so iteration 0 is finished when iteration 1 is interrupted.
    cmd = [sys.executable, "-m", "harness", *RUN, "--iterations", "2", "--jobs", "1", "--results",
           str(harness.results), "--set", *SMALL]
    env = dict(harness.env, FER_TINY_FAIL="sleep:1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    status_path = None
    deadline = time.time() + 240
    while time.time() < deadline:
        found = list(harness.results.glob("runs/tiny/synthetic/*/iter-1/status.json"))
        if found and read_json(found[0]).get("status") == "running" and (found[0].parent / "train_log.jsonl").exists():
            status_path = found[0]
            break
        time.sleep(0.5)
    assert status_path is not None, "iteration 1 never reached its sleeping epoch"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:]
    assert read_json(status_path)["status"] == "interrupted"
    assert not (status_path.parent / "predictions.csv").exists()
    first_preds = next(harness.results.glob("runs/tiny/synthetic/*/iter-0/predictions.csv"))
    mtime = first_preds.stat().st_mtime_ns

    rerun = harness(*RUN, "--iterations", "2")
    assert "1 already done (skipped), 1 to run" in rerun.stdout
    assert first_preds.stat().st_mtime_ns == mtime
    assert list(summary(harness.results)["status"]) == ["done", "done"]


def test_same_spec_twice_gives_identical_predictions(harness, tmp_path) -> None:
    harness(*RUN, "--iterations", "1")
    run_dir = next(harness.results.glob("runs/tiny/synthetic/*/iter-0"))
    copy = tmp_path / "again"
    copy.mkdir()
    (copy / "spec.json").write_text((run_dir / "spec.json").read_text())
    subprocess.run([sys.executable, "-m", "common.run", str(copy / "spec.json")], cwd=REPO, env=harness.env,
                   check=True, capture_output=True, timeout=300)
    assert (copy / "predictions.csv").read_bytes() == (run_dir / "predictions.csv").read_bytes()
    assert read_json(copy / "status.json")["split_hash"] == read_json(run_dir / "status.json")["split_hash"]
