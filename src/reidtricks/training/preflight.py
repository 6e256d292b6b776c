"""Checks at start-up that would otherwise fail (or mislead) only at the first validation, after
hours of training: test sets without valid queries, too few images per identity (the settings
themselves are checked when their typed configs are built)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

from reidtricks.data.splits import ReIDItem
from reidtricks.errors import InputError
from reidtricks.validate import require_bool, require_int

log = logging.getLogger("reidtricks")


def count_valid_queries(query: Sequence[ReIDItem], gallery: Sequence[ReIDItem]) -> int:
    """Queries with at least one gallery image of the same identity from another camera (the
    matches that remain after the protocol removes same-identity same-camera images)."""
    cams_of: dict[int, set[int]] = {}
    for _, pid, camid in gallery:
        cams_of.setdefault(pid, set()).add(camid)
    return sum(1 for _, pid, camid in query if cams_of.get(pid, set()) - {camid})


def check_test_sets(test_sets: Sequence[Any]) -> None:
    """Fail if a test set has no valid query; say how many queries will be skipped otherwise."""
    for test_set in test_sets:
        valid = count_valid_queries(test_set.query, test_set.gallery)
        total = len(test_set.query)
        if valid == 0:
            raise InputError(
                f"test set {test_set.name}: none of its {total} queries has a gallery image of "
                "the same identity from another camera; evaluation would fail (check its query "
                "and gallery folders)"
            )
        if valid < total:
            log.warning(
                "test set %s: %d of %d queries have no valid gallery match and are skipped",
                test_set.name,
                total - valid,
                total,
            )


def warn_small_identities(train_items: Sequence[ReIDItem], k: int) -> int:
    """Warn (one line) about training identities with fewer than K images; returns their count."""
    counts = Counter(pid for _, pid, _ in train_items)
    small = sum(1 for n in counts.values() if n < k)
    if small:
        log.warning(
            "%d of %d training identities have fewer than K=%d images; the sampler repeats "
            "their images to fill K",
            small,
            len(counts),
            k,
        )
    return small


def check_run_keys(cfg: DictConfig) -> None:
    """The run's own keys (trainer.max_epochs, threads) checked, and one warning each for a
    schedule that lies beyond max_epochs or a loss whose every weight is 0."""
    max_epochs = cfg.trainer.get("max_epochs")
    if max_epochs is not None:  # Lightning reads -1 as "train forever"
        require_int("trainer.max_epochs", max_epochs, minimum=0)
    if cfg.get("threads") is not None:
        require_int("threads", cfg.threads, minimum=1)
    for key in ("run_test", "channels_last"):  # `run_test=no` must not mean yes
        require_bool(key, cfg.get(key, key == "run_test"))
    optim, loss = cfg.get("optim") or {}, cfg.get("loss") or {}
    if max_epochs:
        late = [m for m in optim.get("milestones") or [] if m >= max_epochs]
        if late:
            log.warning(
                "optim.milestones %s: at or beyond trainer.max_epochs=%d, the LR never drops there",
                late,
                max_epochs,
            )
        if optim.get("warmup") and optim.get("warmup_epochs", 0) > max_epochs:
            log.warning(
                "optim.warmup_epochs=%d: beyond trainer.max_epochs=%d, training ends inside the "
                "warmup",
                optim.warmup_epochs,
                max_epochs,
            )
    weights = ("id_weight", "triplet_weight", "center_weight")
    if loss and all(not loss.get(w) for w in weights):
        log.warning("loss.%s are all 0: the loss is 0 and nothing is learned", "/".join(weights))


def check_before_training(cfg: DictConfig, datamodule: Any) -> None:
    """All start-up checks of a training run (after the data are parsed, before any step)."""
    max_epochs = cfg.trainer.get("max_epochs")
    if max_epochs is not None and max_epochs <= 0:
        log.warning("trainer.max_epochs=%s: no training epoch will run", max_epochs)
    if cfg.get("run_test", True) or (max_epochs or 0) > 0:
        check_test_sets(datamodule.test_sets)
    warn_small_identities(datamodule.train_items, datamodule.k)
