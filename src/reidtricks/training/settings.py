"""The loss and optimiser settings as typed, checked objects, and the check of a run's settings.
Their field defaults are the one place for the defaults (every trick off); conf/loss and conf/optim
build on them (docs/METHOD.md, "Losses" and "Optimiser and LR schedule")."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from reidtricks.config import typed_config
from reidtricks.data.settings import NON_SETTING_KEYS, DataConfig
from reidtricks.errors import InputError
from reidtricks.evaluation.settings import EvalConfig
from reidtricks.models.settings import ModelConfig
from reidtricks.validate import require_bool, require_int, require_number, require_positive

FLOAT32_MAX = 3.4028234663852886e38  # beyond it an LR (and the step it scales) is inf in float32


@dataclass(frozen=True)
class LossConfig:
    """L = id_weight * CE(label_smoothing) + triplet_weight * batch-hard triplet(margin)
    + center_weight * center loss; the centers step with their own SGD at center_lr."""

    id_weight: float = 1.0
    label_smoothing: float = 0.0  # trick label_smooth: 0.1
    triplet_weight: float = 1.0
    triplet_margin: float = 0.3
    triplet_soft_margin: bool = False
    triplet_normalize: bool = False
    center_weight: float = 0.0  # trick center_loss: 0.0005
    center_lr: float = 0.5  # the centers' own SGD, stepped with the unweighted center-loss gradient

    def __post_init__(self) -> None:
        for name in ("id_weight", "triplet_weight", "triplet_margin", "center_weight"):
            require_number(f"loss.{name}", getattr(self, name), low=0.0)
        if require_number("loss.label_smoothing", self.label_smoothing, 0.0, 1.0) >= 1.0:
            raise InputError(f"loss.label_smoothing={self.label_smoothing!r}: expected < 1")
        require_bool("loss.triplet_soft_margin", self.triplet_soft_margin)
        require_bool("loss.triplet_normalize", self.triplet_normalize)
        require_positive("loss.center_lr", self.center_lr)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> LossConfig:
        return typed_config(cls, values, "loss")


@dataclass(frozen=True)
class OptimConfig:
    """The optimiser (a Hydra `_partial_` spec), its two parameter groups, and the schedule:
    LR x gamma at each milestone epoch, after a linear warmup when `warmup` is on."""

    optimizer: Mapping[str, Any] = field(
        default_factory=lambda: {"_target_": "torch.optim.Adam", "_partial_": True}
    )
    lr: float = 3.5e-4
    weight_decay: float = 5.0e-4
    bias_lr_factor: float = 1.0
    classifier_lr_factor: float = 1.0  # the identity classifier's LR x this (its own groups)
    weight_decay_bias: float | None = 5.0e-4
    milestones: tuple[int, ...] = (40, 70)
    gamma: float = 0.1
    warmup: bool = False  # trick warmup: true
    warmup_epochs: int = 10  # length of the linear warmup when it is on
    warmup_start_factor: float = 0.01
    warmup_per_step: bool = False  # ramp every iteration instead of once per epoch
    gradient_clip_val: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.optimizer, Mapping) or "_target_" not in self.optimizer:
            raise InputError(
                f"optim.optimizer={self.optimizer!r}: expected a mapping with _target_ "
                "(e.g. torch.optim.Adam) and _partial_: true"
            )
        require_positive("optim.lr", self.lr)
        require_number("optim.weight_decay", self.weight_decay, low=0.0)
        require_positive("optim.bias_lr_factor", self.bias_lr_factor)  # 0 freezes the biases
        require_positive("optim.classifier_lr_factor", self.classifier_lr_factor)
        # Every parameter group's LR (base x bias factor x classifier factor) finite at start-up.
        group_lrs = [self.lr * b * c for b in (1.0, self.bias_lr_factor)
                     for c in (1.0, self.classifier_lr_factor)]  # fmt: skip
        if not all(math.isfinite(lr) and lr <= FLOAT32_MAX for lr in group_lrs):
            raise InputError(
                f"optim.lr={self.lr!r} x optim.bias_lr_factor={self.bias_lr_factor!r} x "
                f"optim.classifier_lr_factor={self.classifier_lr_factor!r}: a group's LR is not "
                "a finite float32 (the weights' type); expected a product below 3.4e38"
            )
        if self.weight_decay_bias is not None:
            require_number("optim.weight_decay_bias", self.weight_decay_bias, low=0.0)
        if isinstance(self.milestones, str) or not isinstance(self.milestones, list | tuple):
            raise InputError(f"optim.milestones={self.milestones!r}: expected a list of epochs")
        epochs = [require_int("optim.milestones", m, minimum=0) for m in self.milestones]
        if epochs != sorted(epochs):
            raise InputError(f"optim.milestones={epochs}: expected increasing epochs")
        object.__setattr__(self, "milestones", tuple(epochs))
        require_positive("optim.gamma", self.gamma)  # 0 stops learning at the first milestone
        require_bool("optim.warmup", self.warmup)
        require_int("optim.warmup_epochs", self.warmup_epochs, minimum=0)
        factor = require_number("optim.warmup_start_factor", self.warmup_start_factor, 0.0, 1.0)
        if factor == 0.0:
            raise InputError(f"optim.warmup_start_factor={factor!r}: expected in (0, 1]")
        require_bool("optim.warmup_per_step", self.warmup_per_step)
        if self.gradient_clip_val is not None:
            require_number("optim.gradient_clip_val", self.gradient_clip_val, low=0.0)

    @property
    def active_warmup_epochs(self) -> int:
        """The warmup length the schedule uses: warmup_epochs with the trick on, else 0."""
        return self.warmup_epochs if self.warmup else 0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> OptimConfig:
        return typed_config(cls, values, "optim")


def plain(node: Any) -> Any:
    """A config node as plain, resolved values (a scalar as it is)."""
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def typed_settings(cfg: DictConfig) -> dict[str, Any]:
    """The loss, optim, eval and eval_variants groups as checked, typed settings for ReIDModule."""
    eval_cfg = EvalConfig.from_mapping(plain(cfg.eval))
    variants = plain(cfg.eval_variants) if cfg.get("eval_variants") else {}
    return {
        "loss": LossConfig.from_mapping(plain(cfg.loss)),
        "optim": OptimConfig.from_mapping(plain(cfg.optim)),
        "eval": eval_cfg,
        "eval_variants": {
            name: eval_cfg.updated(overrides, key=f"eval_variants.{name}")
            for name, overrides in variants.items()
        },
    }


def data_settings(cfg: DictConfig) -> DataConfig:
    """The data group's settings, checked (its datasets are checked by their own classes)."""
    node = cfg.get("data")
    if not isinstance(node, DictConfig):
        raise InputError(f"data={node!r}: expected a data config (data=NAME, see conf/data)")
    # The datasets are left unresolved: a `???` there is their own class's business.
    return DataConfig.from_mapping({k: plain(node[k]) for k in node if k not in NON_SETTING_KEYS})


