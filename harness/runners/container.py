"""Container launcher: each run in its own container of the model's image, through the Docker Engine API.

Works against Docker or Podman's Docker-compatible socket (harness/engine.py finds it). A container
sees only what the run needs: the dataset read-only at /fer/data, the pretrained weights read-only at
/fer/weights, the generated synthetic set read-only under /fer/cache, the decoded-image cache
read-write at /fer/cache/decoded, and its own run folder read-write at /fer/run. No network, no capabilities, no privilege gain, a read-only root filesystem
with a writable /tmp, files written as the calling user. The spec the container reads names those
mount points, never host paths. The container is removed after the run, whatever happened.
"""
from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any, Iterator

from common.errors import MissingPathError
from common.io import atomic_write_json
from harness import engine, images
from harness.plan import Planned
from harness.runners.supervisor import Exit, Supervisor, gpu_env

DATA, WEIGHTS, CACHE, RUN = "/fer/data", "/fer/weights", "/fer/cache", "/fer/run"
logger = logging.getLogger(__name__)
CONTAINER_SPEC = "container-spec.json"   # the spec as the container sees it (mount points, not host paths)
LABEL_RUN, LABEL_HARNESS = "fer-crossval.run", "fer-crossval.harness"


def host_data_root(p: Planned) -> Path:
    from common.datasets.base import default_data_root

    return Path(p.spec.data_root).resolve() if p.spec.data_root else default_data_root().resolve()


def host_weights_dir(p: Planned) -> Path:
    from common.fingerprint import weights_folder

    return weights_folder(p.spec.config)


def synthetic_cache(p: Planned) -> Path | None:
    if p.spec.dataset != "synthetic":
        return None
    from common.datasets.synthetic import cache_dir

    return cache_dir(p.spec.config["data"]["synthetic"])


def container_spec(p: Planned) -> dict[str, Any]:
    """spec.json with every host path replaced by its mount point; the spec hash must not change."""
    data = p.spec.to_json()
    data["data_root"] = DATA
    data["config"] = {**data["config"], "weights_dir": WEIGHTS}
    data["overrides"] = {k: v for k, v in data["overrides"].items() if k not in ("weights_dir", "pretrained")}
    if data["config"].get("pretrained") not in (None, "none", "auto"):
        given = Path(str(data["config"]["pretrained"]))
        data["config"]["pretrained"] = WEIGHTS + ("" if given.is_dir() else f"/{given.name}")
    return data


def decoded_cache() -> Path | None:
    """The host's decoded-image cache (common/cache.py), shared read-write by runs; None if unusable."""
    from common.cache import cache_root

    folder = cache_root()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # the run then logs that it decodes per sample
    return folder.resolve()


def mounts(p: Planned) -> dict[str, dict[str, str]]:
    vols = {str(p.run_dir.resolve()): {"bind": RUN, "mode": "rw"}}
    if p.spec.config.get("data", {}).get("cache") and (decoded := decoded_cache()) is not None:
        # Only the decoded-image cache is writable: never the whole cache folder (the engine's socket is there).
        vols[str(decoded)] = {"bind": f"{CACHE}/decoded", "mode": "rw"}
    cache = synthetic_cache(p)
    if cache is not None:
        vols[str(cache)] = {"bind": f"{CACHE}/synthetic/{cache.name}", "mode": "ro"}
    else:
        vols[str(host_data_root(p))] = {"bind": DATA, "mode": "ro"}
    pretrained = p.spec.config.get("pretrained")
    if pretrained not in (None, "none", "auto"):
        given = Path(str(pretrained)).resolve()
        vols[str(given)] = {"bind": WEIGHTS if given.is_dir() else f"{WEIGHTS}/{given.name}", "mode": "ro"}
    elif pretrained == "auto" and host_weights_dir(p).is_dir():
        vols[str(host_weights_dir(p).resolve())] = {"bind": WEIGHTS, "mode": "ro"}
    return vols


class ContainerLaunch:
    def __init__(self, container: Any, memory: str | None, image: dict[str, str]) -> None:
        self.container = container
        self.memory = memory
        self.image = image
        self._killed = False

    def lines(self) -> Iterator[str]:
        buf = b""
        for chunk in self.container.logs(stream=True, follow=True):
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line.decode("utf-8", "replace").rstrip("\r")
        if buf:
            yield buf.decode("utf-8", "replace")

    def wait(self) -> Exit:
        result = self.container.wait()
        self.container.reload()
        rc = result.get("StatusCode")
        oom = bool(self.container.attrs.get("State", {}).get("OOMKilled"))
        detail = f"container memory limit {self.memory}" if self.memory else ""
        # Podman on cgroup v1 does not report OOMKilled. Under a memory limit, a SIGKILL that the
        # harness did not send can only have come from the kernel's OOM killer (or someone's `kill -9`).
        if not oom and self.memory and rc == 137 and not self._killed:
            oom = True
            detail += "; inferred from SIGKILL: the engine reported no OOM flag"
        return Exit(returncode=rc, oom_killed=oom, detail=detail, status=self.image)

    def _signal(self, sig: str) -> None:
        import docker

        try:
            self.container.kill(signal=sig)
        except docker.errors.APIError:
            pass  # already stopped

    def interrupt(self) -> None:
        self._signal("SIGINT")

    def kill(self) -> None:
        self._killed = True
        self._signal("SIGKILL")

    def close(self) -> None:
        import docker

        try:
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass


