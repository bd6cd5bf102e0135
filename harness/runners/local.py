"""Local runner: one subprocess per run, JOBS at a time, a per-run timeout.

A run that dies without writing a terminal status (killed, out of memory, timeout) gets one
written here, so it is recorded as a failure with its cause and the sweep goes on. Ctrl-C stops
the sweep: running children are interrupted and marked so, and the next sweep redoes them.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from common.config import ROOT
from common.io import atomic_write_json, read_json
from harness.plan import TERMINAL, Planned, prepare

INTERRUPT_GRACE_S = 30  # seconds a run gets after Ctrl-C to write its status before it is killed

_print_lock = threading.Lock()


def say(msg: str) -> None:
    with _print_lock:
        print(msg, flush=True)


def _label(p: Planned) -> str:
    return f"{p.spec.model}/{p.spec.dataset}/iter-{p.spec.iteration}"


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def finalize_status(run_dir: Path, spec_hash: str, returncode: int | None, timed_out: bool, interrupted: bool) -> dict:
    """Make sure status.json is terminal; fill in why the process ended if the run could not."""
    path = run_dir / "status.json"
    try:
        status = read_json(path)
    except (OSError, ValueError):
        status = {"spec_hash": spec_hash}
    if status.get("status") in TERMINAL and not timed_out:
        return status
    if timed_out:
        status.update(status="timeout", error_class="Timeout", error_message="run exceeded the harness timeout")
    elif interrupted:
        status.update(status="interrupted", error_class="KeyboardInterrupt", error_message="sweep interrupted")
    elif returncode is not None and returncode < 0:
        sig = signal.Signals(-returncode).name
        status.update(status="killed", error_class="Killed",
                      error_message=f"process killed by {sig}" + (" (out of memory?)" if sig == "SIGKILL" else ""))
    else:
        status.update(status="failed", error_class="ProcessExit",
                      error_message=f"process exited with code {returncode} without writing a status")
    status.setdefault("spec_hash", spec_hash)
    status["finished"] = time.time()
    atomic_write_json(path, status)
    return status


class LocalRunner:
    def __init__(self, jobs: int = 1, timeout: float | None = None, python: str | None = None,
                 echo: bool = True) -> None:
        self.jobs = max(1, jobs)
        self.timeout = timeout
        self.python = python or sys.executable
        self.echo = echo
        self._procs: dict[str, subprocess.Popen] = {}
        self._interrupted = threading.Event()

    def _run_one(self, p: Planned) -> dict:
        if self._interrupted.is_set():
            return {"status": "interrupted"}
        spec_path = prepare(p)
        label = _label(p)
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   PYTHONUNBUFFERED="1")
        log_path = p.run_dir / "run.log"
        timed_out = False
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen([self.python, "-m", "common.run", str(spec_path)], cwd=ROOT, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                    start_new_session=True)
            self._procs[label] = proc
            timer = None
            if self.timeout:
                def on_timeout() -> None:
                    nonlocal timed_out
                    timed_out = True
                    os.killpg(proc.pid, signal.SIGKILL)
                timer = threading.Timer(self.timeout, on_timeout)
                timer.start()
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if self.echo:
                    say(f"[{label}] {line.rstrip()}")
            rc = proc.wait()
            if timer:
                timer.cancel()
        self._procs.pop(label, None)
        status = finalize_status(p.run_dir, p.spec.hash, rc, timed_out, self._interrupted.is_set())
        msg = status.get("status")
        if msg != "done":
            msg += f": {status.get('error_class')}: {status.get('error_message')}"
        say(f"[{label}] finished ({msg}) in {status.get('wall_s', '?')} s; log {log_path}")
        return status

    def run(self, planned: list[Planned]) -> list[dict]:
        todo = [p for p in planned if p.todo]
        say(f"{len(planned)} runs planned: {len(planned) - len(todo)} already done (skipped), {len(todo)} to run, "
            f"{self.jobs} at a time")
        results: list[dict] = []
        # Runs live in their own sessions (so a timeout can kill a run with its loader workers):
        # a SIGTERM to the harness must stop them too, exactly like Ctrl-C.
        # SIGINT too: a shell that starts a command in the background makes it ignore SIGINT, which
        # Python then never turns into KeyboardInterrupt; the sweep's Ctrl-C handling must not depend on that.
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = (signal.signal(signal.SIGTERM, _raise_interrupt),
                        signal.signal(signal.SIGINT, signal.default_int_handler))
        pool = ThreadPoolExecutor(max_workers=self.jobs)
        futures: dict[Future, Planned] = {pool.submit(self._run_one, p): p for p in todo}
        done_count = 0
        try:
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for f in finished:
                    results.append(f.result())
                    done_count += 1
                    say(f"progress: {done_count}/{len(todo)} runs finished")
        except KeyboardInterrupt:
            self._interrupted.set()
            say("interrupted: stopping running runs (finished runs are kept; the next sweep redoes the rest)")
            procs = list(self._procs.values())
            for proc in procs:
                _signal_group(proc, signal.SIGINT)
            # A run gets a grace period to record its interruption; one that does not stop (e.g. it was
            # still starting up and had no handler yet) is killed, so Ctrl-C never leaves the sweep hanging.
            deadline = time.monotonic() + INTERRUPT_GRACE_S
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal_group(proc, signal.SIGKILL)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous[0])
                signal.signal(signal.SIGINT, previous[1])
        pool.shutdown(wait=True)
        return results


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def run_local(planned: list[Planned], jobs: int = 1, timeout: float | None = None, **kw) -> list[dict]:
    return LocalRunner(jobs=jobs, timeout=timeout, **kw).run(planned)
