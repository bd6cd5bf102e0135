"""Container runs for real: the DAN image built from its Dockerfile, runs through the real engine.

Needs a container engine (`make engine` sets up Podman; `make test-containers` does it first). These
tests never skip: without an engine they fail with the command that sets one up.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import engine, images
from harness.runners.container import ContainerLauncher
from tests.containers.conftest import REPO, TINY, _env, harness, run_containers

pytestmark = [pytest.mark.containers, pytest.mark.slow]

def status_of(results: Path, model: str = "dan") -> dict:
    [path] = results.glob(f"runs/{model}/synthetic/*/iter-0/status.json")
    return json.loads(path.read_text())


def test_image_is_pinned_labelled_and_non_root(client, dan_image):
    image = client.images.get(dan_image)
    cfg = image.attrs["Config"]
    assert cfg["User"] == "fer"
    assert cfg["Entrypoint"] == ["python", "-m", "common.run"]
    labels = cfg["Labels"]
    assert labels["fer-crossval.model"] == "dan"
    assert labels["org.opencontainers.image.revision"] not in ("", "unknown")
    assert labels["org.opencontainers.image.base.name"] == images.base_image_ref()
    # Exactly the locked set: pip inside the image lists every locked package at its locked version.
    out = client.containers.run(dan_image, entrypoint=["pip", "list", "--format=freeze"], remove=True,
                                network_mode="none").decode()
    installed = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
                 for line in out.splitlines() if "==" in line}
    from harness.lock import LOCK, read_pins

    locked = read_pins(LOCK)
    assert {k: installed.get(k) for k in locked} == locked
    # Only what the image needs: no tests, results, venv or weights in it.
    listing = client.containers.run(dan_image, entrypoint=["ls", "-A", "/opt/fer-crossval", "/opt/fer-crossval/models"],
                                    remove=True, network_mode="none").decode().split()
    assert "tests" not in listing and ".venv" not in listing and "results" not in listing and "pretrain" not in listing
    assert "dan" in listing and "poster" not in listing


def test_unchanged_model_is_not_rebuilt(dan_image):
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "harness", "build", "--model", "dan"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{dan_image} is up to date (reused)" in proc.stdout
    assert time.monotonic() - t0 < 60


def test_prune_keeps_the_current_images_only(client, dan_image):
    images.prune(["dan"])
    tags = {t.removeprefix("localhost/") for i in client.images.list(name="fer-crossval/dan") for t in i.tags}
    assert tags == {dan_image}
    assert engine.image_exists(client, images.base_tag())


def test_container_run_matches_local_run(client, dan_image, cache, tmp_path):
    local, boxed = tmp_path / "local", tmp_path / "container"
    p1 = harness("run", "--runner", "local", results=local, cache=cache)
    assert p1.returncode == 0, p1.stdout[-3000:] + p1.stderr[-3000:]
    p2 = harness("run", "--runner", "container", results=boxed, cache=cache)
    assert p2.returncode == 0, p2.stdout[-3000:] + p2.stderr[-3000:]
    [pred_local] = local.glob("runs/dan/synthetic/*/iter-0/predictions.csv")
    [pred_boxed] = boxed.glob("runs/dan/synthetic/*/iter-0/predictions.csv")
    assert pred_local.read_bytes() == pred_boxed.read_bytes()
    status = status_of(boxed)
    assert status["status"] == "done" and status["spec_hash"] == status_of(local)["spec_hash"]
    assert status["image"].startswith(dan_image + "@sha256:") and status["image_id"].startswith("sha256:")
    # The container's spec names mount points only; no host path of this machine.
    spec_text = (pred_boxed.parent / "container-spec.json").read_text()
    assert str(tmp_path) not in spec_text and str(REPO) not in spec_text
    # Results belong to the user who ran the harness (the image's own user is uid 10001).
    for f in pred_boxed.parent.iterdir():
        assert f.stat().st_uid == os.getuid() and f.stat().st_gid == os.getgid(), f
    assert "run.log" in {f.name for f in pred_boxed.parent.iterdir()}
    import pandas as pd

    summary = pd.read_csv(boxed / "summary.csv", dtype=str, keep_default_na=False)
    assert summary.loc[0, "image"] == status["image"]
    assert run_containers(client) == []


def test_isolation_of_a_run_container(client, dan_image, cache, tmp_path, monkeypatch):
    """The options the runner gives a run: probe them from inside a container started with exactly them."""
    monkeypatch.setenv("FER_CACHE_DIR", str(cache))
    from common.config import parse_overrides
    from harness.plan import plan, prepare

    [p] = plan("dan", "synthetic", "quick", "1", parse_overrides(["data.image_size=32"]), tmp_path / "results")
    launcher = ContainerLauncher()
    launcher.client = client
    launcher.tags["dan"] = dan_image
    spec_path = prepare(p)
    options = launcher.options(p, device=None)
    probe = r"""
