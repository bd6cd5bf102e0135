"""The suite's messages go through `logging`; the entry points print them as the suite always has."""
from __future__ import annotations

import logging
import re

import pytest

from common import logs


@pytest.fixture
def restore_loggers():
    """setup() changes process-wide loggers: put their handlers and levels back after the test."""
    saved = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).level) for name in logs.PACKAGES}
    yield
    for name, (handlers, level) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)


def test_a_run_prints_timestamped_lines_and_marks_warnings(capsys, restore_loggers) -> None:
    logs.setup_run()
    logging.getLogger("common.train").info("epoch 1/3  train loss 1.0")
    logging.getLogger("common.run").warning("PRETRAINED WEIGHTS NOT FOUND for dan")
    logging.getLogger("common.run").error("FAILED: ValueError: x")
    logging.getLogger("common.run").debug("not shown")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] epoch 1/3  train loss 1\.0", lines[0])
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] WARNING: PRETRAINED WEIGHTS NOT FOUND for dan", lines[1])
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] FAILED: ValueError: x", lines[2])


def test_the_harness_prints_bare_messages_once_however_often_it_is_set_up(capsys, restore_loggers) -> None:
    logs.setup_run()
    logs.setup_harness()
    logs.setup_harness()  # `main` is called many times in one process (tests): one handler, not three
    logging.getLogger("harness.cli").info("wrote results/summary.csv (3 runs)")
    logging.getLogger("harness.status").warning("SLURM states not refreshed: no sacct")
    logging.getLogger("timm").info("a third-party message is not the suite's")
    assert capsys.readouterr().out == ("wrote results/summary.csv (3 runs)\n"
                                       "warning: SLURM states not refreshed: no sacct\n")


def test_messages_follow_sys_stdout_when_it_is_replaced(capsys, restore_loggers, monkeypatch) -> None:
    import io

    logs.setup_harness()
    copy = io.StringIO()
    monkeypatch.setattr("sys.stdout", copy)  # what a run's run.log tee does after set-up
    logging.getLogger("harness.cli").info("skipping dan/rafdb/iter-0: in use")
    assert copy.getvalue() == "skipping dan/rafdb/iter-0: in use\n"
