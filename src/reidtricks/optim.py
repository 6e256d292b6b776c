"""Optimiser parameter groups and the warmup + multistep LR schedule (docs/METHOD.md, "Optimiser and LR schedule", trick 1)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ChainedScheduler, LinearLR, LRScheduler, MultiStepLR

from reidtricks.errors import InputError


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


def build_lr_scheduler(
    optimizer: Optimizer,
    milestones: Sequence[int] = (40, 70),
    gamma: float = 0.1,
    warmup_epochs: int = 0,
    warmup_start_factor: float = 0.01,
) -> LRScheduler:
    """The paper's schedule, stepped once per epoch: LR x gamma at each milestone epoch, and with
    warmup_epochs > 0 a linear warmup from warmup_start_factor x LR that reaches 1x at
    warmup_epochs (torch's LinearLR chained with MultiStepLR: the authors' formula to 1e-15).

    Base 3.5e-4, warmup 10: 3.5e-6 at 0, 3.815e-5 at 1, 3.5e-4 from 10, 3.5e-5 from 40, 3.5e-6 from 70.
    Checks the settings once, with one-line errors naming the key.
    """
    milestones = [int(m) for m in milestones]
    if milestones != sorted(milestones):
        raise InputError(f"optim.milestones={milestones}: expected increasing epochs")
    if warmup_epochs < 0:
        raise InputError(f"optim.warmup_epochs={warmup_epochs}: expected >= 0")
    if not 0.0 < warmup_start_factor <= 1.0:
        raise InputError(f"optim.warmup_start_factor={warmup_start_factor}: expected in (0, 1]")
    steps = MultiStepLR(optimizer, milestones=milestones, gamma=float(gamma))
    if warmup_epochs == 0:
        return steps
    warmup = LinearLR(
        optimizer,
        start_factor=float(warmup_start_factor),
        end_factor=1.0,
        total_iters=warmup_epochs,
    )
    return ChainedScheduler([warmup, steps])
