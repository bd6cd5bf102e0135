"""One supervisor for every runner: parallel jobs, GPU assignment, timeouts, Ctrl-C, logs, final status.

A launcher only knows how to start one run (a subprocess, a container, ...) and returns a `Launch`
handle; everything else happens here, once. A run that dies without writing a terminal status
(killed, out of memory, timeout) gets one written here, so it is recorded as a failure with its cause
and the sweep goes on. Ctrl-C (or SIGTERM) stops the sweep: running runs are interrupted and marked
so, stragglers are killed after a grace period, and the next sweep redoes them.
"""
from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

from common.errors import ConfigError
from common.io import atomic_write_json, atomic_write_text, read_json
from common.runlock import EXIT_LOCKED, LOCK_NAME, RunLocked
from common.status import TERMINAL, RunStatus
from harness.plan import Planned, prepare

INTERRUPT_GRACE_S = 30  # seconds a run gets after Ctrl-C to write its status before it is killed
CONSOLE_TAIL = 5000     # console lines kept for a run that dies before writing its own run.log

logger = logging.getLogger(__name__)


def label(p: Planned) -> str:
    return f"{p.spec.model}/{p.spec.dataset}/iter-{p.spec.iteration}"


@dataclass
class Exit:
    """How a launched run ended, as far as the launcher can tell."""
    returncode: int | None
    oom_killed: bool = False
    detail: str = ""                               # e.g. the memory limit, for the error message
    status: dict[str, Any] = field(default_factory=dict)  # merged into status.json (e.g. the image)


class Launch(Protocol):
    def lines(self) -> Iterator[str]: ...          # the run's console output, until it ends
    def wait(self) -> Exit: ...
    def interrupt(self) -> None: ...               # ask the run to stop and record it (SIGINT)
    def kill(self) -> None: ...                    # stop it now (timeout, grace period over)
    def close(self) -> None: ...                   # remove what the launch left (a container)


class Launcher(Protocol):
    name: str
    def preflight(self, todo: list[Planned], gpus: list[str] | None) -> None: ...  # fixable errors, before any run
    def start(self, p: Planned, spec_path: Path, device: str | None, share: int = 1) -> Launch: ...


def gpu_env(share: int) -> dict[str, str]:
    """Environment of a run given a GPU: the run must find CUDA (common/gpu.preflight), and when `share`
    runs use the GPU at once each caps itself at 1/share of its memory."""
    return {"FER_EXPECT_CUDA": "1", "FER_GPU_SHARE": str(share)}