def model_settings(cfg: DictConfig) -> ModelConfig:
    """The model group's settings (build_reid_net's arguments but num_classes), checked."""
    node = cfg.get("model")
    if not isinstance(node, DictConfig):
        raise InputError(f"model={node!r}: expected a model config (model=NAME, see conf/model)")
    return ModelConfig.from_mapping(plain(node))


# The stages whose tricks a `+leave_out` cell (bot, bot_no_*) is defined against: the full BoT.
FULL_BOT_STAGES = ("center_loss", "rerank")


def check_leave_out_stage(cfg: DictConfig) -> None:
    """A conf/leave_out cell (`bot`, `bot_no_X`) names the full BoT less one trick: refused on an
    earlier stage, where its name would not say what was trained."""
    cell, stage = str(cfg.get("cell")), str(cfg.get("stage"))
    if (cell == "bot" or cell.startswith("bot_no_")) and stage not in FULL_BOT_STAGES:
        raise InputError(
            f"cell={cell} (from +leave_out) on stage {stage}: +leave_out removes a trick from "
            "the full BoT; add +trick=center_loss (or name the cell yourself: cell=NAME)"
        )


def check_source_booleans(cfg: DictConfig) -> None:
    """Every true/false argument of every training and test dataset entry checked before the
    run folder (`combineall=no` is an error, never `bool("no") == True`)."""
    from reidtricks.inference.checkpoint import dataset_classes

    classes = dataset_classes()
    data = cfg.get("data") or {}
    for group in ("train_sources", "test_sources"):
        for name, node in (data.get(group) or {}).items():
            cls = classes.get(node.get("_target_")) if isinstance(node, DictConfig) else None
            if cls is None:
                continue
            for param in inspect.signature(cls).parameters.values():
                if param.annotation in ("bool", bool) and param.name in node:
                    require_bool(f"data.{group}.{name}.{param.name}", node[param.name])


def check_run_settings(cfg: DictConfig) -> dict[str, Any]:
    """Every setting of a training run, checked before any folder or file is written: the
    ReIDModule's (loss, optim, eval, eval_variants), then data and model."""
    require_int("seed", cfg.get("seed"))
    check_leave_out_stage(cfg)
    check_source_booleans(cfg)
    module = typed_settings(cfg)
    return {"module": module, "data": data_settings(cfg), "model": model_settings(cfg)}
