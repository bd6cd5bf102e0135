"""Per-dataset source discovery and output naming: what the loaders read, without a detector."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from common.datasets import ckplus, expw, rafdb, sfew
from preprocess.layouts import plan


def _touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_expw_one_job_per_label_line_with_its_box(tmp_path):
    src, dst = tmp_path / "raw", tmp_path / "out"
    _touch(src / "label" / "label.lst",
           "a.jpg 0 10 20 110 130 50.1 3\na.jpg 1 200 300 380 420 40.0 5\n\nb.png 0 5 6 70 80 9.9 0\n")
    (src / "image" / "origin").mkdir(parents=True)
    p = plan("expw", src, dst)
    assert [j.source for j in p.jobs] == [src / "image/origin/a.jpg"] * 2 + [src / "image/origin/b.png"]
    assert [j.output.name for j in p.jobs] == [expw.face_filename("a.jpg", 0), expw.face_filename("a.jpg", 1),
                                               expw.face_filename("b.png", 0)]
    assert all(j.output.parent == dst / "aligned_image" for j in p.jobs)
    # label.lst order is top left right bottom; boxes are x1, y1, x2, y2
    assert p.jobs[1].box == (300.0, 200.0, 380.0, 420.0)
    assert [j.line for j in p.jobs] == [0, 1, 2]


def test_expw_label_file_copied_verbatim_or_filtered(tmp_path):
    src, dst = tmp_path / "raw", tmp_path / "out"
    text = "a.jpg 0 10 20 110 130 50.1 3\na.jpg 1 200 300 380 420 40.0 5\nb.png 0 5 6 70 80 9.9 0\n"
    _touch(src / "label" / "label.lst", text)
    (src / "origin").mkdir(parents=True)  # the alternative image folder
    p = plan("expw", src, dst)
    assert p.jobs[0].source == src / "origin" / "a.jpg"
    p.write_labels({0, 1, 2})
    assert (dst / expw.LABEL_FILE).read_bytes() == text.encode()
    p.write_labels({0, 2})  # face 1 of a.jpg skipped
    assert (dst / expw.LABEL_FILE).read_text().splitlines() == [text.splitlines()[0], text.splitlines()[2]]


def test_expw_missing_pieces_name_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="label.lst"):
        plan("expw", tmp_path, tmp_path / "out")
    _touch(tmp_path / "label" / "label.lst", "a.jpg 0 1 2 3 4 5.0 6\n")
    with pytest.raises(FileNotFoundError, match="image/origin"):
        plan("expw", tmp_path, tmp_path / "out")


def test_rafdb_originals_to_aligned_names(tmp_path):
    src, dst = tmp_path / "raw", tmp_path / "out"
    _touch(src / "EmoLabel" / "list_patition_label.txt", "train_00001.jpg 5\ntest_0001.jpg 1\n")
    (src / "Image" / "original").mkdir(parents=True)
    p = plan("rafdb", src, dst)
    assert [j.source.name for j in p.jobs] == ["train_00001.jpg", "test_0001.jpg"]
    assert [j.output for j in p.jobs] == [dst / rafdb.IMAGE_FOLDER / rafdb.image_filename(n)
                                          for n in ("train_00001.jpg", "test_0001.jpg")]
    p.write_labels({1})
    assert (dst / rafdb.LABEL_FILE).read_text() == "test_0001.jpg 1\n"


@pytest.mark.parametrize("module", [sfew, ckplus], ids=["sfew", "ckplus"])
def test_csv_datasets_keep_names_and_columns(tmp_path, module):
    name = "sfew" if module is sfew else "ckplus"
    src, dst = tmp_path / "raw", tmp_path / "out"
    _touch(src / module.LABEL_FILE, "image_name,label,extra\nimage_000000.png,3,x\nimage_000001.png,0,y\n")
    (src / module.IMAGE_FOLDER).mkdir()
    p = plan(name, src, dst)
    assert [j.output for j in p.jobs] == [dst / module.IMAGE_FOLDER / f"image_00000{i}.png" for i in (0, 1)]
    p.write_labels({0})
    with open(dst / module.LABEL_FILE, newline="") as f:
        assert list(csv.reader(f)) == [["image_name", "label", "extra"], ["image_000000.png", "3", "x"]]


def test_folder_mirrors_the_tree_and_ignores_its_own_output(tmp_path):
    src = tmp_path / "photos"
    for rel in ("a.jpg", "sub/b.PNG", "sub/deeper/c.jpeg", "notes.txt"):
        _touch(src / rel)
    dst = src / "aligned"  # output inside the source tree
    _touch(dst / "a.jpg")
    p = plan("folder", src, dst)
    outputs = sorted(str(j.output.relative_to(dst)) for j in p.jobs)
    assert outputs == ["a.jpg", "sub/b.PNG", "sub/deeper/c.jpeg"]


def test_unknown_dataset_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="expw, rafdb, sfew, ckplus, folder"):
        plan("affectnet", tmp_path, tmp_path)
