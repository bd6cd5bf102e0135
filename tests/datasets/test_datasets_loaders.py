"""Each real-layout loader on a small dataset the test writes: contents, order, errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.datasets import (
    DatasetLayoutError,
    ckplus,
    class_names,
    dataset_names,
    expw,
    fer2013,
    ferplus,
    load_pool,
    rafdb,
    sfew,
)
from tests.datasets.layouts import truncate, write_fer2013, write_small

MODULES = {"rafdb": rafdb, "fer2013": fer2013, "ferplus": ferplus, "expw": expw, "sfew": sfew,
           "ckplus": ckplus}
CLASSES = {
    "rafdb": ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"],
    "fer2013": ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"],
    "ferplus": ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"],
    "expw": ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"],
    "sfew": ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"],
    "ckplus": ["anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"],
}


def test_names_and_class_orders():
    assert dataset_names() == ["rafdb", "fer2013", "ferplus", "expw", "sfew", "ckplus", "synthetic"]
    for name, expected in CLASSES.items():
        assert class_names(name) == expected
    assert class_names("synthetic") == CLASSES["rafdb"]


def test_unknown_name_lists_valid_names(tmp_path):
    for call in (lambda: class_names("raf-db"), lambda: load_pool("raf-db", tmp_path)):
        with pytest.raises(KeyError) as info:
            call()
        assert "raf-db" in str(info.value) and "rafdb" in str(info.value) and "ckplus" in str(info.value)


def test_pool_contents_and_order(real_name, tmp_path):
    fx = write_small(real_name, tmp_path)
    pool = load_pool(real_name, tmp_path)
    assert pool.name == real_name
    assert pool.class_names == CLASSES[real_name]
    assert pool.ids == fx.ids and len(pool) == len(fx.ids)
    assert pool.labels.dtype == np.int64 and pool.labels.tolist() == fx.labels
    assert pool.excluded == []
    assert pool.class_counts() == np.bincount(fx.labels, minlength=len(CLASSES[real_name])).tolist()
    assert pool.class_counts([0, 1]) == np.bincount(fx.labels[:2], minlength=len(CLASSES[real_name])).tolist()
    images = [np.asarray(pool.image(i)) for i in range(len(pool))]
    for i, a in enumerate(images):
        assert pool.image(i).mode == "RGB" and pool.image(i).size == fx.size
        if fx.paths is not None:  # the image of sample i is the file of label line i
            with Image.open(fx.paths[i]) as want:
                assert np.array_equal(a, np.asarray(want.convert("RGB")))
    assert len({a.tobytes() for a in images}) == len(images)


def test_rafdb_labels_are_1_to_7_on_disk(tmp_path):
    fx = write_small("rafdb", tmp_path)
    first = (fx.dir / rafdb.LABEL_FILE).read_text().splitlines()[0]
    assert first == f"{fx.ids[0]} {fx.labels[0] + 1}"
    assert load_pool("rafdb", tmp_path).labels[0] == fx.labels[0]


def test_grey_sources_become_three_equal_channels(tmp_path):
    for name in ("fer2013", "ferplus", "ckplus"):
        write_small(name, tmp_path)
        a = np.asarray(load_pool(name, tmp_path).image(3))
        assert a.shape[2] == 3
        assert np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2])


def test_root_may_be_the_dataset_folder_itself(real_name, tmp_path):
    fx = write_small(real_name, tmp_path, nested=False)
    assert fx.dir == tmp_path
    assert load_pool(real_name, tmp_path).ids == fx.ids


def test_root_from_environment(monkeypatch, tmp_path):
    fx = write_small("sfew", tmp_path)
    monkeypatch.setenv("FER_DATA_ROOT", str(tmp_path))
    assert load_pool("sfew").ids == fx.ids


def test_missing_label_file_names_it_and_shows_layout(real_name, tmp_path):
    fx = write_small(real_name, tmp_path)
    module = MODULES[real_name]
    (fx.dir / module.LABEL_FILE).unlink()
    with pytest.raises(DatasetLayoutError) as info:
        load_pool(real_name, tmp_path)
    msg = str(info.value)
    assert str(tmp_path / module.FOLDER / module.LABEL_FILE) in msg
    assert module.LAYOUT.splitlines()[0] in msg and module.LAYOUT.splitlines()[1] in msg
    assert isinstance(info.value, FileNotFoundError)


def test_missing_image_is_an_error_naming_it(file_name, tmp_path):
    fx = write_small(file_name, tmp_path, skip_index=2)
    with pytest.raises(DatasetLayoutError) as info:
        load_pool(file_name, tmp_path)
    msg = str(info.value)
    assert str(fx.paths[2]) in msg and "missing" in msg
    assert MODULES[file_name].LAYOUT.splitlines()[0] in msg
    assert "exclude_missing" in msg


def test_exclude_missing_drops_and_records(file_name, tmp_path):
    fx = write_small(file_name, tmp_path, skip_index=2)
    pool = load_pool(file_name, tmp_path, exclude_missing=True)
    assert pool.excluded == [{"id": fx.ids[2], "path": str(fx.paths[2]), "reason": "missing"}]
    keep = [i for i in range(len(fx.ids)) if i != 2]
    assert pool.ids == [fx.ids[i] for i in keep]
    assert pool.labels.tolist() == [fx.labels[i] for i in keep]
    with Image.open(fx.paths[3]) as want:  # sample 3 moved to position 2 with its own image
        assert np.array_equal(np.asarray(pool.image(2)), np.asarray(want.convert("RGB")))


def test_truncated_image_is_corrupt(file_name, tmp_path):
    fx = write_small(file_name, tmp_path)
    truncate(fx.paths[1])
    with pytest.raises(DatasetLayoutError) as info:
        load_pool(file_name, tmp_path)
    assert str(fx.paths[1]) in str(info.value)
    pool = load_pool(file_name, tmp_path, exclude_missing=True)
    assert [e["id"] for e in pool.excluded] == [fx.ids[1]]
    assert pool.excluded[0]["reason"].startswith(("truncated", "unreadable"))
    assert len(pool) == len(fx.ids) - 1


def test_non_image_file_is_corrupt(file_name, tmp_path):
    fx = write_small(file_name, tmp_path)
    fx.paths[4].write_bytes(b"<html>404 not found</html>")
    pool = load_pool(file_name, tmp_path, exclude_missing=True)
    assert [e["id"] for e in pool.excluded] == [fx.ids[4]]
    assert pool.excluded[0]["reason"].startswith("unreadable")


def test_label_outside_encoding_names_the_line(file_name, tmp_path):
    fx = write_small(file_name, tmp_path)
    label_file = fx.dir / MODULES[file_name].LABEL_FILE
    lines = label_file.read_text().splitlines()
    header = 0 if file_name in ("rafdb", "expw") else 1
    bad = str(len(CLASSES[file_name]) + (1 if file_name == "rafdb" else 0))
    lines[header + 3] = lines[header + 3][:-1] + bad  # labels are the last, one-digit field
    label_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetLayoutError) as info:
        load_pool(file_name, tmp_path)
    assert f"line {header + 4}" in str(info.value) and bad in str(info.value)


def test_csv_header_must_have_the_columns(tmp_path):
    fx = write_small("sfew", tmp_path)
    (fx.dir / sfew.LABEL_FILE).write_text("name,emotion\nimage_000000.png,1\n")
    with pytest.raises(DatasetLayoutError) as info:
        load_pool("sfew", tmp_path)
    assert "image_name" in str(info.value) and "sfew_2.0_labels.csv" in str(info.value)


def test_duplicate_ids_are_an_error(tmp_path):
    fx = write_small("ckplus", tmp_path)
    label_file = fx.dir / ckplus.LABEL_FILE
    label_file.write_text(label_file.read_text() + f"{fx.ids[0]},2\n")
    with pytest.raises(DatasetLayoutError, match="appears twice"):
        load_pool("ckplus", tmp_path)


def test_synthetic_parameters_only_for_synthetic(tmp_path):
    write_small("sfew", tmp_path)
    with pytest.raises(ValueError, match="synthetic"):
        load_pool("sfew", tmp_path, synthetic={"n": 10})


# FER2013: the pixel strings.

def test_fer2013_pixels_parsed_once_into_one_array(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 48, 48), dtype=np.uint8)
    pixels[0, 0, :3] = [0, 255, 7]  # one-, two- and three-digit edge values
    write_fer2013(tmp_path, [0, 1, 2, 3, 6], pixels, extra_columns=True)
    pool = load_pool("fer2013", tmp_path)
    assert pool.pixels.dtype == np.uint8 and pool.pixels.shape == (5, 48, 48)
    assert np.array_equal(pool.pixels, pixels)
    assert np.array_equal(np.asarray(pool.image(4))[..., 1], pixels[4])
    assert pool.labels.tolist() == [0, 1, 2, 3, 6]


def test_parse_pixels_matches_naive_parsing():
    rng = np.random.default_rng(1)
    rows = [" ".join(map(str, rng.integers(0, 256, 16))) for _ in range(2500)]  # > one chunk
    rows[7] = "  " + rows[7].replace(" ", " \t ", 1) + " \r"  # stray whitespace is tolerated
    want = np.array([[int(v) for v in r.split()] for r in rows], dtype=np.uint8).reshape(-1, 4, 4)
    assert np.array_equal(fer2013.parse_pixels(rows, side=4), want)


@pytest.mark.parametrize("bad, problem", [
    ("1 2 3", "3 pixel values"),
    ("1 2 3 256", "above 255"),
    ("1 2 3 1000", "above 255"),
    ("1 2\n3 4", "line break"),
    ("1 2 3 4 5", "5 pixel values"),
    ("1 2 x 4", "unexpected character"),
])
def test_parse_pixels_names_the_bad_row(bad, problem):
    rows = ["0 0 0 0"] * 1030 + [bad]
    with pytest.raises(fer2013.PixelFormatError, match=problem) as info:
        fer2013.parse_pixels(rows, side=2)
    assert info.value.row == 1030


def test_fer2013_corrupt_row_names_the_line(tmp_path):
    fx = write_small("fer2013", tmp_path)
    path = fx.dir / fer2013.LABEL_FILE
    lines = path.read_text().splitlines()
    lines[3] = lines[3][: len(lines[3]) // 2]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetLayoutError) as info:
        load_pool("fer2013", tmp_path)
    assert "line 4" in str(info.value) and "fer2013_modified.csv" in str(info.value)


def test_package_is_torch_free():
    """The harness imports it where torch is absent; pandas is only imported to read a CSV."""
    code = "import sys, common.datasets; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.split() == ["False", "False"]
