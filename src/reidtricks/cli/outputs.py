"""Output paths checked before anything is written: never an input (a file, or anything inside an
input folder), never a folder, never a file inside another run's folder, an existing file only
when the user says `overwrite=true`. Outputs are then written with inference.files.atomic_output."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reidtricks.errors import ExistingOutputError
from reidtricks.training.run_safety import LOCK_NAME

# A folder holding any of these is a run's folder (train / evaluate / a sweep / a live command).
RUN_FOLDER_MARKERS = (".hydra", "checkpoints", "metrics.json", "multirun.yaml", LOCK_NAME)


def _run_folder_above(path: Path) -> tuple[Path, list[str]] | None:
    """The nearest folder above `path` that holds a run, with the markers found there."""
    for folder in path.parents:
        found = [name for name in RUN_FOLDER_MARKERS if (folder / name).exists()]
        if found:
            return folder, found
    return None


def checked_output(
    key: str | None,
    out: str | Path,
    inputs: Mapping[str, Any],
    *,
    own_dir: str | Path | None = None,
    overwrite: bool | None = False,
) -> Path:
    """`out` as a Path; a one-line error when it is a folder, one of `inputs` (`{key: path}`,
    symlinks resolved) or inside an input folder, or inside a run folder other than `own_dir`
    (this command's own); an existing file only with `overwrite` (None: no such option)."""
    out = Path(out)
    name = f"{key}={out}" if key else str(out)
    if out.is_dir():
        raise ExistingOutputError(f"{name}: is a folder; expected the path of a file to write")
    target = out.resolve()
    for input_key, value in inputs.items():
        if value is None or str(value) == "":
            continue
        source = Path(str(value)).resolve()
        if source == target:
            raise ExistingOutputError(
                f"{name}: is the input {input_key}={value}; writing it would destroy the input, "
                "give another output path"
            )
        if source.is_dir() and target.is_relative_to(source):
            raise ExistingOutputError(
                f"{name}: is inside the input folder {input_key}={value}; writing there could "
                "replace an input, give an output path outside it"
            )
    run = _run_folder_above(target)
    if run is not None and (own_dir is None or run[0] != Path(own_dir).resolve()):
        raise ExistingOutputError(
            f"{name}: is inside the run folder {run[0]} ({', '.join(run[1])}); another run's "
            "files are never written, give an output path outside it"
        )
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ExistingOutputError(f"{name}: {folder} is a file; expected a folder to write in")
    if not overwrite and (out.exists() or out.is_symlink()):
        how = "give overwrite=true to replace it, or another output path"
        if overwrite is None:
            how = "give a new output folder (hydra.run.dir=...)"
        raise ExistingOutputError(f"{name}: already exists; {how}")
    return out
