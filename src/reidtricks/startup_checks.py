"""Checks at start-up that would otherwise fail (or mislead) only at the first validation, after
hours of training: test sets without valid queries, eval settings, too few images per identity."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from reidtricks.data.splits import ReIDItem
from reidtricks.errors import InputError
from reidtricks.evaluation.distance import METRICS
from reidtricks.evaluation.metrics import PROTOCOLS
from reidtricks.evaluation.retrieval import FEATURE_CHOICES

log = logging.getLogger("reidtricks")


def check_eval_settings(eval_cfg: Mapping[str, Any], key: str = "eval") -> None:
    """Every test-time setting has a known value; one line naming the key otherwise."""
    choices = {"feature": FEATURE_CHOICES, "metric": METRICS, "protocol": PROTOCOLS}
    for name, allowed in choices.items():
        if name in eval_cfg and eval_cfg[name] not in allowed:
            raise InputError(f"{key}.{name}={eval_cfg[name]!r}: expected one of {allowed}")
    for name in ("flip", "rerank"):
        if name in eval_cfg and not isinstance(eval_cfg[name], bool):
            raise InputError(f"{key}.{name}={eval_cfg[name]!r}: expected true or false")
    for name in ("k1", "k2", "max_rank"):
        value = eval_cfg.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{key}.{name}={value!r}: expected an integer >= 1")
    lam = eval_cfg.get("lambda_value", 0.0)
    if isinstance(lam, bool) or not isinstance(lam, int | float) or not 0.0 <= lam <= 1.0:
        raise InputError(f"{key}.lambda_value={lam!r}: expected a number in [0, 1]")


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


def check_numbers(cfg: DictConfig) -> None:
    """Numeric settings that are read as numbers later: one line naming a key whose value is not."""
    for key in ("seed", "optim.lr", "optim.weight_decay", "optim.gamma", "optim.warmup_epochs"):
        value = OmegaConf.select(cfg, key)
        if value is None:
            continue
        is_int = key in ("seed", "optim.warmup_epochs")
        kind = int if is_int else int | float
        if isinstance(value, bool) or not isinstance(value, kind):
            expected = "an integer" if is_int else "a number"
            raise InputError(f"{key}={value!r}: expected {expected}")


def check_before_training(cfg: DictConfig, datamodule: Any) -> None:
    """All start-up checks of a training run (after the data are parsed, before any step)."""
    check_eval_settings(OmegaConf.to_container(cfg.eval, resolve=True))
    for name, overrides in (cfg.get("eval_variants") or {}).items():
        merged = {
            **OmegaConf.to_container(cfg.eval, resolve=True),
            **OmegaConf.to_container(overrides, resolve=True),
        }
        check_eval_settings(merged, key=f"eval_variants.{name}")
    max_epochs = cfg.trainer.get("max_epochs")
    if max_epochs is not None and max_epochs <= 0:
        log.warning("trainer.max_epochs=%s: no training epoch will run", max_epochs)
    if cfg.get("run_test", True) or (max_epochs or 0) > 0:
        check_test_sets(datamodule.test_sets)
    warn_small_identities(datamodule.train_items, datamodule.k)
