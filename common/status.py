"""Run statuses: the one vocabulary of status.json, summary.csv and the plan, and how they group.

Torch-free: the harness reads it where only pandas is installed. The values are the strings written
to status.json and summary.csv (a StrEnum member *is* that string: it compares, hashes, prints and
serialises as it), so changing a value changes what old run folders mean: don't.
"""
from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    # Written by the run itself (common/run.py) or, for a run that died without a word, its supervisor.
    DONE = "done"
    FAILED = "failed"
    TIMEOUT = "timeout"
    KILLED = "killed"
    INTERRUPTED = "interrupted"
    RUNNING = "running"
    STARTING = "starting"      # the supervisor claimed the folder, the run process is not up yet
    QUEUED = "queued"          # submitted to SLURM, not started
    # Found by the harness when it reads a folder (harness/plan.py, harness/collect.py).
    PENDING = "pending"        # nothing (usable) there yet
    DAMAGED = "damaged"        # says done but fails collect's checks, or unreadable
    ABANDONED = "abandoned"    # says running/starting but nobody holds its lock
    STALE = "stale"            # done for a spec that has since changed
    # The supervisor's answer for a folder another process took: returned, never written to status.json.
    SKIPPED = "skipped"
    INCOMPLETE = "incomplete"  # the label a pending folder's leftovers get when moved to superseded/


# A run's last word: the run process (or its supervisor) wrote it and will write nothing after it.
TERMINAL = (RunStatus.DONE, RunStatus.FAILED, RunStatus.TIMEOUT, RunStatus.KILLED, RunStatus.INTERRUPTED)
# Outcomes a summary row can hold; any other value (a newer runner's) also counts as a failure, so a new
# status never drops runs from the counts or stops a report.
OUTCOMES = (*TERMINAL, RunStatus.DAMAGED)
# Summary rows without an outcome yet (another sweep is still running them): not part of any table.
IN_PROGRESS = (RunStatus.RUNNING, RunStatus.PENDING, RunStatus.QUEUED)
# Plan states owned by a live process or a SLURM queue: a sweep does not start them again.
LIVE = (RunStatus.RUNNING, RunStatus.STARTING, RunStatus.QUEUED)
# Plan states a sweep leaves alone: finished, or live.
LEFT_ALONE = (RunStatus.DONE, *LIVE)
# Terminal states that are not a result (harness status names their error).
FAILURES = (RunStatus.FAILED, RunStatus.INTERRUPTED, RunStatus.TIMEOUT, RunStatus.KILLED)
