"""Hostile alignment inputs (issue 12): label rows naming paths outside SRC must stop `align` before it
writes anything (their output would land outside DST); 16-bit sources are scaled, not clipped.
No detector needed: the refusal comes before MTCNN loads, and the 16-bit path is the decode step."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.datasets import DatasetLayoutError, ckplus, expw, rafdb, sfew
from preprocess.align import align_dataset, load_for_detection, write_face
from preprocess.layouts import Job, plan


def _raw(dataset: str, src: Path, name: str) -> Path:
    """A raw SRC layout with two label rows, the second naming `name`; returns its label file."""
    if dataset == "expw":
        (src / "image" / "origin").mkdir(parents=True)
        text = f"a.jpg 0 10 20 110 130 50.1 3\n{name} 0 10 20 110 130 50.1 3\n"
        label_file = src / expw.LABEL_FILE
    elif dataset == "rafdb":
        (src / "Image" / "original").mkdir(parents=True)
        text = f"train_00001.jpg 5\n{name} 1\n"
        label_file = src / rafdb.LABEL_FILE
    else:
        module = {"sfew": sfew, "ckplus": ckplus}[dataset]
        (src / module.IMAGE_FOLDER).mkdir(parents=True)
        text = f"image_name,label\nimage_000000.png,1\n{name},2\n"
        label_file = src / module.LABEL_FILE
    label_file.parent.mkdir(parents=True, exist_ok=True)
    label_file.write_text(text, encoding="utf-8")
    return label_file


@pytest.mark.parametrize("dataset", ["expw", "rafdb", "sfew", "ckplus"])
@pytest.mark.parametrize("kind", ["absolute", "parent"])
def test_label_row_outside_src_is_refused_before_anything_is_written(dataset, kind, tmp_path):
    src, dst = tmp_path / "raw", tmp_path / "out"
    name = str(tmp_path / "elsewhere" / "x.jpg") if kind == "absolute" else "../../../x.jpg"
    label_file = _raw(dataset, src, name)
    line = 3 if dataset in ("sfew", "ckplus") else 2

    with pytest.raises(DatasetLayoutError) as info:
        plan(dataset, src, dst)
    assert f"{label_file}: line {line}: image name {name!r}" in str(info.value)

    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(DatasetLayoutError, match=f"line {line}: image name"):
        align_dataset(dataset, src, dst, workers=0, log=io.StringIO())
    assert sorted(tmp_path.rglob("*")) == before and not dst.exists()


def test_16_bit_source_is_scaled_for_detection_and_for_the_written_face(tmp_path):
    level = 0x4000  # 16384: 64 in 8 bits; Pillow's convert("RGB") made it 255
    src = tmp_path / "face16.png"
    Image.fromarray(np.full((40, 40), level, dtype=np.uint16)).save(src)
    with Image.open(src) as im:
        assert im.mode == "I;16" and np.asarray(im.convert("RGB")).min() == 255  # the bug

    job = Job(src, tmp_path / "out" / "face16.png")
    loaded = load_for_detection(job)
    assert loaded["array"].dtype == np.uint8 and np.all(loaded["array"] == level >> 8)

    # No face found -> centre crop under --no-face center: the written face keeps the level too.
    assert write_face({"job": job, "matrix": None, "size": 112, "margin": 0.25}) == {}
    with Image.open(job.output) as out:
        a = np.asarray(out)
    inner = a[2:-2, 2:-2].astype(int)  # the warp's outermost pixels sample the black border
    assert a.shape == (112, 112, 3) and np.abs(inner - (level >> 8)).max() <= 1
