"""Local launcher: `python -m common.run SPEC` as a subprocess of the harness, in its own session.

The supervisor (harness/runners/supervisor.py) does the rest: jobs, timeouts, Ctrl-C, status.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from common.config import ROOT
from common.errors import ConfigError
from harness.plan import Planned
from harness.runners.supervisor import Exit, Supervisor, gpu_env, logger

# Present on a Linux machine with an NVIDIA driver loaded.
NVIDIA_CONTROL = Path("/dev/nvidiactl")


def visible_gpu(device: str, parent: str | None) -> str:
    """CUDA_VISIBLE_DEVICES for a run given GPU `device` as GPUS names it. When the harness itself
    sees only some GPUs (a SLURM allocation, a shared server: CUDA_VISIBLE_DEVICES already set),
    GPUS counts among those, so GPUS=0 is the first GPU this shell may use, not the machine's first."""
    visible = [v.strip() for v in (parent or "").split(",") if v.strip()]
    if not visible or not device.isdigit():
        return device
    if int(device) >= len(visible):
        raise ConfigError(f"GPUS has {device}, but this shell's CUDA_VISIBLE_DEVICES={parent} leaves {len(visible)} "
                          f"GPU(s) visible, and GPUS counts among those: valid 0..{len(visible) - 1}")
    return visible[int(device)]


def host_gpu_env(device: str) -> dict[str, str]:
    """How a process on this host is given GPU `device` as GPUS names it: the visible device (see
    visible_gpu) numbered along the PCI bus, as nvidia-smi, Docker, CDI and SLURM count GPUs (CUDA's
    own default puts the fastest first), unless this shell chose an order."""
    return {"CUDA_VISIBLE_DEVICES": visible_gpu(device, os.environ.get("CUDA_VISIBLE_DEVICES")),
            "CUDA_DEVICE_ORDER": os.environ.get("CUDA_DEVICE_ORDER", "PCI_BUS_ID")}


class LocalLaunch:
    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        # Own session: a timeout or Ctrl-C reaches the run together with its DataLoader workers.
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, start_new_session=True)

    def lines(self) -> Iterator[str]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            yield line.rstrip("\n")

    def wait(self) -> Exit:
        return Exit(returncode=self.proc.wait())

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def interrupt(self) -> None:
        self._signal(signal.SIGINT)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def close(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class LocalLauncher:
    """`python -m common.run SPEC`, optionally behind a prefix such as
    `apptainer exec --nv --pwd /opt/fer-crossval --bind /data dan.sif`, which then supplies its own python."""
    name = "local"

    def __init__(self, python: str | None = None, prefix: list[str] | None = None) -> None:
        self.prefix = list(prefix or [])
        self.python = python or ("python" if self.prefix else sys.executable)

    def preflight(self, todo: list[Planned], gpus: list[str] | None) -> None:
        for device in gpus or []:
            visible_gpu(device, os.environ.get("CUDA_VISIBLE_DEVICES"))
        if not gpus and NVIDIA_CONTROL.exists():
            logger.warning("this machine has NVIDIA GPUs, but GPUS is not set: the runs use the CPU "
                           "(GPUS=0, or GPUS=0,1 and so on, puts them on GPUs)")

    def start(self, p: Planned, spec_path: Path, device: str | None, share: int = 1) -> LocalLaunch:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   PYTHONUNBUFFERED="1", FER_PARENT_PID=str(os.getpid()))
        if device is not None:
            env.update(host_gpu_env(device))
            env.update(gpu_env(share))
        else:  # no GPUS: the CPU, as a container without GPUS (train.device=auto would take GPU 0 unasked)
            env["CUDA_VISIBLE_DEVICES"] = ""
        return LocalLaunch([*self.prefix, self.python, "-m", "common.run", str(spec_path.resolve())], env)


def run_local(planned: list[Planned], jobs: int = 1, timeout: float | None = None, gpus: list[str] | None = None,
              echo: bool = True, python: str | None = None, launch_prefix: str | None = None) -> list[dict]:
    launcher = LocalLauncher(python, shlex.split(launch_prefix) if launch_prefix else None)
    return Supervisor(launcher, jobs=jobs, timeout=timeout, gpus=gpus, echo=echo).run(planned)
