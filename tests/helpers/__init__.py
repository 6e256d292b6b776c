"""Shared test helpers: configs composed as the commands compose them, the tiny-run overrides,
and networks built with the model settings' defaults (no ImageNet download)."""

from __future__ import annotations

import copy
import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from reidtricks.cli.app import config_dir
from reidtricks.models import ReIDNet, build_backbone, build_reid_net
from reidtricks.models.settings import ModelConfig


def compose_config(name: str, *overrides: str, hydra_cfg: bool = False) -> DictConfig:
    """conf/NAME.yaml with the overrides (the hydra node too with hydra_cfg=True): a fresh copy
    of a config composed once per session (composing is the slow part of many tests)."""
    return copy.deepcopy(_composed(name, overrides, hydra_cfg))


@functools.cache
def _composed(name: str, overrides: tuple[str, ...], hydra_cfg: bool) -> DictConfig:
    import reidtricks.cli.evaluate  # noqa: F401  (registers evaluate's eval node)

    if (
        not GlobalHydra.instance().is_initialized()
    ):  # once per session: conf/ as the commands see it
        initialize_config_dir(config_dir=config_dir(), version_base="1.3")
    return compose(name, overrides=list(overrides), return_hydra_config=hydra_cfg)


def compose_train(*overrides: str, hydra_cfg: bool = False) -> DictConfig:
    return compose_config("train", *overrides, hydra_cfg=hydra_cfg)


def compose_evaluate(ckpt: Path, output_dir: Path, *extra: str) -> DictConfig:
    """The `evaluate` config for a checkpoint, on CPU without a progress bar."""
    return compose_config(
        "evaluate", f"ckpt={ckpt}", f"paths.output_dir={output_dir}", "trainer=cpu",
        "+trainer.enable_progress_bar=false", *extra,
    )  # fmt: skip


def tiny_overrides(data_dir: Path, output_dir: Path) -> list[str]:
    """Demo experiment shrunk to the tiny set: CPU, no workers, small batches, CSV logs only."""
    return [
        "experiment=demo",
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={output_dir}",
        "data.train_sources.synthetic.preset=tiny",
        "data.sampler.p=4",
        "data.sampler.k=4",
        "data.loader.num_workers=0",
        "data.loader.persistent_workers=false",
        "data.loader.test_batch_size=64",
        "logger=csv",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false",
    ]


def model_kwargs(**changes: Any) -> dict[str, Any]:
    """build_reid_net's arguments but num_classes: ModelConfig's defaults, random weights."""
    return replace(ModelConfig(pretrained=False), **changes).as_kwargs()


def new_backbone(name: str, **changes: Any) -> tuple[Any, int]:
    """build_backbone with the model defaults, random weights unless changed."""
    kwargs = model_kwargs(**changes)
    for key in ("backbone", "neck", "mixstyle", "pooling"):  # the network's, not the backbone's
        del kwargs[key]
    return build_backbone(name, **kwargs)


def new_net(backbone: str, num_classes: int, **changes: Any) -> ReIDNet:
    """build_reid_net with the model defaults, random weights unless changed."""
    return build_reid_net(num_classes=num_classes, **model_kwargs(backbone=backbone, **changes))
