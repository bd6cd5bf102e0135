"""Runs die with their harness: a thread that stops the run when the process that started it is gone.

The local launcher starts each run in its own session (so a timeout can kill a run with its loader
workers), which also means a harness killed without running its handler (SIGKILL, a closed
terminal, a broken pipe) would leave its runs alive, writing into folders the next sweep prepares.
With FER_PARENT_PID set, the run watches that process and interrupts itself (status `interrupted`,
error class ParentGone) when it disappears. Runners that detach runs on purpose (a cluster job
outlives the login shell) leave the variable unset.
"""
from __future__ import annotations

import os
import signal
import threading

# Seconds between checks: a dead harness's runs stop within about this long.
INTERVAL_S = 1.0
# Seconds a run gets to record its interruption before it exits hard (a stuck C call); the lock is
# released with the process, so the next sweep sees the folder as abandoned and redoes it.
GRACE_S = 60.0


class Watchdog:
    def __init__(self, pid: int, interval: float = INTERVAL_S) -> None:
        self.pid = pid
        self.interval = interval
        self.gone = False
        self._stop = threading.Event()
        # A direct child is re-parented the moment its parent dies; that is exact, where a pid
        # check could be fooled by a zombie or a reused pid.
        self._is_parent = os.getppid() == pid
        self._thread = threading.Thread(target=self._watch, name="parent-watchdog", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        if self._is_parent:
            return os.getppid() == self.pid
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by another user
            return True
        return True

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.alive():
                self.gone = True
                print(f"parent process {self.pid} is gone: stopping this run", flush=True)
                # A real signal (not interrupt_main) also wakes a main thread blocked in sleep or I/O.
                os.kill(os.getpid(), signal.SIGINT)
                if not self._stop.wait(GRACE_S):
                    os._exit(130)
                return

    def stop(self) -> None:
        self._stop.set()


def watch_parent(value: str | None, interval: float = INTERVAL_S) -> Watchdog | None:
    """A started Watchdog on pid `value` (FER_PARENT_PID), or None when unset or empty."""
    if not value:
        return None
    try:
        pid = int(value)
    except ValueError:
        raise ValueError(f"FER_PARENT_PID={value!r} is not a process id; unset it or give the harness's pid") from None
    if pid <= 1:
        raise ValueError(f"FER_PARENT_PID={value!r} is not a process id to watch (must be > 1)")
    return Watchdog(pid, interval)
