"""ExpW: one sample per face line; per-face crops by default, the reference suite's
one-file-per-image layout with data.expw_layout=reference."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.model_selection import ShuffleSplit

from common.datasets import DatasetLayoutError, expw, load_pool
from common.splits import make_split
from tests.datasets.layouts import (
    expw_face,
    reference_expw_faces,
    reference_expw_selection,
    write_expw,
)

PROTOCOL = {"strategy": "shuffle", "n_splits": 10, "test_size": 0.2, "val_size": 0.25, "random_state": 42}

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
    assert "data.expw_layout=reference" in msg  # the setting that loads this folder
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


def _reference_folder(tmp_path):
    """The reference suite's download: one aligned file per image name, a few images absent."""
    faces = reference_expw_faces()
    absent = ["img_004.jpg", "img_017.jpg", "img_031.jpg"]
    return faces, absent, write_expw(tmp_path, faces, aligned="per_image", skip=absent)


def test_reference_layout_gives_the_reference_pool(tmp_path):
    faces, absent, d = _reference_folder(tmp_path)
    paths, labels = reference_expw_selection(d)
    with pytest.warns(expw.SharedPictureWarning):
        pool = load_pool("expw", tmp_path, expw_layout="reference")
    assert pool.paths == paths
    assert pool.labels.tolist() == labels
    kept = [f for f in faces if f["image_name"] not in absent]
    assert pool.ids == [f"{f['image_name']}#{f['face_id']}" for f in kept]
    assert len(pool) == len(kept) < len(faces)
    assert sorted(e["id"] for e in pool.excluded) == sorted(
        f"{f['image_name']}#{f['face_id']}" for f in faces if f["image_name"] in absent)
    # img_002.jpg's 2 faces are separate samples with one picture; face 0's line is the last
    # of the file (reference_expw_faces), and the pool keeps it there.
    same = [i for i, sid in enumerate(pool.ids) if sid.startswith("img_002.jpg#")]
    assert [pool.ids[i] for i in same] == ["img_002.jpg#1", "img_002.jpg#0"]
    assert same[-1] == len(pool) - 1
    assert len({np.asarray(pool.image(i)).tobytes() for i in same}) == 1


def test_reference_layout_folds_are_the_reference_folds(tmp_path):
    _, _, d = _reference_folder(tmp_path)
    paths, labels = reference_expw_selection(d)
    with pytest.warns(expw.SharedPictureWarning):
        pool = load_pool("expw", tmp_path, expw_layout="reference")
    reference = list(ShuffleSplit(n_splits=10, test_size=0.2, random_state=42).split(np.asarray(paths), labels))
    for k, (_, test) in enumerate(reference):
        split = make_split(pool.labels, k, PROTOCOL)
        assert np.array_equal(split.test, test), f"iteration {k}"
        assert [pool.paths[i] for i in split.test] == [paths[i] for i in test]


def test_reference_layout_warns_once_with_counts(tmp_path):
    write_expw(tmp_path, MULTI + [expw_face("duo.jpg", 0, 3), expw_face("duo.jpg", 1, 3)], aligned="per_image")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pool = load_pool("expw", tmp_path, expw_layout="reference")
    shared = [w for w in caught if issubclass(w.category, expw.SharedPictureWarning)]
    assert len(shared) == 1
    msg = str(shared[0].message)
    # party.jpg (3 faces, labels 3/4/3) and duo.jpg (2 faces, both 3): 5 samples, 2 images, 1 conflicting.
    assert "6 of 6 label lines kept" in msg
    assert "5 samples come from 2 multi-face images" in msg and "1 of those images carry different labels" in msg
    assert pool.paths[:3] == [pool.paths[0]] * 3


def test_reference_layout_without_shared_pictures_is_silent(tmp_path):
    write_expw(tmp_path, [expw_face("alone.jpg", 0, 6), expw_face("solo.jpg", 0, 1)], aligned="per_image")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pool = load_pool("expw", tmp_path, expw_layout="reference")
    assert pool.ids == ["alone.jpg#0", "solo.jpg#0"]


def test_unknown_layout_names_the_choices(tmp_path):
    write_expw(tmp_path, MULTI)
    with pytest.raises(ValueError, match=r"data.expw_layout='per_image'; valid: per-face, reference"):
        load_pool("expw", tmp_path, expw_layout="per_image")
