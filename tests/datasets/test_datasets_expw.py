"""ExpW: one sample per face line, so faces of one image never collapse."""
from __future__ import annotations

import numpy as np
import pytest

from common.datasets import DatasetLayoutError, expw, load_pool
from tests.datasets.layouts import expw_face, write_expw

MULTI = [expw_face("party.jpg", 0, 3), expw_face("party.jpg", 1, 4), expw_face("party.jpg", 2, 3),
         expw_face("alone.jpg", 0, 6)]


def test_face_filename():
    assert expw.face_filename("afraid_African_214.jpg", 0) == "afraid_African_214_0.jpg"
    assert expw.face_filename("a.b.png", "12") == "a.b_12.png"


def test_faces_of_one_image_are_separate_samples(tmp_path):
    d = write_expw(tmp_path, MULTI)
    pool = load_pool("expw", tmp_path)
    assert pool.ids == ["party.jpg#0", "party.jpg#1", "party.jpg#2", "alone.jpg#0"]
    assert pool.labels.tolist() == [3, 4, 3, 6]
    assert pool.paths == [str(d / "aligned_image" / n) for n in
                          ("party_0.jpg", "party_1.jpg", "party_2.jpg", "alone_0.jpg")]
    images = [np.asarray(pool.image(i)).tobytes() for i in range(len(pool))]
    assert len(set(images)) == 4


def test_single_face_image_file_is_used(tmp_path):
    """The reference suite's layout: aligned_image/<image_name> for a one-face image."""
    d = write_expw(tmp_path, [expw_face("alone.jpg", 0, 6), expw_face("solo.png", 3, 1)], aligned="per_image")
    pool = load_pool("expw", tmp_path)
    assert pool.ids == ["alone.jpg#0", "solo.png#3"]
    assert pool.paths == [str(d / "aligned_image" / "alone.jpg"), str(d / "aligned_image" / "solo.png")]


def test_multi_face_image_with_one_file_is_ambiguous(tmp_path):
    write_expw(tmp_path, MULTI, aligned="per_image")
    with pytest.raises(DatasetLayoutError) as info:
        load_pool("expw", tmp_path)
    msg = str(info.value)
    assert "party.jpg" in msg and "3 faces" in msg and "party_0.jpg" in msg
    pool = load_pool("expw", tmp_path, exclude_missing=True)
    assert pool.ids == ["alone.jpg#0"]
    assert [e["id"] for e in pool.excluded] == ["party.jpg#0", "party.jpg#1", "party.jpg#2"]
    assert all(e["reason"].startswith("ambiguous") for e in pool.excluded)


def test_per_face_file_wins_over_the_image_file(tmp_path):
    d = write_expw(tmp_path, MULTI, aligned="per_image")
    write_expw(tmp_path, MULTI, aligned="per_face")  # adds the per-face files next to them
    pool = load_pool("expw", tmp_path)
    assert pool.paths[1] == str(d / "aligned_image" / "party_1.jpg")
    assert pool.excluded == []


def test_missing_face_names_its_per_face_file(tmp_path):
    d = write_expw(tmp_path, MULTI, skip=["party_1.jpg"])
    with pytest.raises(DatasetLayoutError) as info:
        load_pool("expw", tmp_path)
    assert str(d / "aligned_image" / "party_1.jpg") in str(info.value)
    pool = load_pool("expw", tmp_path, exclude_missing=True)
    assert pool.ids == ["party.jpg#0", "party.jpg#2", "alone.jpg#0"]


def test_bad_label_line_is_named(tmp_path):
    d = write_expw(tmp_path, MULTI)
    label_file = d / "label" / "label.lst"
    lines = label_file.read_text().splitlines()
    lines[2] = "party.jpg 2 10 20 30 40 3"  # 7 fields
    label_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetLayoutError) as info:
        load_pool("expw", tmp_path)
    assert "line 3" in str(info.value) and "expected 8 fields" in str(info.value)


def test_repeated_face_key_is_an_error(tmp_path):
    write_expw(tmp_path, MULTI + [expw_face("party.jpg", 1, 0)])
    with pytest.raises(DatasetLayoutError, match=r"party.jpg#1.*lines 2 and 5"):
        load_pool("expw", tmp_path)


def test_read_label_file_gives_boxes(tmp_path):
    d = write_expw(tmp_path, [expw_face("a.jpg", 0, 2, box=(28, 113, 226, 141), confidence=52.9)],
                   origin=True)
    (face,) = expw.read_label_file(d / "label" / "label.lst")
    assert face == {"image_name": "a.jpg", "face_id": 0, "top": 28, "left": 113, "right": 226,
                    "bottom": 141, "confidence": pytest.approx(52.9), "label": 2, "line": 1}
    assert (d / "image" / "origin" / "a.jpg").is_file()
