"""Optimiser parameter groups and the warmup + multistep LR schedule (docs/METHOD.md, "Optimiser and LR schedule", trick 1)."""

from __future__ import annotations

from hydra.utils import instantiate
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ChainedScheduler, LinearLR, LRScheduler, MultiStepLR

from reidtricks.training.settings import OptimConfig


def build_param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    bias_lr_factor: float = 1.0,
    weight_decay_bias: float | None = None,
) -> list[dict]:
    """Two groups as the authors' code: weights (lr, weight_decay) and biases (lr * bias_lr_factor,
    weight_decay_bias, default weight_decay). Frozen parameters (the BNNeck bias) are left out.

    A bias is a parameter whose own name is `bias` (the authors match "bias" anywhere in the name;
    the same for ResNets, but not e.g. Swin's `relative_position_bias_table`). Empty groups are dropped.
    """
    weights, biases = [], []
    for name, param in model.named_parameters():  # shared parameters are listed once
        if param.requires_grad:
            (biases if name.rsplit(".", 1)[-1] == "bias" else weights).append(param)
    wd_bias = weight_decay if weight_decay_bias is None else weight_decay_bias
    groups = [
        {"params": weights, "lr": lr, "weight_decay": weight_decay},
        {"params": biases, "lr": lr * bias_lr_factor, "weight_decay": wd_bias},
    ]
    return [group for group in groups if group["params"]]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> Optimizer:
    """The configured optimiser (cfg.optimizer, a Hydra `_partial_` spec) over the two groups."""
    groups = build_param_groups(
        model,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        bias_lr_factor=cfg.bias_lr_factor,
        weight_decay_bias=cfg.weight_decay_bias,
    )
    return instantiate(dict(cfg.optimizer))(groups, lr=cfg.lr)


def build_lr_scheduler(optimizer: Optimizer, cfg: OptimConfig) -> LRScheduler:
    """The paper's schedule, stepped once per epoch: LR x gamma at each milestone epoch, and with
    the warmup trick a linear warmup from warmup_start_factor x LR that reaches 1x at
    warmup_epochs (torch's LinearLR chained with MultiStepLR: the authors' formula to 1e-15).

    Base 3.5e-4, warmup 10: 3.5e-6 at 0, 3.815e-5 at 1, 3.5e-4 from 10, 3.5e-5 from 40, 3.5e-6 from 70.
    """
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
