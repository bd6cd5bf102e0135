"""What a run container is given, without an engine: the spec it reads and the folders it sees."""
from __future__ import annotations

import json

from common.spec import RunSpec
from harness.plan import Planned, plan
from harness.runners.container import CACHE, DATA, RUN, WEIGHTS, container_spec, mounts


def test_synthetic_run_sees_its_own_folder_and_the_generated_set_only(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    [p] = plan("dan", "synthetic", "quick", "1", {}, tmp_path / "results")
    vols = mounts(p)
    assert vols[str(p.run_dir.resolve())] == {"bind": RUN, "mode": "rw"}
    others = {k: v for k, v in vols.items() if v["bind"] != RUN}
    # The synthetic set's own folder read-only, the decoded-image cache read-write; never the whole cache
    # folder (the engine's socket lives there).
    assert others[str(tmp_path / "cache" / "decoded")] == {"bind": f"{CACHE}/decoded", "mode": "rw"}
    [(host, target)] = [(k, v) for k, v in others.items() if "decoded" not in v["bind"]]
    assert target["mode"] == "ro" and target["bind"].startswith(f"{CACHE}/synthetic/")
    assert host.startswith(str(tmp_path / "cache" / "synthetic"))
    assert str(tmp_path / "cache") not in vols


def test_container_spec_names_mount_points_and_keeps_the_hash(tmp_path):
    data = tmp_path / "datasets"
    weights = tmp_path / "weights"
    (data / "RAF-DB").mkdir(parents=True)
    weights.mkdir()
    spec = RunSpec(model="dan", dataset="rafdb", iteration=0, profile="full", protocol="p",
                   config={"weights_dir": str(weights), "pretrained": "auto", "train": {"lr": 1e-3}},
                   overrides={"weights_dir": str(weights)}, data_root=str(data))

    planned = Planned(spec, spec.run_dir(tmp_path / "results"), "pending")
    inside = container_spec(planned)
    text = json.dumps(inside)
    assert str(tmp_path) not in text
    assert inside["data_root"] == DATA and inside["config"]["weights_dir"] == WEIGHTS
    reread = dict(inside)
    reread.pop("spec_hash")
    assert RunSpec(**reread).hash == spec.hash == inside["spec_hash"]
    vols = mounts(planned)
    assert vols[str(data.resolve())] == {"bind": DATA, "mode": "ro"}
    assert vols[str(weights.resolve())] == {"bind": WEIGHTS, "mode": "ro"}


def test_a_gpu_reaches_a_container_by_cdi_name_on_podman_and_by_index_on_docker():
    """Podman's API takes a GPU as a CDI device request (a device *path* named nvidia.com/gpu=N is
    refused by every Podman); Docker's as an index with the gpu capability."""
    from harness.runners.container import gpu_request

    cdi = gpu_request("cdi", "1")
    assert cdi["Driver"] == "cdi" and cdi["DeviceIDs"] == ["nvidia.com/gpu=1"]
    docker = gpu_request("nvidia", "1")
    assert docker["DeviceIDs"] == ["1"] and docker["Capabilities"] == [["gpu"]] and not docker["Driver"]
