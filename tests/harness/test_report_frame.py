"""The report renders the rows it is given: the same tables from a DataFrame in memory as from summary.csv."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.report import render, render_markdown
from tests.harness.test_report import _rows, _write


def test_rows_in_memory_render_the_same_tables_as_their_csv(tmp_path: Path) -> None:
    running = {**_rows()[0], "iteration": "7", "status": "running", "accuracy": "", "balanced_accuracy": "",
               "macro_f1": ""}  # still in progress: left out of both
    path = _write(tmp_path / "summary.csv", _rows() + [running])
    rows = pd.read_csv(path, dtype=str, keep_default_na=False)  # as collect hands them over: all text
    assert render_markdown(rows) == render_markdown(path)
    assert "(n=3)" in render_markdown(rows) and "/4" not in render_markdown(rows)
    from_rows = render(rows, tmp_path / "rows", metrics=("accuracy",))
    from_csv = render(path, tmp_path / "csv", metrics=("accuracy",))
    assert [p.name for p in from_rows] == [p.name for p in from_csv]
    for a, b in zip(from_rows, from_csv):
        if a.suffix in (".md", ".html", ".tex", ".csv"):
            assert a.read_text(encoding="utf-8") == b.read_text(encoding="utf-8"), a.name


def test_rows_in_memory_are_checked_like_the_csv(tmp_path: Path) -> None:
    rows = pd.read_csv(_write(tmp_path / "summary.csv", _rows()), dtype=str, keep_default_na=False)
    with pytest.raises(ValueError, match="missing column"):
        render_markdown(rows.drop(columns=["split_hash"]))
