"""`python -m harness predict --run RUN_DIR --images FOLDER [--align]`: a finished run on new photos.

The work is `python -m common.predict` (torch); this side picks where it runs: a local subprocess, or
the model's container (`--runner container`) with the run folder and the photos mounted read-only, an
output folder read-write, and the isolation of a run container (no network, no capabilities, read-only
root; harness/runners/container.py). Output: predictions.csv and contact_sheet.png in --out.
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

from common.config import ROOT
from common.errors import ConfigError, MissingPathError
from common.spec import RunSpec
from common.status import RunStatus
from harness.plan import Planned

logger = logging.getLogger(__name__)

# Mount points of the predict container (the run's own folder is mounted read-only here, not at /fer/run).
RUN_RO, IMAGES_RO, OUT_RW = "/fer/run", "/fer/images", "/fer/out"


def default_out(run_dir: Path, images: Path, results: Path) -> Path:
    """results/predict/<model>/<dataset>/<protocol>/iter-<k>/<images folder name>/"""
    return Path(results) / "predict" / Path(*Path(run_dir).resolve().parts[-4:]) / Path(images).resolve().name


def predict_args(run_dir: str, images: str, out: str, align: bool, device: str, threads: int | None) -> list[str]:
    args = ["-m", "common.predict", run_dir, images, out, "--device", device]
    if align:
        args.append("--align")
    if threads:
        args += ["--threads", str(threads)]
    return args


def run_local(run_dir: Path, images: Path, out: Path, align: bool, device: str, threads: int | None,
              gpu: str | None = None) -> int:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if gpu is not None:  # the GPU GPUS names, counted as a sweep counts them
        from harness.runners.local import host_gpu_env

        env.update(host_gpu_env(gpu))
    cmd = [sys.executable, *predict_args(str(run_dir.resolve()), str(images.resolve()), str(out.resolve()),
                                         align, device, threads)]
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def container_options(run_dir: Path, images: Path, out: Path, gpu: str | None, memory: str | None) -> tuple[str, dict]:
    """(image tag, create options) of the predict container: a run container's isolation
    (ContainerLauncher.options), with this command's three mounts instead of a run's."""
    from harness import engine, images as model_images
    from harness.runners.container import LABEL_RUN, ContainerLauncher

    spec = RunSpec.load(run_dir / "spec.json")
    launcher = ContainerLauncher(memory=memory)
    launcher.client = engine.connect()
    tag = model_images.image_tag(spec.model)
    if not engine.image_exists(launcher.client, tag):
        raise engine.EngineError(f"image {tag} is not built: run `make build MODEL={spec.model}`")
    if gpu is not None:
        launcher.gpu_runtime = engine.gpu_runtime(launcher.client)
    opts = launcher.options(Planned(spec, run_dir, RunStatus.DONE), gpu)
    opts["volumes"] = {str(run_dir.resolve()): {"bind": RUN_RO, "mode": "ro"},
                       str(images.resolve()): {"bind": IMAGES_RO, "mode": "ro"},
                       str(out.resolve()): {"bind": OUT_RW, "mode": "rw"}}
    opts["labels"] = {**opts["labels"], LABEL_RUN: f"predict:{opts['labels'][LABEL_RUN]}"}
    return tag, opts


def run_container(run_dir: Path, images: Path, out: Path, align: bool, device: str, threads: int | None,
                  gpu: str | None = None, memory: str | None = None) -> int:
    if align:
        # The model images carry common/ and the model, not MTCNN (facenet-pytorch) or preprocess/.
        raise ConfigError("ALIGN=1 needs MTCNN, which the model images do not carry: align the photos first "
                         "(`make align DATASET=folder SRC=photos DST=aligned`), then predict the aligned folder "
                         "with RUNNER=container and no ALIGN")
    tag, opts = container_options(run_dir, images, out, gpu, memory)
    from harness import engine

    client = engine.connect()
    container = client.containers.run(tag, entrypoint=["python"],
                                      command=predict_args(RUN_RO, IMAGES_RO, OUT_RW, False,
                                                           "cuda" if gpu is not None else device, threads),
                                      detach=True, **opts)
    try:
        for chunk in container.logs(stream=True, follow=True):
            sys.stdout.write(chunk.decode("utf-8", "replace"))
        return int(container.wait().get("StatusCode", 1))
    finally:
        container.remove(force=True)


def cmd_predict(args: argparse.Namespace) -> int:
    run_dir, images = Path(args.run), Path(args.images)
    if not (run_dir / "spec.json").is_file():
        raise MissingPathError(f"RUN={run_dir} is not a run folder (no spec.json); give "
                                "RUN=results/runs/<model>/<dataset>/<protocol>/iter-<k>")
    if not images.is_dir():
        raise MissingPathError(f"IMAGES={images} is not a folder of photos")
    out = Path(args.out) if args.out else default_out(run_dir, images, args.results)
    out.mkdir(parents=True, exist_ok=True)
    if args.runner == "container":
        code = run_container(run_dir, images, out, args.align, args.device, args.threads,
                             gpu=args.gpus, memory=args.memory)
    else:
        code = run_local(run_dir, images, out, args.align, args.device, args.threads, gpu=args.gpus)
    if code == 0:
        logger.info(f"wrote {out / 'predictions.csv'} and {out / 'contact_sheet.png'}")
    return code


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict a folder of photos with a finished run's best checkpoint")
    p.add_argument("--run", required=True, help="run folder: results/runs/<model>/<dataset>/<protocol>/iter-<k>")
    p.add_argument("--images", required=True, help="folder of photos")
    p.add_argument("--align", action="store_true", help="align each photo with MTCNN first (largest face)")
    p.add_argument("--out", default=None,
                   help="output folder (default: <results>/predict/<model>/<dataset>/<protocol>/iter-<k>/<images name>)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default: cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--runner", default="local", choices=["local", "container"],
                   help="local subprocess, or the model's container (make build first)")
    p.add_argument("--gpus", default=None, help="one GPU index, e.g. 0 (both runners)")
    p.add_argument("--memory", default=None, help="container runner: memory limit, e.g. 16g")
    p.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: results)")
    p.set_defaults(func=cmd_predict)
