"""Hostile dataset inputs, as issue 12 reproduces them: 16-bit PNGs, label rows naming paths outside
the dataset folder, empty label files (at load time and at plan time)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.datasets import DatasetLayoutError, ckplus, expw, ferplus, load_pool, rafdb, sfew
from common.datasets.base import to_rgb
from harness.plan import plan
from tests.datasets.layouts import write_small

MODULES = {"rafdb": rafdb, "ferplus": ferplus, "expw": expw, "sfew": sfew, "ckplus": ckplus}


def _gradient16(shape: tuple[int, int] = (24, 24)) -> np.ndarray:
    """Every 16-bit level from 0 to 65535 across the image, so 8-bit clipping shows at once."""
    return np.linspace(0, 0xFFFF, shape[0] * shape[1]).round().astype(np.uint16).reshape(shape)


# ---- 16-bit images -------------------------------------------------------------------------


def test_16_bit_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    fx = write_small("ckplus", tmp_path)  # CK+ frames are greyscale PNGs
    a = _gradient16()
    Image.fromarray(a).save(fx.paths[0])
    with Image.open(fx.paths[0]) as im:
        assert im.mode == "I;16"
        clipped = np.asarray(im.convert("RGB"))
    assert (clipped == 255).mean() > 0.95  # the bug: Pillow's own conversion whitens the face

    got = np.asarray(load_pool("ckplus", tmp_path).image(0))
    want = (a >> 8).astype(np.uint8)
    assert got.shape == (24, 24, 3) and got.dtype == np.uint8
    for c in range(3):
        assert np.array_equal(got[..., c], want)
    assert (got == 255).mean() < 0.01


def test_8_bit_levels_stored_as_16_bits_come_back_exactly(tmp_path):
    levels = np.arange(256, dtype=np.uint16).reshape(16, 16)
    path = tmp_path / "x.png"
    Image.fromarray(levels * 257).save(path)  # what an 8 -> 16 bit export writes
    with Image.open(path) as im:
        assert np.array_equal(np.asarray(to_rgb(im))[..., 0], levels)


def test_16_bit_pgm_opens_as_mode_i_and_is_scaled_the_same_way(tmp_path):
    a = _gradient16((8, 8))
    path = tmp_path / "x.pgm"
    Image.fromarray(a).save(path)
    with Image.open(path) as im:
        assert im.mode == "I"
        assert np.array_equal(np.asarray(to_rgb(im))[..., 1], (a >> 8).astype(np.uint8))


def test_8_bit_images_are_unchanged(tmp_path):
    fx = write_small("sfew", tmp_path)
    pool = load_pool("sfew", tmp_path)
    with Image.open(fx.paths[3]) as im:
        assert np.array_equal(np.asarray(pool.image(3)), np.asarray(im.convert("RGB")))


# ---- label rows naming paths outside the dataset folder ------------------------------------


def _image_name_on_disk(name: str, value: str) -> str:
    """The file the loader of `name` opens for label value `value`, relative to its image folder."""
    if name == "rafdb":
        return rafdb.image_filename(value)
    if name == "expw":
        return expw.face_filename(value, 0)
    return value


@pytest.mark.parametrize("name", list(MODULES))
@pytest.mark.parametrize("kind", ["absolute", "parent"])
def test_label_row_outside_the_dataset_folder_is_refused(name, kind, tmp_path):
    fx = write_small(name, tmp_path)
    module = MODULES[name]
    label_file = fx.dir / module.LABEL_FILE
    image_dir = fx.dir / module.IMAGE_FOLDER
    # Sample 1 (line 2, or 3 under a CSV header; for ExpW face 0 of img_001) names a real image
    # outside the folder, so only the path check can stop it.
    old = fx.ids[1].split("#")[0]
    ext = Path(old).suffix
    value = str(tmp_path / "elsewhere" / f"x{ext}") if kind == "absolute" else f"../../x{ext}"
    outside = (image_dir / _image_name_on_disk(name, value)).resolve()
    if kind == "parent" and name != "rafdb":  # RAF-DB's first-dot rule maps it to `_aligned.jpg`;
        assert fx.dir.resolve() not in outside.parents  # elsewhere the row really leaves the folder
    outside.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (1, 2, 3)).save(outside)
    text = label_file.read_text(encoding="utf-8")
    label_file.write_text(text.replace(old, value, 1), encoding="utf-8")
    line = 3 if module.LABEL_FILE.endswith(".csv") else 2

    with pytest.raises(DatasetLayoutError) as info:
        load_pool(name, tmp_path)
    msg = str(info.value)
    assert f"{label_file}: line {line}: image name {value!r}" in msg
    assert ("absolute path" if kind == "absolute" else "'..'") in msg
    assert module.LAYOUT.splitlines()[0] in msg


@pytest.mark.parametrize("value", ["\\\\server\\x.png", "C:\\x.png", "C:/x.png", "sub\\..\\..\\x.png",
                                   "sub/../../x.png", ".."])
def test_every_spelling_of_outside_is_refused(value, tmp_path):
    fx = write_small("sfew", tmp_path)
    label_file = fx.dir / sfew.LABEL_FILE
    label_file.write_text(label_file.read_text().replace(fx.ids[0], value, 1))
    with pytest.raises(DatasetLayoutError, match="line 2: image name"):
        load_pool("sfew", tmp_path)


def test_names_in_a_subfolder_of_the_image_folder_are_fine(tmp_path):
    fx = write_small("sfew", tmp_path)
    label_file = fx.dir / sfew.LABEL_FILE
    image_dir = fx.dir / sfew.IMAGE_FOLDER
    (image_dir / "sub").mkdir()
    (image_dir / fx.ids[0]).rename(image_dir / "sub" / fx.ids[0])
    label_file.write_text(label_file.read_text().replace(fx.ids[0], f"sub/{fx.ids[0]}", 1))
    pool = load_pool("sfew", tmp_path)
    assert pool.ids[0] == f"sub/{fx.ids[0]}" and pool.paths[0] == str(image_dir / "sub" / fx.ids[0])


# ---- empty label files ----------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_empty_label_file_names_the_file_and_the_layout(real_name, content, tmp_path):
    from common.datasets import _module

    fx = write_small(real_name, tmp_path)
    module = _module(real_name)
    label_file = fx.dir / module.LABEL_FILE
    label_file.write_text(content)
    with pytest.raises(DatasetLayoutError) as info:
        load_pool(real_name, tmp_path)
    msg = str(info.value)
    assert f"label file is empty: {label_file}" in msg
    assert "expected layout" in msg and module.LAYOUT.splitlines()[1] in msg


@pytest.mark.parametrize("name", ["fer2013", "ferplus", "sfew", "ckplus"])
def test_csv_label_file_with_only_its_header_is_empty(name, tmp_path):
    from common.datasets import _module

    fx = write_small(name, tmp_path)
    label_file = fx.dir / _module(name).LABEL_FILE
    label_file.write_text(label_file.read_text().splitlines()[0] + "\n")
    with pytest.raises(DatasetLayoutError, match=f"header row but no sample rows: {label_file}"):
        load_pool(name, tmp_path)


def test_empty_label_file_stops_the_plan_and_writes_nothing(tmp_path, capsys):
    from harness.cli import main

    fx = write_small("sfew", tmp_path / "data")
    (fx.dir / sfew.LABEL_FILE).write_text("image_name,label\n")
    results = tmp_path / "results"
    with pytest.raises(DatasetLayoutError, match="no sample rows"):
        plan("dan", "sfew", "full", "2", None, results, str(tmp_path / "data"))
    code = main(["run", "--model", "dan", "--dataset", "sfew", "--data-root", str(tmp_path / "data"),
                 "--results", str(results)])
    out = capsys.readouterr().out
    assert code == 2
    assert f"header row but no sample rows: {fx.dir / sfew.LABEL_FILE}" in out
    assert "expected layout" in out and "sfew_2.0_labels.csv" in out
    assert not results.exists()
