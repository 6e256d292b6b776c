"""Shared by the small classic sets (VIPeR, PRID2011, ...): seeded identity splits, file listing."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reidtricks.data.datasets.market_naming import IMAGE_SUFFIXES
from reidtricks.errors import InputError, MissingInputError

RANDOM_TRIALS = 10  # the usual number of random train/test trials of these sets


def trial_rng(split: int) -> np.random.RandomState:
    """The random state of trial `split`: RandomState(split), the same on every machine."""
    return np.random.RandomState(split)


def split_ids(
    ids: Sequence[int], num_train: int, rng: np.random.RandomState
) -> tuple[list[int], list[int]]:
    """(train ids, test ids), both sorted: a permutation of the sorted ids, first num_train train."""
    ordered = sorted(ids)
    order = rng.permutation(len(ordered))
    train = sorted(ordered[i] for i in order[:num_train])
    test = sorted(ordered[i] for i in order[num_train:])
    return train, test


def list_named(
    folder: Path, pattern: re.Pattern[str], expected: str, suffixes: Sequence[str] = IMAGE_SUFFIXES
) -> list[tuple[Path, re.Match[str]]]:
    """(path, match) of every image file of `folder` (sorted); one-line errors for a missing
    folder, a folder without images, or an image name that does not match `pattern`."""
    if not folder.is_dir():
        raise MissingInputError(f"{folder} is not a folder (expected {expected})")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)
    if not images:
        raise InputError(f"{folder} holds no image files (expected {expected})")
    named = []
    for path in images:
        match = pattern.fullmatch(path.name)
        if match is None:
            raise InputError(f"{path}: file name does not match the pattern {expected}")
        named.append((path, match))
    return named
