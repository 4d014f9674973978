"""Typed dataclass configs from YAML and `key.sub=value` overrides.

`build` makes a dataclass from a plain mapping: unknown keys are refused, and each value is checked against its
field's type hint and converted when the conversion is exact (a YAML list to a tuple, `1e-4`, which YAML 1.1
reads as a string, to a float, `2.0` to an int). Every error is a ConfigError naming the dotted key and the value.
Shared by the configs of training, data, RL and the sim, so that none of them imports another's layer for it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

import yaml


class ConfigError(ValueError):
    """A config value of the wrong type, an unknown key or a malformed override; the message names the dotted key and
    the value."""


_SCALAR_NAMES = {bool: 'true or false', int: 'an int', float: 'a number', str: 'a string'}
_ITEM_NAMES = {bool: 'booleans', int: 'ints', float: 'numbers', str: 'strings'}


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return ' or '.join(repr(choice) for choice in args)
    if origin in (Union, types.UnionType):
        return ' or '.join(_describe(arg) for arg in args)
    if origin in (list, tuple):
        return f'a list of {_ITEM_NAMES.get(args[0]) or _describe(args[0])}' if args else 'a list'
    if hint is type(None):
        return 'null'
    if dataclasses.is_dataclass(hint):
        return f'a mapping of {hint.__name__} fields'
    return _SCALAR_NAMES.get(hint) or getattr(hint, '__name__', str(hint))


def _to_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            value = float(value)
        except ValueError:
            return None
    return int(value) if isinstance(value, float) and value.is_integer() else None


def _to_float(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def convert(value: Any, hint: Any, key: str) -> Any:
    """value as the type hint says, or a ConfigError naming key and value."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    converted: Any = None
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else build(hint, value, key)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return convert(value, arg, key)
                except ConfigError:
                    pass
    elif origin is Literal:
        if value in args:
            return value
    elif origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            fixed = origin is tuple and not (len(args) == 2 and args[1] is Ellipsis)
            if fixed and len(value) != len(args):
                raise ConfigError(f'{key} must be a list of {len(args)} values, got {value!r}')
            item_hints = args if fixed else [args[0] if args else Any] * len(value)
            items = [convert(item, item_hint, f'{key}[{i}]')
                     for i, (item, item_hint) in enumerate(zip(value, item_hints))]
            return tuple(items) if origin is tuple else items
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        converted = _to_int(value)
    elif hint is float:
        converted = _to_float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif isinstance(hint, type):
        if isinstance(value, hint):
            return value
    else:
        raise TypeError(f'{key}: type hint {hint!r} is not supported by typed_config')
    if converted is not None:
        return converted
    raise ConfigError(f'{key} must be {_describe(hint)}, got {value!r}')


def build(cls: type, data: Any, where: str = '') -> Any:
    """An instance of the dataclass cls from a mapping of its field names; where is the mapping's dotted key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f'{where or cls.__name__} must be {_describe(cls)}, got {data!r}')
    hints = typing.get_type_hints(cls)
    names = [field.name for field in dataclasses.fields(cls) if field.init]
    for key in data:
        if key not in names:
            raise ConfigError(f'unknown key {_dotted(where, key)!r}; {cls.__name__} has: {", ".join(names)}')
    values = {name: convert(value, hints[name], _dotted(where, name)) for name, value in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f'{where}: {err}' if where else str(err)) from err


def convert_fields(config: Any) -> None:
    """Check and convert a dataclass's own field values in place; for __post_init__ of configs made in code."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        key = f'{type(config).__name__}.{field.name}'
        object.__setattr__(config, field.name, convert(getattr(config, field.name), hints[field.name], key))


def to_plain(config: Any) -> Any:
    """A config as plain YAML/JSON values: dataclasses become dicts and tuples lists."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {field.name: to_plain(getattr(config, field.name)) for field in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_plain(item) for item in config]
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """'data.image_size=64' -> (['data', 'image_size'], 64); the value is read as YAML ('[a, b]', 'null', '1e-3')."""
    key, sep, raw_value = text.partition('=')
    path = key.strip().split('.')
    if not sep or not all(part.isidentifier() for part in path):
        raise ConfigError(f'override {text!r} must look like key.sub=value')
    try:
        return path, yaml.safe_load(raw_value) if raw_value.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f'override {text!r}: the value is not valid YAML ({err})') from err


def with_override(data: Mapping[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    """A copy of the nested mapping data with data[path[0]][path[1]]... set to value."""
    head, rest = path[0], path[1:]
    updated = dict(data)
    if rest:
        inner = data.get(head) or {}
        if not isinstance(inner, Mapping):
            raise ConfigError(f'cannot set {".".join(path)}: {head} is {inner!r}, not a mapping')
        value = with_override(inner, rest, value)
    updated[head] = value
    return updated


def _dotted(where: str, key: str) -> str:
    return f'{where}.{key}' if where else str(key)


def require_at_least(config: Any, name: str, minimum: float) -> None:
    """ValueError naming the field and its value if config.name is below minimum (None passes: not set)."""
    value = getattr(config, name)
    if value is not None and value < minimum:
        raise ValueError(f'{type(config).__name__}.{name} must be >= {minimum}, got {value}')
