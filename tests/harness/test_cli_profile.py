"""The default profile is one rule (common/config.py:default_profile) for `python -m harness` and `make`:
quick when every dataset is synthetic, full otherwise; PROFILE=... is passed through when set."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from common.config import default_profile
from harness.cli import main
from tests.harness.conftest import REPO


@pytest.mark.parametrize("datasets, profile", [
    ("synthetic", "quick"), ("synthetic,synthetic", "quick"), (["synthetic"], "quick"),
    ("rafdb", "full"), ("synthetic,rafdb", "full"), ("all", "full"),
])
def test_default_profile(datasets, profile) -> None:
    assert default_profile(datasets) == profile


def test_the_cli_plans_synthetic_under_quick_unless_told(tmp_path: Path, capsys) -> None:
    assert main(["plan", "--model", "dan", "--dataset", "synthetic", "--iterations", "1", "--results", str(tmp_path)]) == 0
    assert "-quick/iter-0" in capsys.readouterr().out
    assert main(["plan", "--model", "dan", "--dataset", "synthetic", "--iterations", "1", "--profile", "full",
                 "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "/iter-0" in out and "-quick/" not in out


def _make_plan_command(*variables: str) -> str:
    proc = subprocess.run(["make", "-n", "-s", "plan", *variables], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_make_leaves_the_default_to_the_harness_and_passes_profile_through() -> None:
    assert "--profile" not in _make_plan_command()
    assert "--profile" not in _make_plan_command("DATASET=rafdb")
    assert "--profile full " in _make_plan_command("PROFILE=full")
    assert "--profile quick " in _make_plan_command("DATASET=rafdb", "PROFILE=quick")
