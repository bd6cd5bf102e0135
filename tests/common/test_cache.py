"""The decoded cache (common/cache.py): same pixels as decoding per sample, keyed by content, built
once when two processes want it, and never a reason for a run to fail."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from common.adapter import InputSpec
from common.cache import content_key, decoded_images
from common.datasets.base import Pool
from common.io import read_json
from common.transforms import resize_op

REPO = Path(__file__).resolve().parents[2]
SPEC = InputSpec(size=40, interpolation="bicubic")


def _pool(folder: Path, n: int = 12, name: str = "toy") -> Pool:
    """n JPEGs of random content and odd sizes (the resize is part of what is cached)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"img_{i:02d}.jpg"
        if not p.exists():
            Image.fromarray(rng.integers(0, 256, (50 + i, 37 + 2 * i, 3), dtype=np.uint8)).save(p, quality=90)
        paths.append(str(p))
    return Pool(name=name, class_names=["a", "b"], ids=[Path(p).stem for p in paths], labels=[i % 2 for i in range(n)],
                root=str(folder), paths=paths)


def test_cached_pixels_are_what_the_per_image_path_decodes(tmp_path: Path) -> None:
    pool = _pool(tmp_path / "data")
    resize = resize_op(SPEC, 40)
    logs: list[str] = []
    images = decoded_images(pool, 40, "bicubic", resize, log=logs.append, root=tmp_path / "cache")
    assert images.shape == (12, 3, 40, 40) and images.dtype == np.uint8  # planes, as the model reads them
    for i in range(len(pool)):
        assert np.array_equal(images[i].transpose(1, 2, 0), np.asarray(resize(pool.image(i))))
    assert any("built" in line for line in logs)
    # A second call reads the finished folder, memory-mapped, without building.
    logs.clear()
    again = decoded_images(pool, 40, "bicubic", resize, log=logs.append, root=tmp_path / "cache")
    assert isinstance(again, np.memmap) and np.array_equal(again, images)
    assert not any("built" in line for line in logs)


def test_the_key_follows_content_size_interpolation_and_exclusions(tmp_path: Path) -> None:
    pool = _pool(tmp_path / "data")
    key = content_key(pool, 40, "bicubic")
    assert content_key(pool, 40, "bicubic") == key
    assert content_key(pool, 48, "bicubic") != key and content_key(pool, 40, "bilinear") != key
    # An image the loader excluded is not in the pool, so not in the cache and not in its key.
    kept = Pool(name="toy", class_names=pool.class_names, ids=pool.ids[1:], labels=pool.labels[1:],
                root=pool.root, paths=pool.paths[1:])
    assert content_key(kept, 40, "bicubic") != key
    images = decoded_images(kept, 40, "bicubic", resize_op(SPEC, 40), log=lambda _: None, root=tmp_path / "cache")
    assert images.shape[0] == len(pool) - 1
    assert np.array_equal(images[0].transpose(1, 2, 0), np.asarray(resize_op(SPEC, 40)(pool.image(1))))
    # A re-written image (new size, new mtime) is a new key: the stale cache is not read.
    Image.fromarray(np.zeros((60, 60, 3), dtype=np.uint8)).save(pool.paths[3], quality=50)
    os.utime(pool.paths[3], ns=(1, 1))
    assert content_key(pool, 40, "bicubic") != key
    fresh = decoded_images(pool, 40, "bicubic", resize_op(SPEC, 40), log=lambda _: None, root=tmp_path / "cache")
    assert fresh[3].max() <= 1


