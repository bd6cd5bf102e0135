"""`make predict ... RUNNER=container`: a local DAN run's checkpoint predicts photos inside the DAN image."""
from __future__ import annotations

import csv
import json

import pytest

from tests.containers.conftest import harness, run_containers
from tests.harness.test_predict import _feat_photos
from tests.preprocess.photo_set import FRONTAL, copy_photo

pytestmark = [pytest.mark.containers, pytest.mark.slow]


def test_predict_in_the_model_container(client, dan_image, cache, tmp_path):
    results = tmp_path / "results"
    run = harness("run", "--runner", "local", results=results, cache=cache)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    [run_dir] = results.glob("runs/dan/synthetic/*/iter-0")
    photos = tmp_path / "photos"
    for name in FRONTAL:
        copy_photo(_feat_photos(), name, photos)
    (photos / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    proc = harness("predict", "--run", str(run_dir), "--images", str(photos), "--out", str(out), "--runner",
                   "container", "--threads", "1", results=results, cache=cache)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "predictions.csv", newline="", encoding="utf-8") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    assert set(rows) == {*FRONTAL, "broken.png"} and rows["broken.png"]["error"]
    classes = json.loads((run_dir / "status.json").read_text())["class_names"]
    for name in FRONTAL:
        assert abs(sum(float(rows[name][f"p_{c}"]) for c in classes) - 1) < 1e-4
        assert rows[name]["face_found"] == ""  # not aligned: not checked
    assert (out / "contact_sheet.png").is_file()
    assert not run_containers(client)  # removed after the prediction
    # The images carry no MTCNN: alignment with containers is refused with the way round it.
    aligned = harness("predict", "--run", str(run_dir), "--images", str(photos), "--out", str(out), "--runner",
                      "container", "--align", results=results, cache=cache)
    assert aligned.returncode == 2 and "align the photos first" in aligned.stdout
