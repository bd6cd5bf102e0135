"""The synthetic dataset: deterministic bytes, RAF-DB layout and imbalance, atomic cache."""
from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from common.datasets import load_pool, rafdb, synthetic

SMALL = {"n": 40, "size": 32, "seed": 3, "label_noise": 0.1}


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_same_arguments_same_bytes(tmp_path):
    a = _files(synthetic.generate(tmp_path / "a", **SMALL))
    b = _files(synthetic.generate(tmp_path / "b", **SMALL))
    assert len(a) == SMALL["n"] + 2  # images + label file + synthetic.json
    assert a == b
    c = _files(synthetic.generate(tmp_path / "c", **{**SMALL, "seed": 4}))
    images = [k for k in a if k.endswith(".jpg")]
    assert sum(a[k] != c[k] for k in images) == len(images)


def test_written_in_the_rafdb_layout(tmp_path):
    d = synthetic.generate(tmp_path / "s", **SMALL)
    lines = (d / rafdb.LABEL_FILE).read_text().splitlines()
    assert lines[0].startswith("train_00001.jpg ") and lines[-1].startswith("test_0008.jpg ")
    assert {int(x.split()[1]) for x in lines} <= set(range(1, 8))
    pool = rafdb.load(d)
    assert len(pool) == SMALL["n"] and pool.class_names == synthetic.CLASS_NAMES
    img = pool.image(0)
    assert img.mode == "RGB" and img.size == (32, 32)


def test_class_imbalance_like_rafdb():
    assert synthetic.class_counts(15339) == list(synthetic.RAFDB_COUNTS)
    counts = synthetic.class_counts(3000)
    assert sum(counts) == 3000 and counts == [317, 69, 171, 1165, 481, 170, 627]
    true, noisy, flipped = synthetic.draw_labels(3000, 0, 0.0)
    assert np.bincount(true).tolist() == counts and np.array_equal(true, noisy) and flipped.size == 0
    assert np.argmax(counts) == synthetic.CLASS_NAMES.index("happiness")
    assert np.argmin(counts) == synthetic.CLASS_NAMES.index("fear")


def test_label_noise_flips_exactly_that_fraction(tmp_path):
    true, noisy, flipped = synthetic.draw_labels(1000, 0, 0.03)
    assert flipped.size == 30 and (true[flipped] != noisy[flipped]).all()
    assert (np.delete(true, flipped) == np.delete(noisy, flipped)).all()
    d = synthetic.generate(tmp_path / "s", **SMALL)
    meta = json.loads((d / "synthetic.json").read_text())
    assert len(meta["flipped_ids"]) == 4 and meta["generator_digest"] == synthetic.GENERATOR_DIGEST


def test_classes_differ_in_geometry_not_in_nuisance():
    """Same nuisance draw, different class: only the face changes, and it does change."""
    faces = [np.asarray(synthetic.render(c, 64, np.random.default_rng(7)), dtype=float) for c in range(7)]
    diffs = [np.abs(faces[0] - f).mean() for f in faces[1:]]
    assert all(d > 0.5 for d in diffs)
    corners = [f[:6, :6] for f in faces]  # background corner: same clutter in every class
    assert all(np.abs(corners[0] - c).max() < 40 for c in corners)


def test_load_pool_generates_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    pool = load_pool("synthetic", synthetic=SMALL)
    folder = synthetic.cache_dir(SMALL)
    assert folder == tmp_path / "synthetic" / f"40-32-3-0.1-{synthetic.GENERATOR_DIGEST}"
    assert pool.name == "synthetic" and pool.root == str(folder) and len(pool) == 40
    stamp = (folder / rafdb.LABEL_FILE).stat().st_mtime_ns
    again = load_pool("synthetic", synthetic=SMALL)
    assert (folder / rafdb.LABEL_FILE).stat().st_mtime_ns == stamp
    assert again.ids == pool.ids and np.array_equal(again.labels, pool.labels)
    assert [p.name for p in (tmp_path / "synthetic").iterdir()] == [folder.name]  # no temp left


def test_unknown_or_bad_parameters(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    with pytest.raises(ValueError, match=r"unknown synthetic parameter.*'images'.*label_noise"):
        load_pool("synthetic", synthetic={"images": 10})
    with pytest.raises(ValueError, match="label_noise"):
        load_pool("synthetic", synthetic={"label_noise": 1.5})
    assert synthetic.resolve_params(None) == synthetic.DEFAULTS


def _ensure(params: dict) -> str:
    return str(synthetic.ensure(params))


def test_two_processes_generating_at_once_both_read_a_complete_set(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    params = {**SMALL, "n": 60}
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as workers:
        results = workers.map(_ensure, [params, params])
    assert results[0] == results[1] == str(synthetic.cache_dir(params))
    assert len(load_pool("synthetic", synthetic=params)) == 60
    assert [p.name for p in (tmp_path / "synthetic").iterdir()] == [Path(results[0]).name]


def test_losing_the_rename_race_reads_the_winners_copy(tmp_path, monkeypatch):
    """Another process renames its copy into place while we generate: ours is discarded."""
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    final = synthetic.cache_dir(SMALL)
    real_generate = synthetic.generate

    def racing_generate(out_dir, **params):
        real_generate(final, **params)  # the other process finishes first
        return real_generate(out_dir, **params)

    monkeypatch.setattr(synthetic, "generate", racing_generate)
    assert synthetic.ensure(SMALL) == final
    assert [p.name for p in (tmp_path / "synthetic").iterdir()] == [final.name]
    assert len(rafdb.load(final)) == SMALL["n"]
