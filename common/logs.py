"""Console output of the suite's messages: every module logs to `logging.getLogger(__name__)`, and the
two entry points install one handler that prints them the way the suite always has.

- A run (`python -m common.run`): `[HH:MM:SS] message`, warnings as `[HH:MM:SS] WARNING: message`,
  on stdout, which the run copies to its run.log (common/runlog.py).
- The harness (`python -m harness`): the bare message, warnings as `warning: message`.

Tables and results a command was asked for stay plain prints; these are the messages about the work.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import IO

# The suite's own loggers (module names start with these); third-party libraries keep their defaults.
PACKAGES = ("common", "harness", "models", "preprocess")


class _Console(logging.StreamHandler):
    """Writes to whatever sys.stdout is at each message: a run replaces it with its run.log tee, and
    pytest's capture replaces it per test, after the handler was installed."""

    @property
    def stream(self) -> IO[str]:  # type: ignore[override]
        return sys.stdout

    @stream.setter
    def stream(self, value: IO[str]) -> None:  # StreamHandler sets it; the property decides
        pass


class _Format(logging.Formatter):
    def __init__(self, timestamps: bool, warning_prefix: str) -> None:
        super().__init__()
        self.timestamps, self.warning_prefix = timestamps, warning_prefix

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno == logging.WARNING:
            text = self.warning_prefix + text
        if self.timestamps:
            text = f"[{time.strftime('%H:%M:%S', time.localtime(record.created))}] {text}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup(timestamps: bool, warning_prefix: str) -> None:
    """Print the suite's INFO and higher messages on stdout; called again, it replaces its handler."""
    handler = _Console()
    handler.setFormatter(_Format(timestamps, warning_prefix))
    for name in PACKAGES:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _Console)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def setup_run() -> None:
    """A run's console and run.log lines: `[HH:MM:SS] message`."""
    setup(timestamps=True, warning_prefix="WARNING: ")


def setup_harness() -> None:
    """The harness's console lines: the message as it is."""
    setup(timestamps=False, warning_prefix="warning: ")
