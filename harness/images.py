"""Model images: one per model, tagged by a hash of what goes into it, built only when that changes.

`fer-crossval/base:<tag>` holds the OS, Python and requirements.lock; `fer-crossval/<model>:<tag>` adds
common/ and models/<model>/ (docker/model.Dockerfile, or the model's own Dockerfile when it has one).
A tag is the sha256 of the Dockerfiles, the lock, the base image reference and every copied file, so
an unchanged model keeps its tag (and is not rebuilt) and a changed one gets a new tag.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import time
from pathlib import Path

from common import config
from common.config import ROOT
from common.errors import ConfigError
from common.provenance import git_commit
from harness import engine

REPO = "fer-crossval"
BASE_DOCKERFILE = ROOT / "docker" / "base.Dockerfile"
MODEL_DOCKERFILE = ROOT / "docker" / "model.Dockerfile"
LOCK = ROOT / "requirements.lock"
# The pinned upstream base; `make engine` offers a local debootstrap bookworm for hosts without a registry.
DEFAULT_BASE_IMAGE = "docker.io/library/debian:bookworm-20251117-slim"
_SKIP = {"__pycache__", ".pytest_cache"}


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not _SKIP.intersection(p.relative_to(ROOT).parts) and p.suffix != ".pyc")


def _digest(parts: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in parts:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:12]


def base_image_ref(base_image: str | None = None) -> str:
    return base_image or os.environ.get("FER_BASE_IMAGE") or DEFAULT_BASE_IMAGE


def base_tag(base_image: str | None = None) -> str:
    parts = [("base_image", base_image_ref(base_image).encode()),
             ("docker/base.Dockerfile", BASE_DOCKERFILE.read_bytes()), ("requirements.lock", LOCK.read_bytes())]
    return f"{REPO}/base:{_digest(parts)}"


def model_dir(model: str) -> Path:
    """The model's folder; images are built from the repository, so it must be under models/."""
    dirs = config.model_dirs()
    if model not in dirs:
        raise ConfigError(f"unknown model {model!r}; valid models: {', '.join(sorted(dirs))}")
    folder = dirs[model].resolve()
    if folder.parent != (ROOT / "models").resolve():
        raise ConfigError(f"model {model!r} lives outside the repository ({folder}, via FER_MODELS_PATH): "
                         "images are built from models/<name>/ only; copy it there to build its image")
    return folder


def dockerfile_for(model: str) -> Path:
    own = model_dir(model) / "Dockerfile"
    return own if own.is_file() else MODEL_DOCKERFILE


def model_files(model: str) -> list[Path]:
    """Every file copied into the model's image (what its tag is computed from)."""
    return _files(ROOT / "common") + [ROOT / "models" / "__init__.py"] + _files(model_dir(model))


def image_tag(model: str, base_image: str | None = None) -> str:
    dockerfile = dockerfile_for(model)
    parts = [("base", base_tag(base_image).encode()), ("dockerfile", dockerfile.read_bytes())]
    parts += [(str(p.relative_to(ROOT)), p.read_bytes()) for p in model_files(model)]
    return f"{REPO}/{model}:{_digest(parts)}"


def pip_sources() -> tuple[list[str], list[str]]:
    """Build args and volume flags that give pip inside a Podman build the package sources pip uses here.

    Local indexes (file:// URLs, wheel folders) are mounted read-only at the same path; a CA bundle is
    mounted for the build only, so it never ends up in a layer. Empty when pip here uses plain PyPI.
    """
    from harness.lock import pip_config

    cfg = pip_config()
    args: list[str] = []
    mounts: list[str] = []
    for key in ("index-url", "extra-index-url", "find-links"):
        value = cfg.get(key)
        if not value:
            continue
        for item in value.split():
            local = item[len("file://"):] if item.startswith("file://") else (item if item.startswith("/") else None)
            if local and Path(local).exists():
                # A simple index links its files relative to itself (../../files/x.whl): mount its parent.
                top = Path(local).parent if Path(local).name == "simple" else Path(local)
                mounts.append(str(top))
        args += ["--build-arg", f"PIP_{key.upper().replace('-', '_')}={value}"]
    volumes = [flag for top in dict.fromkeys(mounts) for flag in ("--volume", f"{top}:{top}:ro")]
    cert = cfg.get("cert")
    if cert and Path(cert).is_file():
        volumes += ["--volume", f"{cert}:/run/fer-build/ca.pem:ro"]
        args += ["--build-arg", "PIP_CERT=/run/fer-build/ca.pem"]
    return args, volumes


