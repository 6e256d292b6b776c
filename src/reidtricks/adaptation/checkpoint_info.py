"""What an adapted checkpoint holds and what it reuses of its source: the plain `reidtricks`
record (the source's, with the class count set to the round's clusters and the target named, so
that evaluate, extract, search and export take it as any training checkpoint and the trial rule
knows what it trained on), and the source run's loss and augmentation settings."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

from reidtricks import __version__
from reidtricks.adaptation.settings import AdaptConfig
from reidtricks.adaptation.target import Target
from reidtricks.data.settings import TransformConfig
from reidtricks.inference.checkpoint import CheckpointSpec
from reidtricks.training.settings import LossConfig, OptimConfig


def adapted_run_info(
    source_info: Mapping[str, Any],
    spec: CheckpointSpec,
    target: Target,
    settings: AdaptConfig,
    training: tuple[LossConfig, OptimConfig],
    num_classes: int,
    round_index: int,
    source_path: str | os.PathLike,
    seed: int,
) -> dict[str, Any]:
    """run_info for ReIDModule (which adds num_classes): the source checkpoint's config with the
    target among the training sets and, when it has a test split, as the only test set."""
    config = copy.deepcopy(dict(source_info.get("config") or {}))
    data = dict(config.get("data") or {})
    if target.spec is not None:
        trained = dict(data.get("train_sources") or {})
        key = target.name if target.name not in trained else f"{target.name}_adapt"
        data["train_sources"] = {**trained, key: dict(target.spec)}
        if target.test is not None:
            data["test_sources"] = {target.name: dict(target.spec)}
            data["test_trials"] = None
    loss, optim = training
    config.update(
        data=data,
        loss=asdict(loss),
        optim=asdict(optim),
        adapt={
            **asdict(settings),
            "source_checkpoint": os.fspath(source_path),
            "target": target.describe(),
            "round": round_index,
        },
    )
    return {
        "config": config,
        "model_args": {**spec.net.args, "num_classes": int(num_classes)},  # the round's classes
        "stage": spec.stage,
        "seed": int(seed),
        "reidtricks_version": __version__,
        "adapted_from": os.fspath(source_path),
        "adapt_round": round_index,
    }


def _known(cls: type, stored: Any) -> dict[str, Any]:
    """The fields of a stored settings mapping that `cls` has (older / newer keys dropped)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in stored.items() if k in names} if isinstance(stored, Mapping) else {}


def stored_training(source_info: Mapping[str, Any]) -> tuple[LossConfig, TransformConfig]:
    """The source run's loss (ID with its label smoothing + its triplet; no center loss, whose
    centers belong to the source identities) and training augmentation, as checked settings."""
    config = source_info.get("config") if isinstance(source_info.get("config"), Mapping) else {}
    data = config.get("data") if isinstance(config.get("data"), Mapping) else {}
    loss = LossConfig.from_mapping({**_known(LossConfig, config.get("loss")), "center_weight": 0.0})
    transform = TransformConfig(**_known(TransformConfig, data.get("transform")))
    return loss, transform


def stored_channels_last(source_info: Mapping[str, Any]) -> bool:
    """Whether the source run trained in the channels-last layout (faster on some CPUs)."""
    config = source_info.get("config") if isinstance(source_info.get("config"), Mapping) else {}
    return config.get("channels_last") is True