import json, os, socket
out = {"uid": os.getuid(), "gid": os.getgid()}
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3); out["net"] = "connected"
except OSError as e:
    out["net"] = type(e).__name__
out["ifaces"] = sorted(n for _, n in socket.if_nameindex())
for name, path in (("data", "/fer/data/x"), ("root", "/opt/fer-crossval/x"), ("tmp", "/tmp/x"), ("run", "/fer/run/x"),
                   ("decoded", "/fer/cache/decoded/probe"), ("cache", "/fer/cache/x")):
    try:
        open(path, "w").write("x"); out[name] = "writable"
    except OSError as e:
        out[name] = type(e).__name__
out["cap_eff"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
out["nnp"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("NoNewPrivs")][0]
print(json.dumps(out))
"""
    raw = client.containers.run(dan_image, entrypoint=["python", "-c", probe], remove=True, **options)
    seen = json.loads(raw.decode().strip().splitlines()[-1])
    assert seen["uid"] == os.getuid() and seen["gid"] == os.getgid()
    assert seen["net"] != "connected" and seen["ifaces"] == ["lo"]
    assert seen["data"] != "writable" and seen["root"] != "writable"
    assert seen["tmp"] == "writable" and seen["run"] == "writable" and seen["decoded"] == "writable"
    assert seen["cache"] != "writable"
    (cache / "decoded" / "probe").unlink()
    assert int(seen["cap_eff"], 16) == 0 and seen["nnp"] == "1"
    assert (p.run_dir / "x").stat().st_uid == os.getuid()
    assert spec_path.is_file()


def test_timeout_leaves_no_container(client, dan_image, cache, tmp_path):
    results = tmp_path / "results"
    proc = harness("run", "--runner", "container", "--timeout", "4", results=results, cache=cache,
                   sets=TINY + ["train.epochs=5"])
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    status = status_of(results)
    assert status["status"] == "timeout" and status["error_class"] == "Timeout"
    assert run_containers(client) == []


def test_too_small_memory_limit_is_recorded_as_oom(client, dan_image, cache, tmp_path):
    results = tmp_path / "results"
    proc = harness("run", "--runner", "container", "--memory", "96m", results=results, cache=cache)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    status = status_of(results)
    assert status["status"] == "killed" and status["error_class"] == "OOMKilled", status
    assert "96m" in status["error_message"]
    assert run_containers(client) == []


def test_ctrl_c_stops_and_removes_the_container(client, dan_image, cache, tmp_path):
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "harness", "run", "--results", str(results), "--runner", "container",
           "--model", "dan", "--dataset", "synthetic", "--profile", "quick", "--iterations", "1",
           "--set", *TINY, "train.epochs=1000"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while not list(results.glob("runs/dan/synthetic/*/iter-0/train_log.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.5)  # until the run is training inside its container
    assert run_containers(client), "no run container appeared"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert time.monotonic() - t0 < 30, "the run did not stop within the grace period"
    assert proc.returncode == 130, out[-3000:]
    assert status_of(results)["status"] == "interrupted"
    assert run_containers(client) == []


def test_errors_a_user_can_fix_are_one_line(client, dan_image, cache, tmp_path):
    results = tmp_path / "results"
    env = dict(_env(cache), DOCKER_HOST=f"unix://{tmp_path}/nothing.sock")
    proc = harness("run", "--runner", "container", results=results, cache=cache, env=env)
    assert proc.returncode == 2 and "make engine" in proc.stdout, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr

    env = dict(_env(cache), FER_BASE_IMAGE="example.org/never-built:1")
    proc = harness("run", "--runner", "container", results=results, cache=cache, env=env)
    assert proc.returncode == 2 and "is not built: run `make build MODEL=dan`" in proc.stdout, proc.stdout + proc.stderr

    proc = harness("run", "--runner", "container", "--gpus", "0", results=results, cache=cache)
    # Podman's API passes GPUs (CDI devices) from 5.5 on; older ones, Debian bookworm's 4.3 here, are
    # refused before any container starts, with their version; newer ones without the CDI spec likewise.
    assert proc.returncode == 2, proc.stdout + proc.stderr
    from harness.engine import PODMAN_CDI_SINCE, engine_version

    version = engine_version(client)
    if version < PODMAN_CDI_SINCE:
        assert "need Podman 5.5 or newer" in proc.stdout and f"Podman {'.'.join(map(str, version))}" in proc.stdout
    else:
        assert "no GPU runtime" in proc.stdout, proc.stdout
    assert run_containers(client) == []