def test_two_builders_at_once_build_once(tmp_path: Path) -> None:
    pool = _pool(tmp_path / "data", n=40)
    logs: list[str] = []
    results: list[np.ndarray | None] = [None, None]

    def build(k: int) -> None:
        results[k] = decoded_images(pool, 40, "bicubic", resize_op(SPEC, 40), log=logs.append, root=tmp_path / "cache")

    threads = [threading.Thread(target=build, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum("built" in line for line in logs) == 1, logs
    assert np.array_equal(results[0], results[1])
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == \
        [f"toy-40px-bicubic-{content_key(pool, 40, 'bicubic')}"]  # no temporary folder left behind


def test_an_unusable_location_is_a_log_line_and_no_cache(tmp_path: Path) -> None:
    pool = _pool(tmp_path / "data", n=3)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    logs: list[str] = []
    assert decoded_images(pool, 40, "bicubic", resize_op(SPEC, 40), log=logs.append, root=blocker / "decoded") is None
    assert len(logs) == 1 and "decoded cache unavailable" in logs[0] and "FER_CACHE_DIR" in logs[0]


def _run(results: Path, cache: Path, monkeypatch, *overrides: str) -> Path:
    """One quick iteration of the test-only tiny model: planned in-process, run as `python -m common.run`."""
    from common.config import parse_overrides
    from harness.plan import plan

    models = str(REPO / "tests" / "fixtures" / "models")
    monkeypatch.setenv("FER_MODELS_PATH", models)
    monkeypatch.setenv("FER_CACHE_DIR", str(cache))
    small = ["data.synthetic.n=300", "data.synthetic.size=48", "data.image_size=32", "train.threads=1",
             "data.num_workers=1", "train.epochs=2", "augment.random_apply_p=0.5", "augment.rotation=10",
             "augment.crop_padding=4", "augment.erasing=0.25", "augment.batched=false", *overrides]
    (planned,) = plan("tiny", "synthetic", "quick", "1", parse_overrides(small), results)
    planned.run_dir.mkdir(parents=True, exist_ok=True)
    planned.spec.save(planned.run_dir / "spec.json")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "common.run", str(planned.run_dir / "spec.json")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return planned.run_dir


def test_one_iteration_with_and_without_the_cache_predicts_the_same(tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    plain = _run(tmp_path / "plain", cache, monkeypatch, "data.cache=false")
    cached = _run(tmp_path / "cached", cache, monkeypatch, "data.cache=true")
    assert read_json(plain / "status.json")["data_path"] == {"decoded_cache": None, "augmentation": "per-image",
                                                             "train_workers": 1}
    used = read_json(cached / "status.json")["data_path"]["decoded_cache"]
    assert used and Path(used).parent == cache / "decoded"
    with open(plain / "predictions.csv") as a, open(cached / "predictions.csv") as b:
        rows_a, rows_b = list(csv.reader(a)), list(csv.reader(b))
    assert len(rows_a) > 50 and rows_a == rows_b
    assert (plain / "train_log.jsonl").read_text().count("train_loss") == 2
    losses = [line.split('"val_loss"')[0] for line in (plain / "train_log.jsonl").read_text().splitlines()]
    assert losses == [line.split('"val_loss"')[0] for line in (cached / "train_log.jsonl").read_text().splitlines()]


def test_a_batched_augmentation_run_says_so_and_reads_the_cache(tmp_path: Path, monkeypatch) -> None:
    run_dir = _run(tmp_path / "batched", tmp_path / "cache", monkeypatch, "augment.batched=true")
    status = read_json(run_dir / "status.json")
    assert status["status"] == "done" and status["data_path"]["augmentation"] == "batched"
    assert status["data_path"]["decoded_cache"] and status["data_path"]["train_workers"] == 0
    assert (run_dir / "train_log.jsonl").read_text().count("train_loss") == 2


def test_caches_of_an_older_format_are_named_once_a_new_one_is_built(tmp_path: Path, monkeypatch) -> None:
    """A format change orphans every cache; building the new one names the old folders and their
    size, and deletes nothing (another checkout may still read them)."""
    from common import cache

    pool, resize = _pool(tmp_path / "data"), resize_op(SPEC, 40)
    with monkeypatch.context() as m:
        m.setattr(cache, "CACHE_FORMAT", cache.CACHE_FORMAT - 1)
        decoded_images(pool, 40, "bicubic", resize, log=lambda _: None, root=tmp_path / "cache")
    (old,) = cache.older_formats(tmp_path / "cache")
    logs: list[str] = []
    decoded_images(pool, 40, "bicubic", resize, log=logs.append, root=tmp_path / "cache")
    (line,) = [x for x in logs if "older cache format" in x]
    assert old.name in line and "GB" in line and old.exists()
    # Reading a finished cache does not scan the folder again.
    logs.clear()
    decoded_images(pool, 40, "bicubic", resize, log=logs.append, root=tmp_path / "cache")
    assert not any("older cache format" in x for x in logs)
