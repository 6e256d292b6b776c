"""Output paths checked before anything is written: never an input file, never a folder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reidtricks.errors import ExistingOutputError


def checked_output(key: str, out: str | Path, inputs: Mapping[str, Any]) -> Path:
    """`out` as a Path; one-line error if it is a folder or the same file as one of `inputs`
    (`{key: path}`, symlinks resolved), which writing it would destroy."""
    out = Path(out)
    if out.is_dir():
        raise ExistingOutputError(f"{key}={out}: is a folder; expected the path of a file to write")
    target = out.resolve()
    for name, value in inputs.items():
        if value is not None and str(value) != "" and Path(str(value)).resolve() == target:
            raise ExistingOutputError(
                f"{key}={out}: is the input {name}={value}; writing it would destroy the input, "
                "give another output path"
            )
    return out
