"""Value checks shared by the typed configs and the data classes: each returns the value as its
type or raises InputError naming the key, the value and what was expected."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from reidtricks.errors import InputError


def require_int(key: str, value: Any, minimum: int | None = None) -> int:
    """An integer (not a bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise InputError(f"{key}={value!r}: expected an integer{bound}")
    if minimum is not None and value < minimum:
        raise InputError(f"{key}={value!r}: expected an integer >= {minimum}")
    return int(value)


def require_number(
    key: str, value: Any, low: float | None = None, high: float | None = None
) -> float:
    """A real number (not a bool) in [low, high] (either bound may be open-ended)."""
    in_range = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if in_range:
        in_range = (low is None or value >= low) and (high is None or value <= high)
    if not in_range:
        if low is not None and high is not None:
            expected = f"a number in [{low:g}, {high:g}]"
        elif low is not None:
            expected = f"a number >= {low:g}"
        elif high is not None:
            expected = f"a number <= {high:g}"
        else:
            expected = "a number"
        raise InputError(f"{key}={value!r}: expected {expected}")
    return float(value)


def require_positive(key: str, value: Any) -> float:
    """A real number > 0 (a learning rate or a factor of one, where 0 would silently freeze)."""
    if require_number(key, value, low=0.0) == 0.0:
        raise InputError(f"{key}={value!r}: expected > 0")
    if not math.isfinite(value):
        raise InputError(f"{key}={value!r}: expected a finite number > 0")
    return float(value)


def require_bool(key: str, value: Any) -> bool:
    """true or false (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise InputError(f"{key}={value!r}: expected true or false")
    return value


def require_choice(key: str, value: Any, choices: Sequence[str]) -> str:
    """One of the named choices."""
    if value not in choices:
        raise InputError(f"{key}={value!r}: expected one of {tuple(choices)}")
    return str(value)
