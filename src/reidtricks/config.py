"""Typed settings from plain mappings: each settings dataclass holds its own defaults (the schema
that conf/ builds on, see cli/schemas.py); a mapping may give any of its fields, and no others."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any, TypeVar

from reidtricks.errors import InputError

T = TypeVar("T")


def typed_config(cls: type[T], values: Mapping[str, Any], key: str) -> T:
    """`cls(**values)` for a dataclass of settings, after checking that `values` names only its
    fields; one line naming `key.FIELD` otherwise (the dataclass checks the values themselves)."""
    if isinstance(values, cls):
        return values
    if not isinstance(values, Mapping):
        raise InputError(f"{key}={values!r}: expected a mapping of settings")
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise InputError(f"{key}.{unknown[0]}: unknown setting; expected one of {names}")
    missing = [
        f.name
        for f in fields(cls)
        if f.name not in values and f.default is MISSING and f.default_factory is MISSING
    ]
    if missing:
        raise InputError(f"{key}: missing {', '.join(missing)}")
    return cls(**values)
