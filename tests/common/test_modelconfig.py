"""A model's typed config (common/modelconfig.py): built once from cfg["model"], keys and types checked."""
from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass

import pytest

from common.errors import ConfigError
from common.modelconfig import ModelConfig


@dataclass(frozen=True)
class _Config(ModelConfig):
    heads: int
    weight: float
    name: str
    flag: bool
    alpha: float | None
    depths: tuple[int, ...]


GOOD = {"heads": 2, "weight": 1, "name": "a", "flag": False, "alpha": None, "depths": [2, 2, 6]}


def test_values_are_converted_to_their_declared_types() -> None:
    c = _Config.from_cfg(GOOD)
    assert c == _Config(2, 1.0, "a", False, None, (2, 2, 6))
    assert isinstance(c.weight, float) and _Config.from_cfg({**GOOD, "alpha": 3}).alpha == 3.0
    with pytest.raises(FrozenInstanceError):
        c.heads = 3  # type: ignore[misc]


def test_unknown_and_missing_keys_are_named_with_the_valid_ones() -> None:
    bad = {**{k: v for k, v in GOOD.items() if k != "weight"}, "wieght": 1.0}
    with pytest.raises(ConfigError, match=r"unknown keys \['wieght'\], missing keys \['weight'\]; "
                                          r"valid keys: heads, weight, name, flag, alpha, depths"):
        _Config.from_cfg(bad)


@pytest.mark.parametrize("key, value, message", [
    ("heads", 2.5, "model.heads=2.5: expected int"),
    ("heads", True, "model.heads=True: expected int"),
    ("weight", "1", "model.weight='1': expected float"),
    ("flag", 1, "model.flag=1: expected bool"),
    ("alpha", "x", "model.alpha='x': expected float"),
    ("depths", 3, "model.depths=3: expected a list"),
    ("depths", [2, 2.5], r"model.depths\[1\]=2.5: expected int"),
])
def test_a_wrong_type_names_the_key(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _Config.from_cfg({**GOOD, key: value})
