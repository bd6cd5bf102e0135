"""`python -m harness regress`: real regress runs of DAN (the cheapest of the eight, ~10 s) compared
with the committed baseline and with baselines written here."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from common.config import resolve
from common.datasets import synthetic
from harness.cli import main
from harness.regress import BASELINES, RegressError, compare, load_baseline

REGRESS = ("regress", "--model", "dan", "--dataset", "synthetic")


def _run(harness, *args: str, baselines: Path | None = None):
    """A real check: `python -m harness regress` training DAN in a subprocess run."""
    extra = ("--baselines", str(baselines)) if baselines else ()
    return harness(*REGRESS, *extra, *args, check=False)


def _refused(capsys, results: Path, *args: str) -> str:
    """A check that must stop before training: run in-process, return its output (exit code 2 asserted)."""
    assert main([*REGRESS, "--results", str(results), *args]) == 2
    assert not (results / "regress").exists()  # nothing was trained for a check that cannot pass
    return capsys.readouterr().out


def test_unchanged_tree_passes_against_the_committed_baseline(harness) -> None:
    proc = _run(harness)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "regress: 1 run(s) match their baselines" in proc.stdout
    assert "| dan   | train_loss[18 steps" in proc.stdout and "REGRESSION" not in proc.stdout


def test_a_changed_loss_weight_is_caught_naming_model_and_quantity(harness) -> None:
    # The affinity loss is part of every step's loss: the first step already differs.
    proc = _run(harness, "--set", "model.affinity_weight=0.5")
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "| dan   | train_loss[step 1] " in proc.stdout
    assert "REGRESSION: dan (" in proc.stdout and "train_loss[step 1]" in proc.stdout.splitlines()[-1]
    assert "make regress MODEL=dan DATASET=synthetic UPDATE=1" in proc.stdout


def test_update_then_rerun_passes(harness, tmp_path: Path) -> None:
    baselines = tmp_path / "baselines"
    path = baselines / "dan" / "synthetic.json"
    path.parent.mkdir(parents=True)
    path.write_text("{")  # damaged: UPDATE=1 is the fix the error message names
    first = _run(harness, "--update", baselines=baselines)
    assert first.returncode == 0, first.stdout[-3000:]
    assert f"replacing the damaged baseline: baseline {path} is not valid JSON" in first.stdout
    assert f"wrote baseline {path}" in first.stdout and "| dan   | baseline | (none)" in first.stdout
    written = load_baseline(path, "dan", "synthetic")
    assert {"torch", "torchvision", "timm", "platform", "git_commit"} <= set(written["environment"])
    assert len(written["train_loss"]) == 18 and written["num_params"] > 0

    again = _run(harness, baselines=baselines)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "match their baselines" in again.stdout

    # An update against an existing baseline shows what changed before writing the new one.
    changed = _run(harness, "--update", "--set", "train.lr=0.01", baselines=baselines)
    assert changed.returncode == 0, changed.stdout[-3000:]
    assert "| dan   | train_loss[step 2] " in changed.stdout and "| changed" in changed.stdout
    assert load_baseline(path, "dan", "synthetic")["train_loss"][1] != written["train_loss"][1]


def test_missing_baseline_is_an_error_naming_the_update_command(capsys, tmp_path: Path) -> None:
    out = _refused(capsys, tmp_path / "results", "--baselines", str(tmp_path / "none"))
    assert "no baseline for dan on synthetic" in out
    assert "make regress MODEL=dan DATASET=synthetic UPDATE=1" in out


def test_corrupt_baseline_is_a_clear_error(capsys, tmp_path: Path) -> None:
    path = tmp_path / "b" / "dan" / "synthetic.json"
    path.parent.mkdir(parents=True)
    text = (BASELINES / "dan" / "synthetic.json").read_text()
    path.write_text(text[: len(text) // 2])  # a truncated file
    out = _refused(capsys, tmp_path / "results", "--baselines", str(tmp_path / "b"))
    assert f"baseline {path} is not valid JSON" in out
    assert "make regress MODEL=dan DATASET=synthetic UPDATE=1" in out


@pytest.mark.parametrize("damage, message", [
    (lambda b: {**b, "train_loss": "5.5"}, "'train_loss' is missing or not a list"),
    (lambda b: {**b, "train_loss": []}, "'train_loss' must be a non-empty list of numbers"),
    (lambda b: {k: v for k, v in b.items() if k != "num_params"}, "'num_params' is missing"),
    (lambda b: {**b, "model": "adadf"}, "is for adadf/synthetic"),
    (lambda b: [b], "is not a JSON object"),
])
def test_damaged_baseline_fields_are_named(tmp_path: Path, damage, message: str) -> None:
    path = tmp_path / "synthetic.json"
    path.write_text(json.dumps(damage(json.loads((BASELINES / "dan" / "synthetic.json").read_text()))))
    with pytest.raises(RegressError, match=re.escape(message)) as err:
        load_baseline(path, "dan", "synthetic")
    assert str(path) in str(err.value) and "UPDATE=1" in str(err.value)


def test_other_environment_uses_the_loose_tolerance() -> None:
    base = load_baseline(BASELINES / "dan" / "synthetic.json", "dan", "synthetic")
    other = {**base, "environment": {**base["environment"], "torch": "0.0.0"}}
    # Rounding-sized drift and a different predictions hash: a warning, not a regression, elsewhere ...
    drift = {**base, "train_loss": [v * (1 + 1e-3) for v in base["train_loss"]], "predictions_sha256": "0" * 64}
    verdicts = {r["quantity"].split("[")[0]: r["verdict"] for r in compare(other, drift)}
    assert verdicts == {"num_params": "ok", "split_hash": "ok", "train_loss": "ok", "val_accuracy": "ok",
                        "test_accuracy": "ok", "predictions_sha256": "warning"}
    # ... but the same drift is a regression where the run should repeat exactly,
    assert {r["verdict"] for r in compare(base, drift) if r["quantity"].startswith("train_loss")} == {"REGRESSION"}
    # and a real change is caught either way.
    wrong = {**drift, "train_loss": [v * 1.2 for v in base["train_loss"]]}
    assert [r["quantity"] for r in compare(other, wrong) if r["verdict"] == "REGRESSION"] == ["train_loss[step 1]"]


def test_unknown_model_or_runner_is_an_error(capsys, tmp_path: Path) -> None:
    assert main(["regress", "--model", "nosuch", "--results", str(tmp_path)]) == 2
    assert "unknown model 'nosuch'; valid models:" in capsys.readouterr().out
    out = _refused(capsys, tmp_path, "--runner", "nosuch")
    assert "unknown runner 'nosuch'; valid runners:" in out


def test_real_dataset_layout_uses_the_users_own_baseline(harness, cache_dir: Path, tmp_path: Path,
                                                         monkeypatch) -> None:
    # The generated set is written in RAF-DB's layout: served as `rafdb`, it goes through the real-data path.
    monkeypatch.setenv("FER_CACHE_DIR", str(cache_dir))
    folder = synthetic.ensure(resolve("dan", "synthetic", "regress")["data"]["synthetic"])
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "raf-basic").symlink_to(folder, target_is_directory=True)
    args = ("regress", "--model", "dan", "--dataset", "rafdb", "--data-root", str(tmp_path / "data"))
    assert main([*args, "--results", str(harness.results)]) == 2  # no baseline yet: an error, not a pass

    first = harness(*args, "--update", check=False)
    assert first.returncode == 0, first.stdout[-3000:]
    assert (harness.results / "regress" / "baselines" / "dan" / "rafdb.json").is_file()
    assert not (BASELINES / "dan" / "rafdb.json").exists()  # a lab's baseline is never put among the committed
    again = harness(*args, check=False)
    assert again.returncode == 0 and "regress: 1 run(s) match their baselines" in again.stdout, again.stdout[-3000:]


def test_regress_is_torch_free() -> None:
    code = "import sys, harness.regress; sys.exit('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                          env=dict(os.environ, PYTHONPATH="."), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