def gpu_slots(gpus: list[str], jobs: int) -> tuple[list[str], int]:
    """The device of each concurrent run slot and how many runs share one GPU: JOBS up to the number
    of GPUs gives one GPU per run; more (small models that leave most of a GPU idle) put
    ceil(JOBS / GPUs) runs on each, spread over the GPUs in turn."""
    share = max(1, -(-jobs // len(gpus)))
    return [g for _ in range(share) for g in gpus], share


def finalize_status(run_dir: Path, spec_hash: str, end: Exit, timed_out: bool, interrupted: bool) -> dict:
    """Make sure status.json is terminal; fill in why the run ended if the run itself could not."""
    path = run_dir / "status.json"
    try:
        status = read_json(path)
    except (OSError, ValueError):
        status = {"spec_hash": spec_hash}
    if status.get("status") not in TERMINAL or timed_out or end.oom_killed:
        rc = end.returncode
        if timed_out:
            status.update(status=RunStatus.TIMEOUT, error_class="Timeout", error_message="run exceeded the harness timeout")
        elif end.oom_killed:
            status.update(status=RunStatus.KILLED, error_class="OOMKilled",
                          error_message="killed by the out-of-memory killer" + (f" ({end.detail})" if end.detail else ""))
        elif interrupted:
            status.update(status=RunStatus.INTERRUPTED, error_class="KeyboardInterrupt", error_message="sweep interrupted")
        elif rc is not None and (rc < 0 or rc == 137):
            sig = signal.Signals(-rc).name if rc < 0 else "SIGKILL"
            status.update(status=RunStatus.KILLED, error_class="Killed",
                          error_message=f"process killed by {sig}" + (" (out of memory?)" if sig == "SIGKILL" else ""))
        else:
            status.update(status=RunStatus.FAILED, error_class="ProcessExit",
                          error_message=f"process exited with code {rc} without writing a status")
        status.setdefault("spec_hash", spec_hash)
        status["finished"] = time.time()
    status.update(end.status)
    atomic_write_json(path, status)
    return status


class Supervisor:
    def __init__(self, launcher: Launcher, jobs: int = 1, timeout: float | None = None,
                 gpus: list[str] | None = None, echo: bool = True) -> None:
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"timeout={timeout}: must be a positive number of seconds")
        self.launcher = launcher
        self.jobs = max(1, jobs)
        self.timeout = timeout
        self.echo = echo
        self.gpus = list(gpus or [])
        self._devices: queue.Queue[str] | None = None
        self.gpu_share = 1
        if gpus:
            slots, self.gpu_share = gpu_slots(self.gpus, self.jobs)
            self._devices = queue.Queue()
            for g in slots:
                self._devices.put(g)
        self._active: dict[str, Launch] = {}
        self._interrupted = threading.Event()

    def _run_one(self, p: Planned) -> dict:
        if self._interrupted.is_set():
            return {"status": RunStatus.INTERRUPTED}
        device = self._devices.get() if self._devices else None
        try:
            return self._supervise(p, device)
        finally:
            if self._devices is not None and device is not None:
                self._devices.put(device)

    def _supervise(self, p: Planned, device: str | None) -> dict:
        name = label(p)
        try:
            spec_path = prepare(p)
        except RunLocked as e:  # another sweep took the folder since it was planned: its run, not ours
            logger.info(f"[{name}] skipped: {e}")
            return {"status": RunStatus.SKIPPED, "error_message": str(e)}
        log_path = p.run_dir / "run.log"
        timed_out = False
        try:
            launch = self.launcher.start(p, spec_path, device, self.gpu_share)
        except Exception as e:  # e.g. the engine refused the container: a recorded failure, the sweep goes on
            status = {"status": RunStatus.FAILED, "spec_hash": p.spec.hash, "error_class": type(e).__name__,
                      "error_message": f"the {self.launcher.name} runner could not start the run: {e}",
                      "finished": time.time()}
            atomic_write_json(p.run_dir / "status.json", status)
            logger.info(f"[{name}] finished (failed: {status['error_class']}: {status['error_message']})")
            return status
        self._active[name] = launch
        if device is not None:
            shared = f" (shared by up to {self.gpu_share} runs)" if self.gpu_share > 1 else ""
            logger.info(f"[{name}] on GPU {device}{shared}")
        timer = None
        try:
            if self.timeout:
                def on_timeout() -> None:
                    nonlocal timed_out
                    timed_out = True
                    launch.kill()
                timer = threading.Timer(self.timeout, on_timeout)
                timer.start()
            # The run writes its own run.log (common/runlog.py); this copy of the console is kept for a
            # run that died before it could (an interpreter or image that does not start, an early OOM).
            console: deque[str] = deque(maxlen=CONSOLE_TAIL)
            for line in launch.lines():
                console.append(line)
                if self.echo:
                    logger.info(f"[{name}] {line}")
            end = launch.wait()
            if console and not log_path.exists():
                atomic_write_text(log_path, "\n".join(console) + "\n")
        finally:
            if timer:
                timer.cancel()
            self._active.pop(name, None)
            launch.close()
        if end.returncode == EXIT_LOCKED and not timed_out:
            # The folder's lock was taken by another process: that process owns status.json.
            logger.info(f"[{name}] skipped: another process holds {p.run_dir / LOCK_NAME}")
            return {"status": RunStatus.SKIPPED}
        status = finalize_status(p.run_dir, p.spec.hash, end, timed_out, self._interrupted.is_set())
        msg = status.get("status")
        if msg != RunStatus.DONE:
            msg += f": {status.get('error_class')}: {status.get('error_message')}"
        logger.info(f"[{name}] finished ({msg}) in {status.get('wall_s', '?')} s; log {log_path}")
        return status

    def run(self, planned: list[Planned]) -> list[dict]:
        todo = [p for p in planned if p.todo]
        logger.info(f"{len(planned)} runs planned: {len(planned) - len(todo)} already done (skipped), {len(todo)} to run, "
            f"{self.jobs} at a time ({self.launcher.name} runner)")
        if not todo:
            return []
        self.launcher.preflight(todo, self.gpus)
        results: list[dict] = []
        # Runs live in their own sessions/containers: a SIGTERM to the harness must stop them too, like
        # Ctrl-C. SIGINT is re-armed because a shell that starts a command in the background makes it
        # ignore SIGINT, and the sweep's Ctrl-C handling must not depend on that.
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = (signal.signal(signal.SIGTERM, _raise_interrupt),
                        signal.signal(signal.SIGINT, signal.default_int_handler))
        pool = ThreadPoolExecutor(max_workers=self.jobs)
        futures: dict[Future, Planned] = {pool.submit(self._run_one, p): p for p in todo}
        finished_count = 0
        try:
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for f in finished:
                    results.append(f.result())
                    finished_count += 1
                    logger.info(f"progress: {finished_count}/{len(todo)} runs finished")
        except KeyboardInterrupt:
            self._interrupted.set()
            logger.info("interrupted: stopping running runs (finished runs are kept; the next sweep redoes the rest)")
            self._stop_all()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous[0])
                signal.signal(signal.SIGINT, previous[1])
        pool.shutdown(wait=True)
        return results

    def _stop_all(self) -> None:
        """Interrupt every active run; kill the ones still going after the grace period."""
        launches = list(self._active.values())
        for launch in launches:
            launch.interrupt()
        deadline = time.monotonic() + INTERRUPT_GRACE_S
        for launch in launches:
            while launch in self._active.values() and time.monotonic() < deadline:
                time.sleep(0.2)
        for launch in list(self._active.values()):
            launch.kill()


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
