"""ReIDModule wiring: the centers' own SGD step, the LR schedule per epoch, loss terms; the
test-time feature."""

from __future__ import annotations

from dataclasses import replace

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from helpers import new_net
from reidtricks.errors import InputError
from reidtricks.evaluation.evaluator import eval_time_features
from reidtricks.evaluation.settings import EvalConfig
from reidtricks.training.module import ReIDModule
from reidtricks.training.settings import LossConfig, OptimConfig

PIDS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


def tiny_module(**loss) -> ReIDModule:
    """The YAML defaults (conf/loss, conf/optim/adam, conf/eval) with some loss settings changed."""
    torch.manual_seed(0)
    net = new_net("resnet18", num_classes=4, neck="bnneck")
    return ReIDModule(
        net,
        num_classes=4,
        loss=replace(LossConfig(), **loss),
        optim=OptimConfig(),
        eval=EvalConfig(),
    )


def fit_one_batch(module: ReIDModule) -> None:
    images = torch.randn(len(PIDS), 3, 64, 32)
    loader = DataLoader(
        TensorDataset(images, PIDS, torch.zeros_like(PIDS), torch.arange(len(PIDS))), batch_size=8
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=loader)


def test_center_step_uses_the_unweighted_gradient():
    module = tiny_module(center_weight=0.0005, center_lr=0.5)
    captured = {}

    def keep_first_features(module, inputs, out) -> None:
        captured.setdefault("f", out.feat_before_bn.detach().clone())

    module.net.register_forward_hook(keep_first_features)
    c0 = module.center_loss.centers.detach().clone()
    fit_one_batch(module)
    f, batch = captured["f"], len(PIDS)
    # d/dc_k of (1/B) sum_j |f_j - c_{y_j}|^2 = (2/B) sum_{j: y_j = k} (c_k - f_j)
    grad = torch.zeros_like(c0)
    for j in range(batch):
        grad[PIDS[j]] += 2.0 / batch * (c0[PIDS[j]] - f[j])
    expected = c0 - 0.5 * grad
    assert torch.allclose(module.center_loss.centers.detach(), expected, atol=1e-5)
    assert not torch.allclose(expected, c0)


def test_centers_are_not_in_the_network_optimizer():
    module = tiny_module(center_weight=0.0005)
    optimizer = module.configure_optimizers()["optimizer"]
    ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert id(module.center_loss.centers) not in ids
    assert ids == {id(p) for p in module.net.parameters() if p.requires_grad}


def test_no_center_loss_without_the_trick():
    module = tiny_module()
    assert module.center_loss is None and module.center_optimizer is None
    out = module.net(torch.randn(8, 3, 64, 32))
    assert set(module.loss_terms(out, PIDS)) == {"id", "triplet", "total"}


@pytest.mark.parametrize("warmup", [False, True])
def test_lr_of_every_epoch(warmup):
    module = ReIDModule(
        new_net("resnet18", num_classes=4),
        num_classes=4,
        optim=replace(
            OptimConfig(),
            lr=3.5e-4,
            milestones=[40, 70],
            gamma=0.1,
            warmup=warmup,
            warmup_epochs=10,
            warmup_start_factor=0.01,
        ),
    )
    conf = module.configure_optimizers()
    optimizer, scheduler = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    for epoch in range(120):
        if warmup and epoch < 10:
            expected = 3.5e-4 * (0.01 + 0.99 * epoch / 10)
        else:
            expected = 3.5e-4 * (1.0 if epoch < 40 else 0.1 if epoch < 70 else 0.01)
        for group in optimizer.param_groups:  # weights and biases alike
            assert group["lr"] == pytest.approx(expected, rel=1e-9), epoch
        scheduler.step()
    assert type(optimizer) is torch.optim.Adam  # plain L2 decay, not AdamW
    assert len(optimizer.param_groups) == 2


def test_total_loss_is_the_weighted_sum():
    module = tiny_module(center_weight=0.0005, label_smoothing=0.1)
    out = module.net(torch.randn(8, 3, 64, 32))
    terms = module.loss_terms(out, PIDS)
    expected = terms["id"] + terms["triplet"] + 0.0005 * terms["center"]
    assert torch.allclose(terms["total"], expected)
    assert terms["total"].dtype == torch.float32


def test_bad_eval_feature_is_rejected():
    with pytest.raises(InputError, match=r"eval.feature='middle': expected one of \('before_bn'"):
        replace(EvalConfig(), feature="middle")


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("feature", ["before_bn", "after_bn"])
def test_test_time_feature_and_flip(feature, flip):
    module = tiny_module()
    eval_cfg = replace(EvalConfig(), feature=feature, flip=flip)
    module.eval()
    # Give the BNNeck non-trivial statistics, so before/after BN differ.
    module.net.bottleneck.running_mean.uniform_(-1, 1)
    module.net.bottleneck.running_var.uniform_(0.5, 2)
    images = torch.randn(3, 3, 64, 32)

    def by_hand(x: torch.Tensor) -> torch.Tensor:
        f_t = module.net.pool(module.net.backbone(x)).flatten(1)
        if feature == "before_bn":
            return f_t
        bn = module.net.bottleneck
        return (f_t - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight

    with torch.no_grad():
        expected = by_hand(images)
        if flip:
            expected = (expected + by_hand(torch.flip(images, dims=[3]))) / 2
        got = eval_time_features(module, images, eval_cfg)
    assert torch.allclose(got, expected, atol=1e-5)
