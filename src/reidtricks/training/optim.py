"""Optimiser parameter groups and the warmup + multistep LR schedule (docs/METHOD.md, "Optimiser and LR schedule", trick 1)."""

from __future__ import annotations

from hydra.utils import instantiate
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ChainedScheduler,
    LambdaLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
)

from reidtricks.training.settings import OptimConfig


def build_param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    bias_lr_factor: float = 1.0,
    weight_decay_bias: float | None = None,
    classifier_lr_factor: float = 1.0,
    classifier_prefix: str = "classifier.",
) -> list[dict]:
    """Two groups as the authors' code: weights (lr, weight_decay) and biases (lr * bias_lr_factor,
    weight_decay_bias, default weight_decay). Frozen parameters (the BNNeck bias) are left out.

    A bias is a parameter whose own name is `bias` (the authors match "bias" anywhere in the name;
    the same for ResNets, but not e.g. Swin's `relative_position_bias_table`). With
    classifier_lr_factor != 1 the parameters under `classifier_prefix` form their own groups at
    that many times their LR (FastReID's head LR factor). Empty groups are dropped.
    """
    split_head = classifier_lr_factor != 1.0  # off: the authors' two groups, unchanged
    wd_bias = weight_decay if weight_decay_bias is None else weight_decay_bias
    groups = {  # (bias?, classifier?): weights first, then biases, as the authors' two groups
        (bias, head): {
            "params": [],
            "lr": lr * (bias_lr_factor if bias else 1.0) * (classifier_lr_factor if head else 1.0),
            "weight_decay": wd_bias if bias else weight_decay,
        }
        for head in (False, True)
        for bias in (False, True)
    }
    for name, param in model.named_parameters():  # shared parameters are listed once
        if param.requires_grad:
            is_bias = name.rsplit(".", 1)[-1] == "bias"
            in_head = split_head and name.startswith(classifier_prefix)
            groups[is_bias, in_head]["params"].append(param)
    return [group for group in groups.values() if group["params"]]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> Optimizer:
    """The configured optimiser (cfg.optimizer, a Hydra `_partial_` spec) over the parameter groups."""
    groups = build_param_groups(
        model,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        bias_lr_factor=cfg.bias_lr_factor,
        weight_decay_bias=cfg.weight_decay_bias,
        classifier_lr_factor=cfg.classifier_lr_factor,
    )
    return instantiate(dict(cfg.optimizer))(groups, lr=cfg.lr)


def build_lr_scheduler(
    optimizer: Optimizer, cfg: OptimConfig, steps_per_epoch: int | None = None
) -> LRScheduler:
    """The paper's schedule, stepped once per epoch: LR x gamma at each milestone epoch, and with
    the warmup trick a linear warmup from warmup_start_factor x LR that reaches 1x at
    warmup_epochs (torch's LinearLR chained with MultiStepLR: the authors' formula to 1e-15).

    Base 3.5e-4, warmup 10: 3.5e-6 at 0, 3.815e-5 at 1, 3.5e-4 from 10, 3.5e-5 from 40, 3.5e-6 from 70.
    With `warmup_per_step` the warmup ramps every iteration instead (`per_step_lr_factor`, one
    LambdaLR stepped per optimiser step); steps_per_epoch is then required.
    """
    if cfg.warmup_per_step and cfg.active_warmup_epochs > 0:
        if steps_per_epoch is None or steps_per_epoch < 1:
            raise ValueError("optim.warmup_per_step needs the number of steps per epoch")
        return LambdaLR(optimizer, lambda step: per_step_lr_factor(step, steps_per_epoch, cfg))
    steps = MultiStepLR(optimizer, milestones=list(cfg.milestones), gamma=cfg.gamma)
    if cfg.active_warmup_epochs == 0:
        return steps
    warmup = LinearLR(
        optimizer,
        start_factor=cfg.warmup_start_factor,
        end_factor=1.0,
        total_iters=cfg.active_warmup_epochs,
    )
    return ChainedScheduler([warmup, steps])


def per_step_lr_factor(step: int, steps_per_epoch: int, cfg: OptimConfig) -> float:
    """The LR factor at optimiser step `step` when the warmup ramps every iteration: linear from
    warmup_start_factor at step 0 to 1 at warmup_epochs x steps_per_epoch, times gamma per
    milestone epoch passed (the schedule is then stepped per iteration, docs/METHOD.md trick 1)."""
    total = cfg.active_warmup_epochs * steps_per_epoch
    start = cfg.warmup_start_factor
    warm = start + (1.0 - start) * step / total if step < total else 1.0
    epoch = step // steps_per_epoch
    return warm * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
