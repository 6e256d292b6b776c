"""The loss and optimiser settings as typed, checked objects; their defaults are in conf/loss/
and conf/optim/ only (docs/METHOD.md, "Losses" and "Optimiser and LR schedule")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from reidtricks.config import group_defaults, typed_config
from reidtricks.errors import InputError
from reidtricks.evaluation.settings import EvalConfig
from reidtricks.validate import require_bool, require_int, require_number


@dataclass(frozen=True)
class LossConfig:
    """L = id_weight * CE(label_smoothing) + triplet_weight * batch-hard triplet(margin)
    + center_weight * center loss; the centers step with their own SGD at center_lr."""

    id_weight: float
    label_smoothing: float  # trick label_smooth
    triplet_weight: float
    triplet_margin: float
    triplet_soft_margin: bool
    triplet_normalize: bool
    center_weight: float  # trick center_loss
    center_lr: float

    def __post_init__(self) -> None:
        for name in ("id_weight", "triplet_weight", "triplet_margin", "center_weight"):
            require_number(f"loss.{name}", getattr(self, name), low=0.0)
        if require_number("loss.label_smoothing", self.label_smoothing, 0.0, 1.0) >= 1.0:
            raise InputError(f"loss.label_smoothing={self.label_smoothing!r}: expected < 1")
        require_bool("loss.triplet_soft_margin", self.triplet_soft_margin)
        require_bool("loss.triplet_normalize", self.triplet_normalize)
        if require_number("loss.center_lr", self.center_lr, low=0.0) == 0.0:
            raise InputError(f"loss.center_lr={self.center_lr!r}: expected > 0")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> LossConfig:
        return typed_config(cls, values, "loss")

    @classmethod
    def defaults(cls) -> LossConfig:
        """conf/loss/default.yaml."""
        return cls.from_mapping(group_defaults("loss"))


@dataclass(frozen=True)
class OptimConfig:
    """The optimiser (a Hydra `_partial_` spec), its two parameter groups, and the schedule:
    LR x gamma at each milestone epoch, after a linear warmup when `warmup` is on."""

    optimizer: Mapping[str, Any]
    lr: float
    weight_decay: float
    bias_lr_factor: float
    weight_decay_bias: float | None
    milestones: tuple[int, ...]
    gamma: float
    warmup: bool  # trick warmup
    warmup_epochs: int
    warmup_start_factor: float
    warmup_per_step: bool  # ramp every iteration instead of once per epoch
    gradient_clip_val: float | None

    def __post_init__(self) -> None:
        if not isinstance(self.optimizer, Mapping) or "_target_" not in self.optimizer:
            raise InputError(
                f"optim.optimizer={self.optimizer!r}: expected a mapping with _target_ "
                "(e.g. torch.optim.Adam) and _partial_: true"
            )
        if require_number("optim.lr", self.lr, low=0.0) == 0.0:
            raise InputError(f"optim.lr={self.lr!r}: expected > 0")
        require_number("optim.weight_decay", self.weight_decay, low=0.0)
        require_number("optim.bias_lr_factor", self.bias_lr_factor, low=0.0)
        if self.weight_decay_bias is not None:
            require_number("optim.weight_decay_bias", self.weight_decay_bias, low=0.0)
        if isinstance(self.milestones, str) or not isinstance(self.milestones, list | tuple):
            raise InputError(f"optim.milestones={self.milestones!r}: expected a list of epochs")
        epochs = [require_int("optim.milestones", m, minimum=0) for m in self.milestones]
        if epochs != sorted(epochs):
            raise InputError(f"optim.milestones={epochs}: expected increasing epochs")
        object.__setattr__(self, "milestones", tuple(epochs))
        require_number("optim.gamma", self.gamma, low=0.0)
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

    @classmethod
    def defaults(cls, option: str = "adam") -> OptimConfig:
        """conf/optim/OPTION.yaml."""
        return cls.from_mapping(group_defaults("optim", option))


def typed_settings(cfg: DictConfig) -> dict[str, Any]:
    """The loss, optim, eval and eval_variants groups as checked, typed settings for ReIDModule."""

    def plain(node: Any) -> Any:
        return OmegaConf.to_container(node, resolve=True)

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
