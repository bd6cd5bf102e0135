"""Progress within a training epoch: a bar on a terminal, a periodic line in the log.

An epoch on the CPU (or of a large dataset on a GPU) can take many minutes; without this a run
prints nothing between epoch lines and looks hung. The periodic line goes through the run's `log`
(so into run.log and the harness's console); it is time-based, so short epochs add no lines. The
bar is drawn only when the run's own stderr is a terminal (`python -m common.run SPEC` in a shell,
`docker run -t`): under the harness, stderr is a pipe read line by line, where a bar redrawn with
carriage returns would be one endless line, and the bar is never written to run.log.
"""
from __future__ import annotations

import sys
import time
from typing import IO, Callable

# Seconds between two progress lines in the log: often enough to show a long epoch is moving,
# rare enough not to drown the epoch lines.
LINE_INTERVAL_S = 30.0
# Seconds between two redraws of the bar (redrawing every batch costs terminal I/O for nothing).
BAR_INTERVAL_S = 0.25
BAR_WIDTH = 24


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class EpochProgress:
    """Report `update(done, loss)` calls for one epoch of `n_batches` batches.

    `terminal`: the stream to draw the bar on; by default the process's original stderr when it is
    a terminal, else no bar. `line_interval`: seconds between log lines (default LINE_INTERVAL_S).
    `clock` is injectable so tests need not sleep.
    """

    def __init__(self, epoch: int, epochs: int, n_batches: int, log: Callable[[str], None],
                 terminal: IO[str] | None = None, clock: Callable[[], float] = time.monotonic,
                 line_interval: float | None = None) -> None:
        self.epoch, self.epochs, self.n_batches = epoch, epochs, n_batches
        self.log, self.clock = log, clock
        self.line_interval = LINE_INTERVAL_S if line_interval is None else line_interval
        if terminal is None and sys.__stderr__ is not None and sys.__stderr__.isatty():
            terminal = sys.__stderr__
        self.terminal = terminal
        self.start = self.last_line = clock()
        self.last_bar = -BAR_INTERVAL_S
        self.drawn = False

    def text(self, done: int, loss: float) -> str:
        elapsed = self.clock() - self.start
        eta = elapsed / done * (self.n_batches - done) if done else 0.0
        return (f"epoch {self.epoch}/{self.epochs} batch {done}/{self.n_batches} loss {loss:.4f} "
                f"{_duration(elapsed)} elapsed, ~{_duration(eta)} left")

    def update(self, done: int, loss: float) -> None:
        now = self.clock()
        if now - self.last_line >= self.line_interval and done < self.n_batches:
            self.last_line = now
            self._clear()
            self.log("  " + self.text(done, loss))
        if self.terminal is not None and (now - self.last_bar >= BAR_INTERVAL_S or done == self.n_batches):
            self.last_bar = now
            filled = BAR_WIDTH * done // max(1, self.n_batches)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            self._write(f"\r[{bar}] {self.text(done, loss)}\x1b[K")
            self.drawn = True

    def close(self) -> None:
        """Erase the bar, so the epoch line that follows starts on a clean line."""
        self._clear()

    def _clear(self) -> None:
        if self.drawn:
            self._write("\r\x1b[K")
            self.drawn = False

    def _write(self, text: str) -> None:
        try:
            self.terminal.write(text)
            self.terminal.flush()
        except (OSError, ValueError):  # a closed terminal must not stop the run
            self.terminal, self.drawn = None, False
