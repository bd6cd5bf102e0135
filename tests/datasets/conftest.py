"""Fixtures for the dataset tests; the datasets themselves are written by layouts.py."""
from __future__ import annotations

import pytest

from tests.datasets.layouts import REAL


@pytest.fixture(params=REAL)
def real_name(request) -> str:
    return request.param


@pytest.fixture(params=[n for n in REAL if n != "fer2013"])
def file_name(request) -> str:
    """The datasets whose images are files (all but FER2013)."""
    return request.param