def _build(cli: str, dockerfile: Path, tag: str, build_args: dict[str, str], local_sources: bool) -> None:
    cmd = [cli, "build", "--file", str(dockerfile), "--tag", tag]
    for k, v in build_args.items():
        cmd += ["--build-arg", f"{k}={v}"]
    if local_sources:
        pip_args, volumes = pip_sources()
        # The build reaches the package registries through the host's network; Podman only.
        cmd += pip_args + volumes + ["--network", "host"]
    cmd.append(str(ROOT))
    print("$ " + shlex.join(cmd), flush=True)
    env = dict(os.environ, **engine.cli_env(cli))
    proc = subprocess.run(cmd, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"building {tag} failed ({cli} build exited with {proc.returncode}); see the output above")


def build(models: list[str], base_image: str | None = None, force: bool = False) -> dict[str, dict]:
    """Build the base (if its tag is absent) and each model image (if its tag is absent)."""
    from harness.lock import out_of_sync

    stale = out_of_sync()
    if stale:
        raise ConfigError(f"requirements.lock is out of date with requirements.txt ({'; '.join(stale)}): run `make lock`")
    client = engine.connect()
    cli = engine.build_cli(client)
    local_sources = cli == "podman"
    ref = base_image_ref(base_image)
    base = base_tag(base_image)
    summary: dict[str, dict] = {}
    if force or not engine.image_exists(client, base):
        pinned = engine.pinned_reference(client, ref)
        print(f"building {base} from {pinned} (Python + requirements.lock: several GB, minutes)", flush=True)
        t0 = time.monotonic()
        _build(cli, BASE_DOCKERFILE, base, {"BASE_IMAGE": pinned}, local_sources)
        print(f"built {base} in {time.monotonic() - t0:.0f} s", flush=True)
    else:
        print(f"{base} is up to date (reused)", flush=True)
    commit = git_commit()
    for i, model in enumerate(models, 1):
        tag = image_tag(model, base_image)
        t0 = time.monotonic()
        if force or not engine.image_exists(client, tag):
            print(f"[{i}/{len(models)}] building {tag}", flush=True)
            _build(cli, dockerfile_for(model), tag,
                   {"BASE": base, "MODEL": model, "GIT_COMMIT": commit, "BASE_IMAGE": ref}, local_sources)
            built = True
        else:
            print(f"[{i}/{len(models)}] {tag} is up to date (reused)", flush=True)
            built = False
        info = engine.image_info(client, tag)
        summary[model] = {"tag": tag, "built": built, "seconds": round(time.monotonic() - t0, 1), **info}
        print(f"[{i}/{len(models)}] {tag}: {info['size_mb']:.0f} MB, id {info['id'][:19]}", flush=True)
    return summary


def prune(models: list[str], base_image: str | None = None) -> list[str]:
    """Remove this suite's images that the current tree no longer builds: other tags of `models`, then
    base images no image uses any more. Returns the removed tags."""
    import docker

    client = engine.connect()
    keep = {image_tag(m, base_image) for m in models} | {base_tag(base_image)}
    removed: list[str] = []
    repos = [f"{REPO}/{m}" for m in models] + [f"{REPO}/base"]
    for repo in repos:  # model images first: a base still used by one of them cannot go
        for image in client.images.list(name=repo):
            for tag in image.tags:
                short = tag.removeprefix("localhost/")
                if short.startswith(repo + ":") and short not in keep:
                    try:
                        client.images.remove(tag)
                        removed.append(short)
                    except docker.errors.APIError as e:  # still used by an image of another model
                        print(f"kept {short}: {e.explanation or e}", flush=True)
    client.images.prune(filters={"dangling": True})  # untagged layers left by earlier builds
    return removed
