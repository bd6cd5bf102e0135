"""ExpW round trip: raw ExpW layout built from real photos -> align -> the ExpW loader reads it.

Boxes are hand-drawn around the faces, ExpW-style (`top left right bottom`); multi_face.jpg
has two annotated faces, the landscape one box with no face in it.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from common.datasets import expw, load_pool
from preprocess.align import align_dataset
from tests.preprocess.photo_set import MULTI, NO_FACE, copy_photo, landmarks, read_manifest

# image, face_id, (top, left, right, bottom), ExpW label (0 angry 1 disgust 3 happy 5 surprise 6 neutral)
FACES = [
    ("0-f1-su-ph.jpg", 0, (110, 125, 395, 470), 5),
    ("0-f15-hao-ph.jpg", 0, (110, 110, 385, 480), 3),
    (MULTI, 0, (300, 530, 633, 437), 3),  # the woman in the middle
    (MULTI, 1, (287, 683, 790, 419), 3),  # the woman on the right
    ("15-f13-anc-ph.jpg", 0, (135, 95, 375, 480), 0),
    ("45-m7-di-ph.jpg", 0, (155, 50, 295, 475), 1),
    (NO_FACE, 0, (150, 400, 500, 250), 6),  # copied at half size (photo_set.NO_FACE_SCALE)
]


def test_expw_fixture_round_trips_through_the_loader(tmp_path, photos, mtcnn):
    src, dst = tmp_path / "ExpW-raw", tmp_path / "ExpW"
    (src / "image" / "origin").mkdir(parents=True)
    (src / "label").mkdir()
    for name in {f[0] for f in FACES}:
        copy_photo(photos, name, src / "image" / "origin")
    lines = [f"{n} {i} {t} {l} {r} {b} 77.5 {y}\n" for n, i, (t, l, r, b), y in FACES]
    (src / "label" / "label.lst").write_text("".join(lines), encoding="utf-8")

    summary = align_dataset("expw", src, dst, workers=2, batch_size=4, log=io.StringIO())

    assert summary.counts == {"aligned": 6, "no_face": 1, "exists": 0, "error": 0}
    assert (dst / "label" / "label.lst").read_text(encoding="utf-8") == "".join(lines)
    rows = read_manifest(summary.manifest)
    for name, face_id, (top, left, right, bottom), _ in FACES:
        row = rows[f"image/origin/{name}#{face_id}"]
        if name == NO_FACE:  # no face in the box: a crop of the box, recorded as such
            expected = ("no_face", "box_crop", "no_detection")
            assert (row["status"], row["policy"], row["message"]) == expected, row
            continue
        assert (row["status"], row["policy"]) == ("aligned", "annotated_box"), row
        x, y = landmarks(row).T  # the landmarks come from the face in this face's box
        assert np.all((x > left) & (x < right) & (y > top) & (y < bottom)), row

    pool = load_pool("expw", dst)
    assert list(pool.ids) == [expw.sample_id(n, i) for n, i, _, _ in FACES]
    assert list(pool.labels) == [y for *_, y in FACES]
    images = [np.asarray(pool.image(k).convert("RGB")) for k in range(len(FACES))]
    assert all(im.shape == (112, 112, 3) for im in images)
    # the two faces of multi_face.jpg are two different pictures
    assert np.abs(images[2].astype(int) - images[3].astype(int)).mean() > 20
    assert sorted(p.name for p in (dst / "aligned_image").iterdir()) == sorted(
        expw.face_filename(n, i) for n, i, _, _ in FACES
    )


def test_expw_skip_drops_the_faceless_line_from_the_label_file(tmp_path, photos, mtcnn):
    src, dst = tmp_path / "raw", tmp_path / "out"
    (src / "origin").mkdir(parents=True)
    (src / "label").mkdir()
    for name in ("0-f1-su-ph.jpg", NO_FACE):
        copy_photo(photos, name, src / "origin")
    keep = "0-f1-su-ph.jpg 0 110 125 395 470 77.5 5\n"
    (src / "label" / "label.lst").write_text(f"{NO_FACE} 0 150 400 500 250 9.0 6\n{keep}", encoding="utf-8")
    summary = align_dataset("expw", src, dst, no_face="skip", workers=0, log=io.StringIO())
    assert summary.counts == {"aligned": 1, "no_face": 1, "exists": 0, "error": 0}
    assert (dst / "label" / "label.lst").read_text(encoding="utf-8") == keep
    pool = load_pool("expw", dst)
    assert list(pool.labels) == [5] and Image.open(pool.paths[0]).size == (112, 112)
