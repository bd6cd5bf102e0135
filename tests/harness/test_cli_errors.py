"""User errors (common/errors.py) are one `error: ...` message and exit code 2; any other exception
is a bug and keeps its traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import harness.cli
from common.errors import FERUserError
from harness.cli import main
from tests.harness.conftest import REPO

PLAN = ["plan", "--dataset", "synthetic", "--iterations", "1"]


def _one_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert out.startswith("error: ") and "Traceback" not in out + err, out + err
    return out


def test_a_bad_config_key_is_one_line(tmp_path: Path, capsys) -> None:
    code = main([*PLAN, "--model", "dan", "--results", str(tmp_path), "--set", "train.no_such_key=1"])
    out = _one_error(capsys, code)
    assert out.startswith("error: unknown config key 'train.no_such_key'; valid keys here: ")
    assert len(out.strip().splitlines()) == 1 and " lr, " in out


def test_an_unknown_model_is_one_line(tmp_path: Path, capsys) -> None:
    code = main([*PLAN, "--model", "nosuchmodel", "--results", str(tmp_path)])
    out = _one_error(capsys, code)
    assert len(out.strip().splitlines()) == 1
    assert "unknown model 'nosuchmodel'" in out and "dan" in out


def test_a_missing_dataset_file_is_one_message(tmp_path: Path, capsys) -> None:
    code = main(["plan", "--model", "dan", "--dataset", "rafdb", "--data-root", str(tmp_path / "empty"),
                 "--results", str(tmp_path / "results")])
    out = _one_error(capsys, code)
    # The layout error names the file and prints the expected tree below the first line.
    assert "label file not found" in out.splitlines()[0] and "expected layout" in out


def test_an_internal_bug_keeps_its_traceback(tmp_path: Path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise KeyError("internal")

    monkeypatch.setattr(harness.cli, "plan", broken)
    with pytest.raises(KeyError, match="internal"):
        main([*PLAN, "--model", "dan", "--results", str(tmp_path)])


def test_an_internal_bug_prints_a_traceback_from_the_command_line(tmp_path: Path) -> None:
    # `python -m harness report` on a results folder whose summary cannot be written: an OSError
    # that is not a user error, so Python's own traceback reaches stderr and the exit code is 1.
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    (results / "summary.csv").mkdir()  # a folder where collect writes a file
    proc = subprocess.run([sys.executable, "-m", "harness", "report", "--results", str(results)], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr and not proc.stdout.startswith("error: ")


def test_user_errors_are_still_the_builtin_errors_callers_catch() -> None:
    from common.errors import ConfigError
    from common.datasets import DatasetLayoutError, class_names
    from harness.engine import EngineError
    from harness.regress import RegressError

    for cls, builtin in ((ConfigError, ValueError), (DatasetLayoutError, FileNotFoundError),
                         (EngineError, RuntimeError), (RegressError, ValueError)):
        assert issubclass(cls, FERUserError) and issubclass(cls, builtin)
    with pytest.raises(KeyError) as info:
        class_names("raf-db")
    assert isinstance(info.value, FERUserError)
    assert str(info.value) == "unknown dataset 'raf-db'; valid datasets: " + str(info.value).split(": ", 1)[1]


def test_the_align_command_line_reports_a_missing_source_in_one_message(tmp_path: Path, capsys) -> None:
    from preprocess.__main__ import main as align_main

    code = align_main(["align", "--dataset", "folder", "--src", str(tmp_path / "nope"), "--dst", str(tmp_path / "o"),
                       "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 2 and err == f"error: source folder not found: {tmp_path / 'nope'}\n"
