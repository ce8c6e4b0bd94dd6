"""Config dataclasses from YAML mappings, with unknown keys named in the error."""
from __future__ import annotations

import dataclasses
from typing import TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], d: dict, what: str) -> T:
    """``cls(**d)`` for a dataclass; a key it does not have raises ValueError listing the valid ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; valid: {sorted(names)}")
    return cls(**d)
