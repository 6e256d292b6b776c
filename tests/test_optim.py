"""Parameter groups and the warmup + multistep schedule against the numbers of docs/METHOD.md."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from helpers import new_net
from reidtricks.errors import InputError
from reidtricks.training.optim import build_lr_scheduler, build_param_groups
from reidtricks.training.settings import OptimConfig


def scheduled_lrs(epochs: int = 120, **settings) -> list[float]:
    """The LR of every epoch under build_lr_scheduler, stepped once per epoch as training does."""
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=3.5e-4)
    scheduler = build_lr_scheduler(optimizer, replace(OptimConfig(), **settings))
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def paper_lr(epoch: int, warmup: bool) -> float:
    if warmup and epoch < 10:
        return 3.5e-4 * (0.01 + 0.99 * epoch / 10)
    return 3.5e-4 if epoch < 40 else 3.5e-5 if epoch < 70 else 3.5e-6


@pytest.mark.parametrize("warmup", [False, True])
def test_every_epoch_lr(warmup):
    lrs = scheduled_lrs(milestones=(40, 70), gamma=0.1, warmup=warmup, warmup_epochs=10)
    for epoch, lr in enumerate(lrs):
        assert lr == pytest.approx(paper_lr(epoch, warmup), rel=1e-12), epoch


def test_listed_values():
    lrs = scheduled_lrs(warmup=True, warmup_epochs=10)
    lr = [lrs[e] for e in (0, 1, 9, 10, 39, 40, 70)]
    assert lr == pytest.approx([3.5e-6, 3.815e-5, 3.1535e-4, 3.5e-4, 3.5e-4, 3.5e-5, 3.5e-6])


def test_param_groups_cover_every_trainable_param_once():
    net = new_net("resnet18", num_classes=7, neck="bnneck")
    groups = build_param_groups(
        net, lr=1.0, weight_decay=5e-4, bias_lr_factor=2.0, weight_decay_bias=0.0
    )
    seen = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in net.parameters() if p.requires_grad]
    assert sorted(seen) == sorted(trainable) and len(seen) == len(set(seen))
    assert id(net.bottleneck.bias) not in seen  # frozen BNNeck shift
    weights, biases = groups
    assert (weights["lr"], weights["weight_decay"]) == (1.0, 5e-4)
    assert (biases["lr"], biases["weight_decay"]) == (2.0, 0.0)
    named = dict(net.named_parameters())
    bias_ids = {id(p) for n, p in named.items() if n.endswith("bias") and p.requires_grad}
    assert {id(p) for p in biases["params"]} == bias_ids


def test_schedule_settings_are_checked_once_in_the_typed_config():
    defaults = OptimConfig()
    with pytest.raises(InputError, match=r"optim.milestones=\[70, 40\]: expected increasing"):
        replace(defaults, milestones=[70, 40])
    with pytest.raises(InputError, match="optim.warmup_epochs=-1: expected an integer >= 0"):
        replace(defaults, warmup_epochs=-1)
    with pytest.raises(InputError, match="optim.warmup_start_factor=2: expected a number in"):
        replace(defaults, warmup_start_factor=2)
    with pytest.raises(InputError, match="optim.warmup=1: expected true or false"):
        replace(defaults, warmup=1)
    with pytest.raises(InputError, match="optim.lr='fast': expected a number"):
        replace(defaults, lr="fast")


def test_warmup_epochs_only_act_with_the_warmup_trick():
    assert scheduled_lrs(warmup=False, warmup_epochs=10) == scheduled_lrs(warmup=False)
