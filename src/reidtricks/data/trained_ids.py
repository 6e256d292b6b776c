"""The trial rule: a test set never holds a person the model trained on, unless the user says so in
so many words (`test_on_trained_ids=true`). People are matched by image: a test identity counts
as trained on when any of its query or gallery images was a training image (docs/DATASETS.md,
"The trial rule")."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reidtricks.data.splits import ReIDItem
from reidtricks.errors import InputError

# Fields of a stored dataset entry that do not change which people or images it holds.
PLACEMENT_KEYS = ("root",)


def image_keys(items: Iterable[ReIDItem]) -> set[str]:
    """The normalised paths of some items (the key images are matched by)."""
    return {os.path.normpath(path) for path, _, _ in items}


def trained_test_ids(
    query: Sequence[ReIDItem], gallery: Sequence[ReIDItem], trained: set[str]
) -> tuple[int, int]:
    """(identities of query + gallery with at least one trained image, identities in all)."""
    seen: set[int] = set()
    every: set[int] = set()
    for path, pid, _ in (*query, *gallery):
        every.add(pid)
        if os.path.normpath(path) in trained:
            seen.add(pid)
    return len(seen), len(every)


def check_unseen(
    name: str,
    trials: Sequence[tuple[int | None, Sequence[ReIDItem], Sequence[ReIDItem]]],
    trained: set[str],
    allowed: bool,
    advice: str,
) -> None:
    """One-line error naming the first (set, split) whose test people were trained on, and how
    many; nothing when `allowed` (the user's explicit word) or no test person was trained on."""
    if allowed or not trained:
        return
    for split, query, gallery in trials:
        overlap, total = trained_test_ids(query, gallery, trained)
        if overlap:
            where = f"{name}" if split is None else f"{name} split {split}"
            raise InputError(
                f"test set {where}: {overlap} of its {total} test identities were trained on "
                f"(a test set never holds a person the model trained on); {advice}"
            )


def source_signature(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What defines the images a stored dataset entry trains on: every field but where it lies."""
    return {k: v for k, v in spec.items() if k not in PLACEMENT_KEYS}


def check_same_training_data(
    stored: Mapping[str, Any], current: Mapping[str, Any], source: str
) -> None:
    """One-line error when a resume would continue on other training sets or splits than the
    checkpoint trained on (the same class count can hide other people)."""
    if not isinstance(stored, Mapping) or not stored:
        return  # older checkpoints name no sources: the weight shapes are all that is checked
    theirs = {k: source_signature(v) for k, v in stored.items() if isinstance(v, Mapping)}
    ours = {k: source_signature(v) for k, v in current.items() if isinstance(v, Mapping)}
    if theirs == ours:
        return
    for key in sorted(set(theirs) | set(ours)):
        if theirs.get(key) != ours.get(key):
            raise InputError(
                f"ckpt_path={source}: data.train_sources.{key} is {ours.get(key, 'absent')} here "
                f"but {theirs.get(key, 'absent')} in the checkpoint; a resume continues on the "
                "same training sets and splits (start a new run to train on other data)"
            )
