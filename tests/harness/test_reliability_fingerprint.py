"""The spec hash follows the data and the weights, not their paths; a missing dataset stops the plan."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from common.datasets import DatasetLayoutError, rafdb
from common.io import atomic_write_json
from harness.cli import main
from harness.plan import plan, prepare
from tests.datasets.layouts import write_rafdb

SAMPLES = [(f"train_{i:05d}.jpg", i % 7) for i in range(60)]


def _mark_done(p) -> None:
    """What a finished run leaves: its spec, a `done` status with the spec's hash, predictions."""
    spec = prepare(p)
    atomic_write_json(spec.parent / "status.json", {"status": "done", "spec_hash": p.spec.hash})
    (spec.parent / "predictions.csv").write_text("sample_id\n")


def _plan(root: Path, results: Path, **kw):
    return plan("dan", "rafdb", "full", "2", None, results, str(root), **kw)


def test_relabelled_or_realigned_data_is_stale_and_a_moved_copy_is_not(tmp_path, capsys) -> None:
    results = tmp_path / "results"
    d = write_rafdb(tmp_path / "data", SAMPLES)
    for p in _plan(tmp_path / "data", results):
        _mark_done(p)
    assert [p.state for p in _plan(tmp_path / "data", results)] == ["done", "done"]

    # The same files under another DATA_ROOT: nothing to redo (paths are not hashed).
    shutil.copytree(tmp_path / "data", tmp_path / "copy")
    assert [p.state for p in _plan(tmp_path / "copy", results)] == ["done", "done"]

    # One label fixed: every run of that dataset is stale, and the plan says why.
    label_file = d / rafdb.LABEL_FILE
    label_file.write_text(label_file.read_text().replace("train_00003.jpg 4", "train_00003.jpg 5"))
    stale = _plan(tmp_path / "data", results)
    assert [p.state for p in stale] == ["stale", "stale"]
    assert stale[0].note == "the dataset changed (label_sha256)"
    assert main(["plan", "--model", "dan", "--dataset", "rafdb", "--iterations", "2", "--data-root",
                 str(tmp_path / "data"), "--results", str(results)]) == 0
    assert "stale" in capsys.readouterr().out.split("(the dataset changed (label_sha256))")[0]

    # Re-aligned images (other bytes, other size) in the untouched copy: stale too.
    image = tmp_path / "copy" / "raf-basic" / rafdb.IMAGE_FOLDER / "train_00000_aligned.jpg"
    image.write_bytes(image.read_bytes() + b"\0" * 100)
    realigned = _plan(tmp_path / "copy", results)
    assert realigned[0].state == "stale" and "images_sha256" in realigned[0].note


def test_weight_files_arriving_make_scratch_runs_stale_and_moving_them_does_not(tmp_path, monkeypatch) -> None:
    results = tmp_path / "results"
    write_rafdb(tmp_path / "data", SAMPLES)
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setenv("FER_WEIGHTS_DIR", str(weights))
    planned = _plan(tmp_path / "data", results)
    assert planned[0].spec.weights == "scratch"
    for p in planned:
        _mark_done(p)

    (weights / "resnet18_msceleb.pth").write_bytes(b"the authors' weights")
    arrived = _plan(tmp_path / "data", results)
    assert [p.state for p in arrived] == ["stale", "stale"]
    assert "the weight files changed (scratch -> resnet18_msceleb.pth" in arrived[0].note
    for p in arrived:
        _mark_done(p)

    moved = tmp_path / "elsewhere"
    shutil.move(str(weights), str(moved))
    monkeypatch.setenv("FER_WEIGHTS_DIR", str(moved))
    assert [p.state for p in _plan(tmp_path / "data", results)] == ["done", "done"]


def test_a_missing_dataset_is_one_error_at_plan_time_and_nothing_is_written(tmp_path, capsys) -> None:
    results = tmp_path / "results"
    with pytest.raises(DatasetLayoutError):
        _plan(tmp_path / "empty", results)
    code = main(["run", "--model", "dan", "--dataset", "sfew", "--data-root", str(tmp_path / "empty"),
                 "--results", str(results)])
    out = capsys.readouterr().out
    assert code == 2
    assert f"dataset folder: {tmp_path / 'empty' / 'SFEW2.0'}" in out
    assert "sfew_2.0_labels.csv" in out and "expected layout" in out
    assert "Get sfew from https://" in out and "make align DATASET=sfew" in out
    assert not results.exists()
