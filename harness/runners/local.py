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
from harness.plan import Planned
from harness.runners.supervisor import Exit, Supervisor, gpu_env


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
        pass  # nothing to check before starting a subprocess

    def start(self, p: Planned, spec_path: Path, device: str | None, share: int = 1) -> LocalLaunch:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   PYTHONUNBUFFERED="1", FER_PARENT_PID=str(os.getpid()))
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
            env.update(gpu_env(share))
        return LocalLaunch([*self.prefix, self.python, "-m", "common.run", str(spec_path.resolve())], env)


def run_local(planned: list[Planned], jobs: int = 1, timeout: float | None = None, gpus: list[str] | None = None,
              echo: bool = True, python: str | None = None, launch_prefix: str | None = None) -> list[dict]:
    launcher = LocalLauncher(python, shlex.split(launch_prefix) if launch_prefix else None)
    return Supervisor(launcher, jobs=jobs, timeout=timeout, gpus=gpus, echo=echo).run(planned)
