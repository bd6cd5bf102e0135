"""A run's own log: everything it prints (tracebacks included) goes to run.log as well as the console.

The run keeps its log whoever started it (a container or a cluster job has no harness reading its
pipe), and a console that goes away (a closed terminal, `| tee` or `| head` ending, a dead harness)
does not stop it: the first failed console write sends that stream to /dev/null and the run goes
on logging to its file.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


class Tee:
    """A text stream writing to a log file and to a console stream that may break."""

    def __init__(self, console: IO[str], log: IO[str]) -> None:
        self.console = console
        self.log = log
        self.console_ok = True

    def write(self, text: str) -> int:
        self.log.write(text)
        self.log.flush()  # the log must hold everything up to a crash or a SIGKILL
        if self.console_ok:
            try:
                self.console.write(text)
                self.console.flush()
            except (OSError, ValueError):
                self._drop_console()
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        if self.console_ok:
            try:
                self.console.flush()
            except (OSError, ValueError):
                self._drop_console()

    def _drop_console(self) -> None:
        """Point the broken console's descriptor at /dev/null: later writes to it (the interpreter's
        flush at exit, loader workers, C libraries) then succeed silently instead of raising."""
        self.console_ok = False
        try:
            fd = self.console.fileno()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        except (OSError, ValueError):
            pass

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:  # encoding, errors, fileno, ...: the console's
        return getattr(self.console, name)


@contextmanager
def tee_output(path: Path) -> Iterator[Path]:
    """Copy sys.stdout and sys.stderr to `path` (appended) for the duration of the block."""
    old = sys.stdout, sys.stderr
    with open(path, "a", encoding="utf-8", errors="replace") as log:
        sys.stdout, sys.stderr = Tee(old[0], log), Tee(old[1], log)
        try:
            yield path
        finally:
            sys.stdout, sys.stderr = old
