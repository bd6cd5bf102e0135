"""A model's typed config: a frozen dataclass built once from cfg["model"], so a Task reads
attributes, never raw dict keys, and a wrong key or type fails before any network is built."""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping, TypeVar

from common.errors import ConfigError

C = TypeVar("C", bound="ModelConfig")


def _coerce(key: str, value: Any, kind: Any) -> Any:
    """`value` as `kind` (bool, int, float, str, tuple[int|float, ...], or X | None); ConfigError otherwise."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"model.{key}={value!r}: expected a list")
        return tuple(_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
    # bool is an int in Python; a flag written where a number belongs is a mistake, and the reverse too.
    ok = {bool: isinstance(value, bool),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          str: isinstance(value, str)}[kind]
    if not ok:
        raise ConfigError(f"model.{key}={value!r}: expected {kind.__name__}")
    return kind(value)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Base of each model's config dataclass (models/<name>/adapter.py)."""

    @classmethod
    def from_cfg(cls: type[C], values: Mapping[str, Any]) -> C:
        """Build from cfg["model"]: every field present, no other key, each of its declared type."""
        hints = typing.get_type_hints(cls)
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(fields))
        absent = [f for f in fields if f not in values]
        if unknown or absent:
            raise ConfigError(f"model config of {cls.__name__}: unknown keys {unknown}, missing keys {absent}; "
                              f"valid keys: {', '.join(fields)}")
        return cls(**{f: _coerce(f, values[f], hints[f]) for f in fields})
