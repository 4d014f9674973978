"""Checks shared by the node parameter dataclasses; each error names the parameter and the bad value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def require_positive(params: Any, *names: str) -> None:
    for name in names:
        value = getattr(params, name)
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f'parameter {name} must be a finite number > 0, got {value}')


def require_at_least(params: Any, name: str, minimum: float) -> None:
    value = getattr(params, name)
    if not (value >= minimum and math.isfinite(value)):
        raise ValueError(f'parameter {name} must be a finite number >= {minimum}, got {value}')


def require_choice(params: Any, name: str, choices: Sequence[str]) -> None:
    value = getattr(params, name)
    if value not in choices:
        raise ValueError(f'parameter {name} must be one of {list(choices)}, got {value!r}')


def require_length(params: Any, name: str, length: int) -> None:
    value = getattr(params, name)
    if len(value) != length:
        raise ValueError(f'parameter {name} must hold {length} numbers, got {list(value)}')
