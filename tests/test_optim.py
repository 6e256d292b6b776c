"""Parameter groups and the warmup + multistep schedule against the numbers of docs/METHOD.md."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from helpers import new_net
from reidtricks.errors import InputError
from reidtricks.training.optim import build_lr_scheduler, build_optimizer, build_param_groups
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


@pytest.mark.parametrize("neck", ["none", "bnneck"])
def test_classifier_lr_factor_gives_the_classifier_its_own_groups(neck):
    net = new_net("resnet18", num_classes=7, neck=neck)
    groups = build_param_groups(
        net,
        lr=1.0,
        weight_decay=5e-4,
        bias_lr_factor=2.0,
        weight_decay_bias=0.0,
        classifier_lr_factor=10.0,
    )
    seen = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in net.parameters() if p.requires_grad]
    assert sorted(seen) == sorted(trainable) and len(seen) == len(set(seen))
    expected = {}  # lr and weight decay of every parameter, written out
    for name, param in net.named_parameters():
        if param.requires_grad:
            bias, head = name.endswith(".bias"), name.startswith("classifier.")
            expected[id(param)] = (
                (2.0 if bias else 1.0) * (10.0 if head else 1.0),
                0.0 if bias else 5e-4,
            )
    got = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert got == expected  # products of small powers of two and ten: exact
    # The classifier's bias exists only without the BNNeck: three groups with it, four without.
    assert len(groups) == (4 if neck == "none" else 3)


def test_classifier_lr_factor_one_keeps_the_two_groups():
    net = new_net("resnet18", num_classes=7, neck="none")
    plain = build_param_groups(net, lr=1.0, weight_decay=5e-4)
    same = build_param_groups(net, lr=1.0, weight_decay=5e-4, classifier_lr_factor=1.0)
    assert [[id(p) for p in g["params"]] for g in plain] == [
        [id(p) for p in g["params"]] for g in same
    ]
    assert len(plain) == 2


def test_classifier_lr_factor_scales_only_the_classifier_step():
    """One plain-SGD step from the same weights and batch: the backbone moves exactly as without
    the factor, the classifier exactly factor times as far (step = lr * (grad + wd * w))."""
    torch.manual_seed(0)
    base = new_net("resnet18", num_classes=5, neck="bnneck")
    images, labels = torch.randn(4, 3, 64, 32), torch.tensor([0, 1, 2, 3])
    moved = {}
    for factor in (1.0, 8.0):
        net = new_net("resnet18", num_classes=5, neck="bnneck")
        net.load_state_dict(base.state_dict())
        net.eval()  # BatchNorm statistics fixed: the two steps see the same forward pass
        cfg = replace(
            OptimConfig(),
            optimizer={"_target_": "torch.optim.SGD", "_partial_": True},
            lr=0.01,
            classifier_lr_factor=factor,
        )
        optimizer = build_optimizer(net, cfg)
        loss = torch.nn.functional.cross_entropy(net(images).logits, labels)
        loss.backward()
        optimizer.step()
        moved[factor] = {n: (p - base.state_dict()[n]).detach() for n, p in net.named_parameters()}
    for name, delta in moved[1.0].items():
        ratio = 8.0 if name.startswith("classifier.") else 1.0
        torch.testing.assert_close(moved[8.0][name], ratio * delta, rtol=1e-5, atol=1e-9)
    assert moved[1.0]["classifier.weight"].abs().sum() > 0


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
    with pytest.raises(InputError, match=r"optim.classifier_lr_factor=0: expected > 0"):
        replace(defaults, classifier_lr_factor=0)
    with pytest.raises(InputError, match="optim.classifier_lr_factor='x': expected a number"):
        replace(defaults, classifier_lr_factor="x")


def test_warmup_epochs_only_act_with_the_warmup_trick():
    assert scheduled_lrs(warmup=False, warmup_epochs=10) == scheduled_lrs(warmup=False)


def test_per_step_warmup_ramps_every_iteration_then_steps_at_milestones():
    """lr(t) = base * (s + (1 - s) t / T) for t < T = warmup_epochs x steps, then base x gamma^k."""
    steps, base, start = 7, 3.5e-4, 0.01
    cfg = replace(
        OptimConfig(),
        lr=base,
        warmup=True,
        warmup_epochs=2,
        warmup_start_factor=start,
        warmup_per_step=True,
        milestones=(4, 7),
        gamma=0.1,
    )
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=base)
    scheduler = build_lr_scheduler(optimizer, cfg, steps_per_epoch=steps)
    for t in range(10 * steps):
        epoch = t // steps
        expected = base * (start + (1 - start) * t / (2 * steps)) if t < 2 * steps else base
        expected *= 1.0 if epoch < 4 else 0.1 if epoch < 7 else 0.01
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12), t
        optimizer.step()
        scheduler.step()


def test_per_step_warmup_off_keeps_the_epoch_schedule():
    """warmup_per_step without the warmup trick changes nothing: the per-epoch MultiStepLR."""
    assert scheduled_lrs(epochs=12, milestones=(4, 7), warmup_per_step=True) == scheduled_lrs(
        epochs=12, milestones=(4, 7)
    )


def test_adam_step_sizes_follow_the_bias_corrected_second_moment():
    """lr / (sqrt(v_t / (1 - beta2^t)) + eps) with v_t = beta2 v + (1 - beta2) g^2, by hand."""
    from reidtricks.training.adam_monitor import adam_step_sizes

    param = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    lr, beta2, eps = 0.01, 0.99, 1e-8
    optimizer = torch.optim.Adam([param], lr=lr, betas=(0.9, beta2), eps=eps)
    grads = [torch.tensor([0.5, -1.0, 4.0]), torch.tensor([0.1, 2.0, -3.0])]
    v = torch.zeros(3, dtype=torch.float64)
    for g in grads:
        param.grad = g.clone()
        optimizer.step()
        v = beta2 * v + (1 - beta2) * g.double() ** 2
    expected = lr / ((v / (1 - beta2 ** len(grads))).sqrt() + eps)
    sizes = adam_step_sizes(optimizer, [param])
    assert torch.allclose(sizes.double(), expected, rtol=1e-5)
    assert adam_step_sizes(optimizer, []).numel() == 0


def test_the_adam_monitor_says_so_when_the_optimiser_is_not_adam(caplog):
    import logging
    from types import SimpleNamespace

    from reidtricks.training.adam_monitor import AdamStepSizeMonitor

    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with caplog.at_level(logging.WARNING, logger="reidtricks"):
        AdamStepSizeMonitor().on_train_start(SimpleNamespace(optimizers=[sgd]), None)
    assert "the optimiser is SGD, not Adam: no adam/* step sizes will be logged" in caplog.text
    caplog.clear()
    adam = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with caplog.at_level(logging.WARNING, logger="reidtricks"):
        AdamStepSizeMonitor().on_train_start(SimpleNamespace(optimizers=[adam]), None)
    assert caplog.text == ""
