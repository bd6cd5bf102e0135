"""The container engine: Docker, or Podman through its Docker-compatible API socket.

Found in this order: $DOCKER_HOST; the socket `make engine` starts (.cache/engine/podman.sock, or
$FER_ENGINE_DIR); the Docker SDK's default (/var/run/docker.sock). Errors a user can fix say how.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from common.config import ROOT
from common.errors import FERUserError

ENGINE_HINT = ("start one: `make engine` (installs and starts Podman's Docker-compatible service), or start "
               "Docker, or point DOCKER_HOST at a running engine")


class EngineError(FERUserError, RuntimeError):
    """The container engine is missing, not answering, or lacks something the run needs."""


def state_dir() -> Path:
    return Path(os.environ.get("FER_ENGINE_DIR") or ROOT / ".cache" / "engine")


def docker_host() -> str | None:
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    sock = state_dir() / "podman.sock"
    return f"unix://{sock}" if sock.exists() else None


def connect() -> Any:
    """A docker.DockerClient that answered a ping, or an EngineError that says how to get one."""
    try:
        import docker
    except ImportError as e:
        raise EngineError("the `docker` Python package is missing: `make venv` installs it") from e
    host = docker_host()
    try:
        client = docker.DockerClient(base_url=host, timeout=600) if host else docker.from_env(timeout=600)
        client.ping()
    except Exception as e:  # the SDK raises several unrelated types for "nothing there"
        where = host or "the default Docker socket"
        raise EngineError(f"no container engine answering at {where} ({type(e).__name__}); {ENGINE_HINT}") from e
    return client


def is_podman(client: Any) -> bool:
    version = client.version()
    return any("podman" in c.get("Name", "").lower() for c in version.get("Components", []))


def build_cli(client: Any) -> str:
    """The command line tool that builds images for this engine: podman (volumes, host network) or docker."""
    if is_podman(client):
        if shutil.which("podman"):
            return "podman"
        raise EngineError("the engine is Podman but the `podman` command is not on PATH (needed to build images)")
    if shutil.which("docker"):
        return "docker"
    raise EngineError("the `docker` command is not on PATH (needed to build images); install the Docker CLI")


def cli_env(cli: str) -> dict[str, str]:
    """Environment for a podman/docker command so it talks to the same engine as the SDK."""
    env = {}
    conf = state_dir() / "containers.conf"
    if cli == "podman" and conf.is_file() and not os.environ.get("CONTAINERS_CONF"):
        env["CONTAINERS_CONF"] = str(conf)
    host = docker_host()
    if cli == "docker" and host:
        env["DOCKER_HOST"] = host
    return env


def image_exists(client: Any, tag: str) -> bool:
    import docker

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def image_info(client: Any, tag: str) -> dict[str, Any]:
    """Image id, registry digest (when the image came from or went to a registry) and size."""
    image = client.images.get(tag)
    digests = image.attrs.get("RepoDigests") or []
    return {"id": image.id, "digest": digests[0] if digests else "",
            "size_mb": round(image.attrs.get("Size", 0) / 1e6, 1)}


# Podman's Docker-compatible API passes a CDI device to a container (a DeviceRequest with driver
# "cdi") from version 5.5 on; older versions fail at create time on the device's name.
PODMAN_CDI_SINCE = (5, 5)
# Docker's GPU device requests go through this hook of the NVIDIA container toolkit, whether or not an
# `nvidia` runtime is registered with the daemon.
NVIDIA_HOOK = "nvidia-container-runtime-hook"


def engine_version(client: Any) -> tuple[int, ...]:
    """The engine's version as numbers, e.g. (4, 3, 1)."""
    text = str(client.version().get("Version", ""))
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def gpu_runtime(client: Any) -> str:
    """How this engine hands GPUs to containers: 'cdi' (Podman with the NVIDIA CDI spec) or 'nvidia'
    (Docker with the NVIDIA container toolkit). An EngineError saying what to install otherwise."""
    if is_podman(client):
        version = engine_version(client)
        if version < PODMAN_CDI_SINCE:
            raise EngineError(
                f"GPUs in containers need Podman {'.'.join(map(str, PODMAN_CDI_SINCE))} or newer (its API passes "
                f"CDI devices from then on); this engine is Podman {'.'.join(map(str, version))}. Upgrade Podman, use "
                "Docker with the NVIDIA container toolkit, or run on the host: RUNNER=local with GPUS (with "
                "LAUNCH='apptainer exec --nv ...' for an image)")
        specs = [Path("/etc/cdi"), Path("/var/run/cdi")]
        if not any(p.is_dir() and any(p.glob("nvidia*.*")) for p in specs):
            raise EngineError("GPUS asked for, but Podman has no GPU runtime: generate the NVIDIA CDI spec "
                              "(`nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`), or run without GPUS (CPU)")
        return "cdi"
    runtimes = client.info().get("Runtimes") or {}
    if "nvidia" not in runtimes and not shutil.which(NVIDIA_HOOK):
        raise EngineError("GPUS asked for, but Docker has no GPU runtime: install the NVIDIA container toolkit "
                          "(then `nvidia-ctk runtime configure --runtime=docker`), or run without GPUS (CPU)")
    return "nvidia"


def pinned_reference(client: Any, ref: str) -> str:
    """`ref` pinned to the registry digest it resolves to (repo@sha256:...), pulling it if absent.

    A tag can move; the digest cannot. Images that never came from a registry (a local debootstrap
    base) have no registry digest and are used by their name.
    """
    import docker

    if "@sha256:" in ref:
        return ref
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        try:
            image = client.images.pull(ref)
        except docker.errors.APIError as e:
            raise EngineError(f"base image {ref} is not here and could not be pulled ({e.explanation or e}); "
                              "without registry access use the local base: `make engine`, then "
                              "BASE_IMAGE=localhost/fer-crossval/debian:bookworm-minbase") from e
    repo = ref.split("@")[0].rsplit(":", 1)[0] if ":" in ref.split("/")[-1] else ref
    for digest in image.attrs.get("RepoDigests") or []:
        name = digest.split("@")[0]
        if not name.startswith("localhost/") and (name == repo or name.endswith("/" + repo.split("/")[-1])):
            return digest
    return ref
