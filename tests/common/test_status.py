"""The run-status vocabulary: the strings old run folders hold keep their meaning."""
from __future__ import annotations

import json

import pandas as pd

from common.status import IN_PROGRESS, LEFT_ALONE, OUTCOMES, TERMINAL, RunStatus


def test_values_are_the_strings_written_to_status_json() -> None:
    assert {s.value for s in RunStatus} == {"done", "failed", "timeout", "killed", "interrupted", "running",
                                           "starting", "queued", "pending", "damaged", "abandoned", "stale",
                                           "skipped", "incomplete"}
    # Written through json and read back by pandas as plain strings: no "RunStatus.DONE" anywhere.
    text = json.dumps({"status": RunStatus.DONE})
    assert text == '{"status": "done"}'
    assert f"{RunStatus.QUEUED}" == "queued" and str(RunStatus.FAILED) == "failed"
    rows = pd.Series(["done", "running", "damaged"])
    assert (rows == RunStatus.DONE).tolist() == [True, False, False]
    assert rows.isin(IN_PROGRESS).tolist() == [False, True, False]


def test_groupings() -> None:
    assert TERMINAL == ("done", "failed", "timeout", "killed", "interrupted")
    assert OUTCOMES == (*TERMINAL, "damaged")
    assert not set(IN_PROGRESS) & set(OUTCOMES)
    assert set(LEFT_ALONE) == {"done", "running", "starting", "queued"}
