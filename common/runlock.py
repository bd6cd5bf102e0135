"""One writer per run folder: an OS lock on `<run dir>/run.lock`, held by the run process for its life.

Torch-free: the harness probes the lock to decide whether a `running` folder is alive (skip it) or
stale (its process died without recording its end: redo it). The lock is `flock` on a file that
never moves (the harness moves a folder's other files aside, never the lock file), so a probe and a
holder always agree on which file they mean. The kernel drops the lock when its holder dies, however
it dies (SIGKILL included), so a lock can never be left held by a dead process. The file's content
records who holds it (host, pid, since) for the messages; the content is informative only, the
lock is the truth.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

LOCK_NAME = "run.lock"
# Exit code of a run that found its folder locked by another process (EX_TEMPFAIL): it wrote
# nothing, so whoever started it must not write a status for it either.
EXIT_LOCKED = 75


class RunLocked(RuntimeError):
    """The run folder's lock is held by another process; the message names host and pid."""


def holder_text(info: dict[str, Any] | None) -> str:
    if not info:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} (since {since})"


def read_holder(run_dir: Path) -> dict[str, Any] | None:
    """Who last took the lock (host, pid, since), or None if never recorded or unreadable."""
    try:
        return json.loads((Path(run_dir) / LOCK_NAME).read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None


def is_held(run_dir: Path) -> bool:
    """True if a live process holds the run folder's lock. Read-only: works on a read-only results
    folder (a shared lock is tried on a read-only descriptor and dropped at once)."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock if we got it
    return False


class RunLock:
    """Exclusive, non-blocking lock on a run folder. `acquire()` raises RunLocked naming the holder."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.fd: int | None = None

    def acquire(self, role: str = "run") -> "RunLock":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLocked(f"{self.run_dir} is in use by {holder_text(read_holder(self.run_dir))}; "
                            "a run folder has one writer at a time") from None
        # Written in place (not renamed): the lock lives on this inode.
        info = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(), "role": role}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.release()
