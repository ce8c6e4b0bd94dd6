"""Config dataclasses from YAML mappings: unknown keys and wrong types are one-line errors.

``from_dict(cls, d, what)`` checks every key against the dataclass's fields and every value
against the field's type (``int``, ``float``, ``bool``, ``str``, their ``| None`` forms, lists,
tuples and dicts). Numbers written ``1e-3`` (which PyYAML reads as a string) are accepted where a
float is expected; ``5.5`` where an int is expected, or ``"ten"``, are errors naming the key.
A field whose type is itself a config dataclass is a nested section (``train: TrainConfig``), read
with the same checks and named by its key. A dataclass may add range checks in
``__post_init__`` (raising :class:`ConfigError`).
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import TypeVar

T = TypeVar("T")

_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class ConfigError(ValueError):
    """A config value of the wrong type or out of range; the message names the section and key."""


def _check(value, typ, where: str):
    """``value`` converted to ``typ`` where that is lossless (int -> float, "1e-3" -> 0.001), else ConfigError."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(typ)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check(value, option, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: got {value!r}")
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT.match(value.strip()):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if typ is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if origin in (list, tuple) or typ in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(typ)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
            return tuple(_check(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        return type(value)(value) if origin is None else (list if origin is list else tuple)(value)
    if origin is dict or typ is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    return value  # typing.Any and other annotations: not checked


def from_dict(cls: type[T], d: dict, what: str) -> T:
    """``cls(**d)`` for a dataclass, with every key and value checked (see the module docstring)."""
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"{what}: expected a mapping of keys to values, got {d!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {what} keys {unknown}; valid: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    # a field typed as a config dataclass is a section of its own, checked (and named) as one
    values = {k: from_dict(hints[k], v, k) if dataclasses.is_dataclass(hints[k]) else _check(v, hints[k], f"{what}.{k}")
              for k, v in d.items()}
    return cls(**values)


def check_range(what: str, key: str, value, ok: bool, expected: str) -> None:
    """Raise ConfigError ``what.key = value: expected ...`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{what}.{key} = {value!r}: expected {expected}")


def read_yaml(path) -> dict:
    """A YAML mapping from ``path``; a missing file, a syntax error or a non-mapping is a ConfigError
    naming the file (and the line of the error)."""
    import yaml

    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} YAML syntax error: {getattr(e, 'problem', None) or e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def apply_overrides(conf: dict, overrides: list[str]) -> dict:
    """``conf`` with ``SECTION.KEY=VALUE`` overrides applied (VALUE read as YAML: ``200``, ``1e-3``,
    ``true``, ``[0.9, 0.98]``); the command-line counterpart of editing the YAML file."""
    import yaml

    out = dict(conf)
    for item in overrides:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. train.max_steps=200")
        path, raw = item.split("=", 1)
        keys = path.strip().split(".")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
        cur = out
        for k in keys[:-1]:
            nxt = cur.get(k)
            if nxt is None:
                nxt = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"--set {item!r}: {k} is not a section")
            cur[k] = dict(nxt)
            cur = cur[k]
        cur[keys[-1]] = value
    return out
