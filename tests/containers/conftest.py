"""Shared by the container tests: a real engine, the DAN image built by the project's own command, and
`python -m harness` in a subprocess. Without an engine these fail (never skip) with the set-up command."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import engine, images
from harness.runners.container import LABEL_RUN

REPO = Path(__file__).resolve().parents[2]
# One short deterministic DAN iteration: 32 px, 150 images, one epoch of single-threaded CPU steps.
TINY = ["data.synthetic.n=300", "data.synthetic.size=48", "data.image_size=32", "data.subset=150",
        "train.epochs=1", "train.batch_size=16", "train.t_max=1", "train.warmup_steps=0", "train.threads=1",
        "data.num_workers=0"]


def _env(cache: Path) -> dict[str, str]:
    return dict(os.environ, FER_CACHE_DIR=str(cache), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


def harness(*args: str, results: Path, cache: Path, sets: list[str] = TINY, timeout: float = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "harness", *args, "--results", str(results)]
    if args[0] == "run":
        cmd += ["--model", "dan", "--dataset", "synthetic", "--profile", "quick", "--iterations", "1",
                "--set", *sets]
    return subprocess.run(cmd, cwd=REPO, env=env or _env(cache), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def client():
    try:
        return engine.connect()
    except engine.EngineError as e:
        pytest.fail(f"{e}\n(`make test-containers` runs `make engine` first)")


@pytest.fixture(scope="session")
def dan_image(client) -> str:
    """Built by the project's own build command from docker/model.Dockerfile (reused when unchanged)."""
    proc = subprocess.run([sys.executable, "-m", "harness", "build", "--model", "dan"], cwd=REPO,
                          capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    tag = images.image_tag("dan")
    assert engine.image_exists(client, tag)
    return tag


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def run_containers(client) -> list:
    return client.containers.list(all=True, filters={"label": LABEL_RUN})
