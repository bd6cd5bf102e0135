"""Bad inputs are one clear line before anything runs; damaged and abandoned runs are visible rows."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from common.io import atomic_write_json, read_json
from harness.cli import main
from harness.collect import collect
from tests.harness.conftest import REPO, summary

RUN = ("run", "--model", "tiny", "--dataset", "synthetic", "--profile", "quick")


@pytest.mark.parametrize("args, message", [
    (["--set", "train.lr=abc"], "train.lr='abc' is not valid; give a number"),
    (["--set", "data.image_size=abc"], "data.image_size='abc' is not valid; give an integer in 16..4096"),
    (["--set", "protocol.test_size=abc"], "protocol.test_size='abc' is not valid; give a number strictly between 0 and 1"),
    (["--set", "protocol.test_size=1.5"], "protocol.test_size=1.5 is not valid"),
    (["--set", "train.lr=["], "the value '[' is not valid YAML"),
    (["--set", "augment.erasing_scale=[0.2, 0.02]"], "augment.erasing_scale=[0.2, 0.02] is not valid; give a list [min, max]"),
    (["--set", "data.subset=3"], "data.subset=3 is not valid; give an integer >= 50"),
    (["--set", "x=1; echo INJECTED"], "unknown config key 'x'"),
    (["--iterations", "0,0"], "iterations '0,0' lists an iteration twice"),
    (["--iterations", "0"], "iterations '0' is not valid: give N in 1..10"),
    (["--iterations", "-1"], "iterations '-1' is not valid"),
    (["--timeout", "-5"], "TIMEOUT=-5 is not valid; give a number of seconds > 0"),
    (["--tag", "a/b"], "tag 'a/b' is not a safe name"),
    (["--tag", "../../x"], "tag '../../x' is not a safe name"),
])
def test_bad_inputs_are_one_line_and_nothing_is_written(tmp_path, capsys, args, message) -> None:
    results = tmp_path / "results"
    code = main(["run", "--model", "dan", "--dataset", "synthetic", "--profile", "quick", "--results", str(results), *args])
    out = capsys.readouterr().out
    assert code == 2 and out.startswith("error: ") and message in out, out
    assert len(out.strip().splitlines()) == 1
    assert not (results / "runs").exists()


def test_a_list_value_with_spaces_is_accepted(tmp_path, capsys) -> None:
    code = main(["plan", "--model", "dan", "--dataset", "synthetic", "--profile", "quick", "--iterations", "1",
                 "--results", str(tmp_path), "--set", "augment.erasing_scale=[0.02, 0.2] train.lr=1e-4"])
    assert code == 0, capsys.readouterr().out


def test_make_passes_set_whole_and_runs_nothing_from_it(tmp_path) -> None:
    marker = tmp_path / "INJECTED"
    proc = subprocess.run(["make", "-s", "plan", f"RESULTS={tmp_path / 'r'}", "ITERATIONS=1",
                           f"SET=augment.erasing_scale=[0.02, 0.2] train.lr=1e-4; touch {marker}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert not marker.exists()
    # The whole string reached the harness: its last value is the lr plus the would-be command.
    assert "train.lr='1e-4; touch" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    ok = subprocess.run(["make", "-s", "plan", f"RESULTS={tmp_path / 'r'}", "ITERATIONS=1",
                         "SET=augment.erasing_scale=[0.02, 0.2] train.lr=1e-4"],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "1 would run" in ok.stdout, ok.stdout + ok.stderr


def test_unusable_results_folders(tmp_path, capsys) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["run", "--model", "dan", "--results", str(afile / "results")]) == 2
    assert f"{afile} is a file, not a folder" in capsys.readouterr().out
    assert main(["report", "--results", str(tmp_path / "typo")]) == 2
    assert "does not exist (mistyped RESULTS=?)" in capsys.readouterr().out
    assert not (tmp_path / "typo").exists()


def _files(results: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(results)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in (results / "runs").rglob("*") if p.is_file()}


@pytest.mark.slow
def test_damaged_runs_are_rows_and_the_rest_of_the_report_is_built(harness) -> None:
    harness(*RUN, "--iterations", "4")
    df = summary(harness.results)
    assert list(df["status"]) == ["done"] * 4 and "image" in df.columns
    accuracy_before = df["accuracy"][0]
    dirs = [harness.results / d for d in df["run_dir"]]
    preds = (dirs[1] / "predictions.csv").read_text().splitlines()
    (dirs[1] / "predictions.csv").write_text("\n".join(preds[:-7]) + "\n")  # truncated
    (dirs[2] / "spec.json").write_text('{"model": "tiny", "data')           # corrupt
    (dirs[3] / "predictions.csv").write_text("")                              # empty
    before = _files(harness.results)

    proc = harness("report")
    assert proc.returncode == 1, proc.stdout[-2000:]
    df = summary(harness.results)
    assert list(df["status"]) == ["done", "damaged", "damaged", "damaged"]
    assert df["accuracy"][0] == accuracy_before and list(df["accuracy"][1:]) == ["", "", ""]
    assert "predictions.csv: 53 rows, but the run's test fold has 60 samples" in df["error_message"][1]
    assert "spec.json: unreadable" in df["error_message"][2] and df["iteration"][2] == "2"
    assert "predictions.csv: not a readable CSV" in df["error_message"][3]
    table = next((harness.results / "tables").glob("*/accuracy.md")).read_text()
    assert "n=1/4" in table
    assert _files(harness.results) == before  # report wrote nothing into the run folders


@pytest.mark.slow
def test_predictions_of_another_fold_or_not_summing_to_one_are_damaged(harness) -> None:
    harness(*RUN, "--iterations", "2")
    df = summary(harness.results)
    a, b = (harness.results / d for d in df["run_dir"])
    (a / "predictions.csv").write_text((b / "predictions.csv").read_text())  # same length, other samples
    rows = (b / "predictions.csv").read_text().splitlines()
    cells = rows[1].split(",")
    cells[-1] = "0.900000"  # this row's probabilities no longer sum to 1
    (b / "predictions.csv").write_text("\n".join([rows[0], ",".join(cells), *rows[2:]]) + "\n")
    df = summary(Path(collect(harness.results)).parent)
    assert list(df["status"]) == ["damaged", "damaged"]
    assert "not the run's test fold" in df["error_message"][0]
    assert "probabilities of row 2 sum to" in df["error_message"][1]


def test_a_running_status_without_a_lock_holder_is_abandoned(tmp_path, monkeypatch) -> None:
    """A run killed together with its harness leaves `running` behind: plan redoes it, collect
    shows it as a failure; while a live process holds the folder, both leave it alone."""
    from common.config import parse_overrides
    from harness.plan import plan, prepare
    from tests.harness.conftest import FIXTURE_MODELS, SMALL

    monkeypatch.setenv("FER_MODELS_PATH", str(FIXTURE_MODELS))
    results = tmp_path / "results"
    p = plan("tiny", "synthetic", "quick", "1", parse_overrides(SMALL), results)[0]
    spec = prepare(p)
    status = {"status": "running", "spec_hash": p.spec.hash, "pid": 999999, "hostname": "gone-host"}
    atomic_write_json(spec.parent / "status.json", status)

    again = plan("tiny", "synthetic", "quick", "1", parse_overrides(SMALL), results)[0]
    assert again.state == "abandoned" and again.todo and "no process holds" in again.note
    row = summary(Path(collect(results)).parent).iloc[0]
    assert (row["status"], row["error_class"]) == ("abandoned", "Abandoned")

    holder = subprocess.Popen([sys.executable, "-c", "import sys; from common.runlock import RunLock; "
                               f"RunLock({str(spec.parent)!r}).acquire(); print('held', flush=True); sys.stdin.read()"],
                              cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        held = plan("tiny", "synthetic", "quick", "1", parse_overrides(SMALL), results)[0]
        assert held.state == "running" and not held.todo and f"pid {holder.pid}" in held.note
        assert summary(Path(collect(results)).parent).iloc[0]["status"] == "running"
        with pytest.raises(RuntimeError, match="in use by pid"):
            prepare(held)
        assert read_json(spec.parent / "status.json") == status  # untouched
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert json.loads((spec.parent / "run.lock").read_text())["pid"] == holder.pid
