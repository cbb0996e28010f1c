"""Typed configuration from plain mappings (e.g. parsed YAML), with errors that name the key.

A config is a frozen dataclass whose fields carry type hints and, optionally, bounds in their
metadata: ``field(default=0.5, metadata={"min": 0.0, "max": 1.0})``. ``from_mapping`` rejects unknown
keys, wrong types and out-of-range values with a ``ConfigError`` whose message starts with the full
dotted key (``tracker.max_lost_seconds: must be >= 0, got -1``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Optional, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(shorten(f"{key}: {message}" if key else message))
        self.key = key


MAX_MESSAGE = 400  # characters of an error message: a huge value is shown by its start and end


def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to about ``limit`` characters (start ... end, one line) so no value floods the terminal."""
    text = " ".join(text.split()) if "\n" in text else text
    if len(text) <= limit:
        return text
    keep = (limit - 25) // 2
    return f"{text[:keep]} ...({len(text) - 2 * keep} characters)... {text[-keep:]}"


MAX_CONFIG_BYTES = 256 * 1024  # a config file larger than this is refused before parsing
MAX_YAML_NODES = 100_000       # values a YAML document may hold once its aliases are expanded


def load_yaml(text: str, where: str) -> Any:
    """Parse one YAML document with bounds: at most ``MAX_CONFIG_BYTES`` of text and ``MAX_YAML_NODES`` values
    after alias expansion (a "billion laughs" document fails at once), no recursive aliases, no nesting
    deeper than the parser copes with. ``yaml.YAMLError`` for syntax errors; ``ConfigError`` for the bounds."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError("", f"{where} is {len(text)} characters; config files are limited to "
                              f"{MAX_CONFIG_BYTES // 1024} KiB")
    loader = _loader_class()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, where)
        _no_repeated_keys(node, where)
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError("", f"{where} is nested too deeply") from None
    finally:
        loader.dispose()


_EXPONENT_FLOAT = r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"


@functools.lru_cache(maxsize=1)
def _loader_class() -> Any:
    """PyYAML's safe loader (the C one when built) reading ``5e-3`` and ``1E+5`` as numbers, as YAML 1.2 and
    every other YAML tool do (YAML 1.1, which PyYAML follows, wants a dot: ``5.0e-3``), so
    ``metres_per_pixel: 5e-3`` is not refused as a string."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader: Any = type("ConfigLoader", (base,), {})
    loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(_EXPONENT_FLOAT), list("-+.0123456789"))
    return loader


def _expanded_size(root: Any, where: str) -> int:
    """How many values ``root`` holds with every alias expanded (stops at ``MAX_YAML_NODES``)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: Any) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ConfigError("", f"{where}: an alias refers to a value that contains it (recursive alias)")
        open_nodes.add(key)
        total = 1
        if isinstance(node.value, list):
            for item in node.value:
                for child in (item if isinstance(item, tuple) else (item,)):
                    total += size(child)
                    if total > MAX_YAML_NODES:
                        raise ConfigError("", f"{where} expands to more than {MAX_YAML_NODES} values (nested "
                                              "aliases?); refusing to load it")
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)


def _no_repeated_keys(root: Any, where: str) -> None:
    """A key given twice in one mapping (a second ``detector:`` section further down) is refused: YAML parsers
    keep the last one, so the first section's settings were dropped without a word."""
    import yaml

    seen_nodes: set[int] = set()
    stack = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:   # an alias: checked where it was defined
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                if name is not None and name != "<<":
                    if name in keys:
                        raise ConfigError(_join(path, name), f"given twice (line {key.start_mark.line + 1} of "
                                                             f"{where}): the second would replace the first "
                                                             "without a word; merge them")
                    keys.add(name)
                stack.append((value, _join(path, str(name))))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))


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
        if not _finite(value):  # .nan passes every bound and .inf breaks arithmetic (int(n / fps * inf))
            raise ConfigError(key, f"must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, got {value!r}")
        return value
    return value


def _finite(value: float) -> bool:
    """Whether ``value`` is a finite number (an int too large for a float is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def broken_bound(value: float, bounds: Mapping[str, Any]) -> Optional[str]:
    """The first of a field's metadata bounds (``min``, ``gt``, ``max``) that ``value`` breaks, as the condition
    it must meet (``>= 1``, ``> 0.0``, ``<= 3600.0``); None when it meets them all."""
    lo, hi, gt = bounds.get("min"), bounds.get("max"), bounds.get("gt")
    if value != value:  # NaN: every comparison is false, so it would meet any bound
        return next((f"{sign} {b}" for sign, b in ((">=", lo), (">", gt), ("<=", hi)) if b is not None), None)
    if lo is not None and value < lo:
        return f">= {lo}"
    if gt is not None and value <= gt:
        return f"> {gt}"
    if hi is not None and value > hi:
        return f"<= {hi}"
    return None


def bounds_text(bounds: Mapping[str, Any], name: str) -> str:
    """A field's metadata bounds as one condition on ``name``: ``K >= 1``, ``0 < S <= 3600``."""
    if "min" in bounds or "gt" in bounds:
        low, sign = (bounds["min"], "<=") if "min" in bounds else (bounds["gt"], "<")
        if "max" not in bounds:
            return f"{name} {'>=' if sign == '<=' else '>'} {low:g}"
        return f"{low:g} {sign} {name} <= {bounds['max']:g}"
    return f"{name} <= {bounds['max']:g}" if "max" in bounds else name


def check_bounds(obj: Any, prefix: str = "") -> None:
    """Check every field's ``min``/``max``/``gt`` metadata bounds; raise ConfigError naming the key."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        broken = broken_bound(value, f.metadata)
        if broken is not None:
            raise ConfigError(_join(prefix, f.name), f"must be {broken}, got {value}")


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
    for name, f in fields.items():
        if f.init and name not in data and dataclasses.MISSING is f.default is f.default_factory:
            raise ConfigError(_join(prefix, name), "is required")
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
