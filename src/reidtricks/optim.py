"""Optimiser parameter groups and the warmup + multistep LR schedule (PAPER.md)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from torch import nn


def build_param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    bias_lr_factor: float = 1.0,
    weight_decay_bias: float | None = None,
) -> list[dict]:
    """One group for weights, one for biases (lr * bias_lr_factor, weight_decay_bias), as the
    authors' code; frozen parameters (the BNNeck bias) are left out."""
    weights, biases = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (biases if name.endswith("bias") else weights).append(param)
    wd_bias = weight_decay if weight_decay_bias is None else weight_decay_bias
    groups = [{"params": weights, "lr": lr, "weight_decay": weight_decay}]
    if biases:
        groups.append({"params": biases, "lr": lr * bias_lr_factor, "weight_decay": wd_bias})
    return groups


def warmup_multistep_factor(
    epoch: int,
    milestones: Sequence[int] = (40, 70),
    gamma: float = 0.1,
    warmup_epochs: int = 0,
    warmup_start_factor: float = 0.01,
) -> float:
    """Factor of the base LR at a 0-based epoch: linear warmup from warmup_start_factor, then
    x gamma at each milestone. Base 3.5e-4, warmup 10: 3.5e-6 at 0, 3.815e-5 at 1, 3.5e-4 from 10."""
    factor = gamma ** bisect_right(sorted(milestones), epoch)
    if epoch < warmup_epochs:
        factor *= warmup_start_factor + (1.0 - warmup_start_factor) * epoch / warmup_epochs
    return factor
