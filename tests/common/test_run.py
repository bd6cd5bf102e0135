"""Which published weight files a run loads (`pretrained: auto | none | <path>`)."""
from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from common.registry import get_adapter
from common.run import resolve_pretrained


def _adapter(files=("a.pth",), aliases=None) -> SimpleNamespace:
    return SimpleNamespace(name="m", pretrained_files=tuple(files), pretrained_aliases=aliases or {})


def _cfg(choice: str, folder: Path) -> dict:
    return {"pretrained": choice, "weights_dir": str(folder)}


def test_auto_without_the_files_trains_from_scratch_and_says_so(tmp_path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="common.run"):
        assert resolve_pretrained(_adapter(), _cfg("auto", tmp_path)) is None
    (warning,) = [r for r in caplog.records if r.name == "common.run"]
    assert warning.levelno == logging.WARNING
    assert "PRETRAINED WEIGHTS NOT FOUND for m: a.pth" in warning.getMessage() and str(tmp_path) in warning.getMessage()


def test_auto_finds_the_files_and_none_ignores_them(tmp_path) -> None:
    (tmp_path / "a.pth").write_bytes(b"x")
    assert resolve_pretrained(_adapter(), _cfg("auto", tmp_path)) == {"a.pth": tmp_path / "a.pth"}
    assert resolve_pretrained(_adapter(), _cfg("none", tmp_path)) is None


def test_a_published_alias_is_accepted_under_the_canonical_name(tmp_path) -> None:
    lnsunet = get_adapter("lnsunet")
    (tmp_path / "start_0.pth").write_bytes(b"x")  # the reference README's name for start_0.pt
    assert resolve_pretrained(lnsunet, _cfg("auto", tmp_path)) == {"start_0.pt": tmp_path / "start_0.pth"}
    (tmp_path / "start_0.pt").write_bytes(b"x")
    assert resolve_pretrained(lnsunet, _cfg("auto", tmp_path)) == {"start_0.pt": tmp_path / "start_0.pt"}


def test_explicit_path(tmp_path) -> None:
    weights = tmp_path / "mine.pth"
    weights.write_bytes(b"x")
    assert resolve_pretrained(_adapter(), _cfg(str(weights), tmp_path / "elsewhere")) == {"a.pth": weights}
    with pytest.raises(FileNotFoundError, match="expects a.pth"):
        resolve_pretrained(_adapter(), _cfg(str(tmp_path / "nope.pth"), tmp_path))
    with pytest.raises(FileNotFoundError, match="missing in .*: b.pth or b2.pth"):
        (tmp_path / "a.pth").write_bytes(b"x")
        resolve_pretrained(_adapter(("a.pth", "b.pth"), {"b.pth": ("b2.pth",)}), _cfg(str(tmp_path), tmp_path))
