"""Optimiser parameter groups and the warmup + multistep LR schedule (docs/METHOD.md, "Optimiser and LR schedule", trick 1)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from functools import partial

from torch import nn


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


def warmup_multistep_factor(
    epoch: int,
    milestones: Sequence[int] = (40, 70),
    gamma: float = 0.1,
    warmup_epochs: int = 0,
    warmup_start_factor: float = 0.01,
) -> float:
    """Factor of the base LR at a 0-based epoch: gamma ** (milestones <= epoch), times the linear
    warmup start + (1 - start) * epoch / warmup_epochs while epoch < warmup_epochs (authors' code).

    Base 3.5e-4, warmup 10: 3.5e-6 at 0, 3.815e-5 at 1, 3.5e-4 from 10, 3.5e-5 from 40, 3.5e-6 from 70.
    """
    factor = gamma ** bisect_right(sorted(milestones), epoch)
    if epoch < warmup_epochs:
        factor *= warmup_start_factor + (1.0 - warmup_start_factor) * epoch / warmup_epochs
    return factor


def build_lr_lambda(
    milestones: Sequence[int] = (40, 70),
    gamma: float = 0.1,
    warmup_epochs: int = 0,
    warmup_start_factor: float = 0.01,
) -> partial[float]:
    """`warmup_multistep_factor` with its settings bound: a picklable `lr_lambda` for LambdaLR
    (stepped once per epoch). Checks the settings once, with one-line errors naming the key."""
    milestones = tuple(int(m) for m in milestones)
    if list(milestones) != sorted(milestones):
        raise ValueError(f"optim.milestones={list(milestones)}: expected increasing epochs")
    if warmup_epochs < 0:
        raise ValueError(f"optim.warmup_epochs={warmup_epochs}: expected >= 0")
    if not 0.0 <= warmup_start_factor <= 1.0:
        raise ValueError(f"optim.warmup_start_factor={warmup_start_factor}: expected in [0, 1]")
    return partial(
        warmup_multistep_factor,
        milestones=milestones,
        gamma=float(gamma),
        warmup_epochs=int(warmup_epochs),
        warmup_start_factor=float(warmup_start_factor),
    )
