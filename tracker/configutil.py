"""Typed configuration from plain mappings (e.g. parsed YAML), with errors that name the key.

A config is a frozen dataclass whose fields carry type hints and, optionally, bounds in their
metadata: ``field(default=0.5, metadata={"min": 0.0, "max": 1.0})``. ``from_mapping`` rejects unknown
keys, wrong types and out-of-range values with a ``ConfigError`` whose message starts with the full
dotted key (``tracker.max_lost_seconds: must be >= 0, got -1``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _convert(value: Any, hint: Any, key: str) -> Any:
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(key, "must not be empty (null)")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(key, errors[0].split(": ", 1)[-1] if errors else "invalid value")
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ConfigError(key, f"must be one of {', '.join(map(repr, allowed))}; got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"must be a mapping of settings, got {type(value).__name__}")
        return from_mapping(hint, value, key)  # type: ignore[arg-type]
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"must be a list, got {type(value).__name__}")
        args = get_args(hint)
        item = args[0] if args else Any
        items = [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"must be a mapping, got {type(value).__name__}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, got {value!r}")
        return value
    return value


def check_bounds(obj: Any, prefix: str = "") -> None:
    """Check every field's ``min``/``max``/``gt`` metadata bounds; raise ConfigError naming the key."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        key = _join(prefix, f.name)
        lo, hi, gt = f.metadata.get("min"), f.metadata.get("max"), f.metadata.get("gt")
        if lo is not None and value < lo:
            raise ConfigError(key, f"must be >= {lo}, got {value}")
        if gt is not None and value <= gt:
            raise ConfigError(key, f"must be > {gt}, got {value}")
        if hi is not None and value > hi:
            raise ConfigError(key, f"must be <= {hi}, got {value}")


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys, bad types and bounds raise ConfigError."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(prefix, f"must be a mapping of settings, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(_join(prefix, str(key)), f"unknown key (known keys: {known})")
    kwargs = {k: _convert(v, hints[k], _join(prefix, k)) for k, v in data.items()}
    try:
        obj = cls(**kwargs)
    except ConfigError as exc:
        if prefix and exc.key and not exc.key.startswith(prefix):
            raise ConfigError(_join(prefix, exc.key), str(exc).split(": ", 1)[-1]) from None
        raise
    check_bounds(obj, prefix)
    return obj


def to_mapping(obj: Any) -> dict[str, Any]:
    """Plain-dict form of a config dataclass (tuples become lists), e.g. for YAML or JSON."""
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    mapping: dict[str, Any] = plain(obj)
    return mapping
