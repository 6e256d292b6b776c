"""GRID's official partitions: `trainIdxAll` of features_and_partitions.mat, read with scipy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from reidtricks.errors import InputError, MissingInputError, error_summary

MAT_NAME = "features_and_partitions.mat"
VARIABLE = "trainIdxAll"


def _indices(cell: np.ndarray, where: str) -> list[int]:
    """The person indices of one cell: a numeric array, or a struct whose third field holds them
    (the layout torchreid reads)."""
    value = cell
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, np.ndarray) and value.dtype.names:
        value = value.reshape(-1)[0]
    if isinstance(value, np.void) and value.dtype.names:
        if len(value.dtype.names) < 3:
            raise InputError(f"{where}: a struct without a third (index) field")
        return _indices(np.asarray(value[value.dtype.names[2]]), where)
    array = np.asarray(value)
    if array.dtype.kind not in "iuf" or array.size == 0:
        raise InputError(f"{where}: expected a numeric array of person indices")
    indices = [int(v) for v in array.reshape(-1)]
    repeated = sorted({v for v in indices if indices.count(v) > 1})
    if repeated:
        raise InputError(
            f"{where}: person {repeated[0]} is listed twice; expected distinct indices"
        )
    return sorted(indices)


def read_partitions(path: Path) -> list[list[int]]:
    """The training person numbers (1-based) of each official partition, in the file's order."""
    if not path.is_file():
        raise MissingInputError(
            f"{path} is missing (expected GRID's {MAT_NAME} with the variable {VARIABLE}); "
            "data.train_sources.grid.partitions=random uses seeded random partitions instead"
        )
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as err:  # not a MATLAB file, truncated
        raise InputError(f"{path}: cannot be read as a .mat file ({error_summary(err)})") from err
    if VARIABLE not in mat:
        raise InputError(f"{path}: no variable {VARIABLE} (expected a 1x10 cell of index arrays)")
    cells = np.asarray(mat[VARIABLE], dtype=object).reshape(-1)
    return [_indices(cell, f"{path}: {VARIABLE}{{{i + 1}}}") for i, cell in enumerate(cells)]
