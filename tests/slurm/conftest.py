"""SLURM tests run against a real single-node cluster on this host (harness/cluster/slurm-up.sh, also
`make slurm-up`): slurmctld, slurmd, munge and accounting through slurmdbd + MariaDB. A cluster that
cannot be started fails the tests; nothing here is skipped."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.io import read_json

REPO = Path(__file__).resolve().parents[2]
SMALL = ["data.synthetic.n=300", "data.synthetic.size=48", "data.image_size=32", "train.threads=1",
         "data.num_workers=0"]


@pytest.fixture(scope="session")
def cluster() -> dict[str, str]:
    """Start (or reuse) the test cluster; returns the environment that points SLURM's commands at it."""
    env = dict(os.environ)
    ours = str(REPO / ".cache" / "slurm" / "etc" / "slurm.conf")
    # A developer's own cluster (SLURM_CONF elsewhere) is used as it is; otherwise the one slurm-up.sh makes.
    if env.setdefault("SLURM_CONF", ours) == ours:
        up = subprocess.run([str(REPO / "harness" / "cluster" / "slurm-up.sh"), "up"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=900)
        if up.returncode != 0:
            pytest.fail(f"the SLURM test cluster did not start:\n{up.stdout[-2000:]}\n{up.stderr[-2000:]}")
        os.environ["SLURM_CONF"] = env["SLURM_CONF"]  # for the slurm commands the tests call themselves
    return env


class Harness:
    """`python -m harness ...` subprocesses on one results folder, with the test-only `tiny` model."""

    def __init__(self, results: Path, env: dict[str, str], cache: Path) -> None:
        self.results = results
        self.env = dict(env, FER_MODELS_PATH=str(REPO / "tests" / "fixtures" / "models"), FER_CACHE_DIR=str(cache),
                        PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")

    def __call__(self, command: str, *args: str, sets: tuple[str, ...] = (), exits: tuple[int, ...] = (0, 1),
                 **env: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "harness", command, "--model", "tiny", "--dataset", "synthetic",
               "--profile", "quick", "--results", str(self.results), *args, "--set", *SMALL, *sets]
        proc = subprocess.run(cmd, cwd=REPO, env=dict(self.env, **env), capture_output=True, text=True, timeout=600)
        if proc.returncode not in exits:
            raise AssertionError(f"{' '.join(cmd[2:4])} exited {proc.returncode}\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def run_dir(self, iteration: int) -> Path:
        (found,) = (self.results / "runs" / "tiny" / "synthetic").glob(f"*/iter-{iteration}")
        return found

    def status(self, iteration: int) -> dict:
        return read_json(self.run_dir(iteration) / "status.json")


@pytest.fixture
def make_harness(cluster, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "synthetic-cache"
    return lambda name: Harness(tmp_path_factory.mktemp(name), cluster, cache)


def wait_for(predicate, timeout: float, what: str, every: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
