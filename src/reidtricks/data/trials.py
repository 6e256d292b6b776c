"""Random-split trials of the classic small sets (VIPeR, PRID2011, ...): which splits to score and
one dataset object per split, rebuilt from the configured one."""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Sequence
from typing import Any

from reidtricks.errors import InputError

ALL = "all"


def num_splits_of(source: Any) -> int:
    """How many random splits a dataset defines (`num_splits`; 1 when it has none)."""
    return int(getattr(source, "num_splits", 1) or 1)


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral)


def check_trials(value: Any, key: str) -> Any:
    """The trials setting as given, if it has a valid form: null, `all`, a positive number of
    splits or a non-empty list of distinct split ids; else a one-line error naming `key`."""
    ok = value is None or value == ALL or (_is_int(value) and value >= 1)
    if isinstance(value, Sequence) and not isinstance(value, str):
        ok = (
            len(value) > 0
            and all(_is_int(v) and v >= 0 for v in value)
            and len(set(value)) == len(value)
        )
    if not ok:
        raise InputError(
            f"{key}={value!r}: expected all, a number of splits >= 1 or a list of distinct split "
            "ids >= 0"
        )
    return value


def select_splits(value: Any, num_splits: int, default: int, key: str, name: str) -> list[int]:
    """The split ids to score: null -> [default] (the configured split), `all` -> every split,
    N -> the first N, a list -> those ids; one-line error naming `key` when out of range."""
    check_trials(value, key)
    if value is None:
        return [int(default)]
    if value == ALL:
        return list(range(num_splits))
    if _is_int(value):
        if value > num_splits:
            raise InputError(
                f"{key}={value!r}: test set {name} has {num_splits} splits; expected all or a "
                f"number 1..{num_splits}"
            )
        return list(range(int(value)))
    bad = [v for v in value if v >= num_splits]
    if bad:
        raise InputError(
            f"{key}={list(value)!r}: test set {name} has splits 0..{num_splits - 1}, not {bad}"
        )
    return [int(v) for v in value]


def with_split(source: Any, split: int) -> Any:
    """The same dataset for another split: its class built again from the constructor arguments
    it keeps as attributes of the same name (as every class in data/datasets does)."""
    if getattr(source, "split", None) == split:
        return source
    cls = type(source)
    kwargs = {}
    for param in inspect.signature(cls).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.name == "split":
            continue
        if not hasattr(source, param.name):
            raise InputError(
                f"{cls.__name__}: cannot build split {split}: the dataset keeps no attribute "
                f"for its argument {param.name!r}"
            )
        kwargs[param.name] = getattr(source, param.name)
    return cls(**kwargs, split=split)