def gpu_request(runtime: str | None, device: str) -> Any:
    """The device request that gives a container host GPU `device` (numbered as nvidia-smi does):
    by its CDI name for Podman, by index through the NVIDIA toolkit for Docker."""
    import docker

    if runtime == "cdi":
        return docker.types.DeviceRequest(driver="cdi", device_ids=[f"nvidia.com/gpu={device}"])
    return docker.types.DeviceRequest(device_ids=[device], capabilities=[["gpu"]])


class ContainerLauncher:
    name = "container"

    def __init__(self, memory: str | None = None, shm_size: str = "2g", cpus: float | None = None,
                 base_image: str | None = None) -> None:
        self.memory = memory
        self.shm_size = shm_size
        self.cpus = cpus
        self.base_image = base_image
        self.client: Any = None
        self.gpu_runtime: str | None = None
        self.tags: dict[str, str] = {}
        self.harness_id = f"{socket.gethostname()}:{os.getpid()}"

    def preflight(self, todo: list[Planned], gpus: list[str] | None = None) -> None:
        self.client = engine.connect()
        reap_orphans(self.client)
        if gpus:
            self.gpu_runtime = engine.gpu_runtime(self.client)
        for model in sorted({p.spec.model for p in todo}):
            tag = images.image_tag(model, self.base_image)
            if not engine.image_exists(self.client, tag):
                raise engine.EngineError(f"image {tag} is not built: run `make build MODEL={model}`"
                                         + (" with the same BASE_IMAGE" if os.environ.get("FER_BASE_IMAGE") else ""))
            self.tags[model] = tag
        for p in todo:
            if p.spec.dataset != "synthetic" and not host_data_root(p).is_dir():
                raise MissingPathError(f"dataset folder {host_data_root(p)} does not exist: give DATA_ROOT=<folder "
                                        f"holding the datasets> (see README, Datasets)")

    def options(self, p: Planned, device: str | None, share: int = 1) -> dict[str, Any]:
        """Everything a run container is created with, but its image and command."""
        env = {"FER_CACHE_DIR": CACHE, "PYTHONUNBUFFERED": "1"}
        kwargs: dict[str, Any] = {}
        if device is not None:
            env.update(gpu_env(share))
            kwargs["device_requests"] = [gpu_request(self.gpu_runtime, device)]
        if self.memory:
            kwargs["mem_limit"] = self.memory
            kwargs["memswap_limit"] = self.memory  # no swap on top: a too-small limit is an OOM kill, not a crawl
        if self.cpus:
            kwargs["nano_cpus"] = int(self.cpus * 1e9)
        return dict(
            labels={LABEL_RUN: f"{p.spec.model}/{p.spec.dataset}/{p.spec.protocol}/iter-{p.spec.iteration}",
                    LABEL_HARNESS: self.harness_id},
            user=f"{os.getuid()}:{os.getgid()}", environment=env, volumes=mounts(p),
            network_mode="none", cap_drop=["ALL"], security_opt=["no-new-privileges"],
            read_only=True, tmpfs={"/tmp": "rw,exec,mode=1777"}, shm_size=self.shm_size, **kwargs)

    def start(self, p: Planned, spec_path: Path, device: str | None, share: int = 1) -> ContainerLaunch:
        atomic_write_json(p.run_dir / CONTAINER_SPEC, container_spec(p))
        tag = self.tags[p.spec.model]
        info = engine.image_info(self.client, tag)
        # Merged into status.json however the run ends, so even a crashed run names its image.
        image = {"image": f"{tag}@{info['id'][:19]}", "image_id": info["id"], "image_digest": info["digest"]}
        container = self.client.containers.run(tag, command=[f"{RUN}/{CONTAINER_SPEC}"], detach=True,
                                               **self.options(p, device, share))
        return ContainerLaunch(container, self.memory, image)


def reap_orphans(client: Any) -> None:
    """Remove run containers left by a harness on this host that no longer exists (killed, SIGHUP)."""
    host = socket.gethostname()
    for c in client.containers.list(all=True, filters={"label": LABEL_HARNESS}):
        owner = c.labels.get(LABEL_HARNESS, "")
        name, _, pid = owner.rpartition(":")
        if name == host and pid.isdigit() and not _alive(int(pid)):
            logger.info(f"removing orphaned container {c.name} ({c.labels.get(LABEL_RUN)}): its harness {owner} is gone")
            c.remove(force=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_container(planned: list[Planned], jobs: int = 1, timeout: float | None = None, gpus: list[str] | None = None,
                  echo: bool = True, memory: str | None = None, shm_size: str = "2g", cpus: float | None = None,
                  base_image: str | None = None) -> list[dict]:
    launcher = ContainerLauncher(memory=memory, shm_size=shm_size, cpus=cpus, base_image=base_image)
    return Supervisor(launcher, jobs=jobs, timeout=timeout, gpus=gpus, echo=echo).run(planned)
