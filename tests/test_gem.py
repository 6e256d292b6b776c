"""GeM pooling (model.pooling=gem): the formula written out, p=1 as average pooling, p learnable
from 3 and in the backbone's parameter group exactly once."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import new_net
from reidtricks.errors import InputError
from reidtricks.models.pooling import GeneralizedMeanPooling, build_pooling
from reidtricks.training.optim import build_param_groups


def written_out(x, p, eps=1e-6):
    """Per sample and channel: (sum over the H x W values v of max(v, eps)^p / (H W))^(1/p)."""
    out = torch.empty(x.shape[0], x.shape[1], 1, 1, dtype=x.dtype)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            values = [max(float(v), eps) ** p for v in x[n, c].flatten()]
            out[n, c, 0, 0] = (sum(values) / len(values)) ** (1 / p)
    return out


@pytest.mark.parametrize("p", [3.0, 2.2, 6.5])
def test_gem_is_the_formula(p):
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 3, dtype=torch.float64) * 2  # negatives are clamped to eps
    gem = GeneralizedMeanPooling().double()
    with torch.no_grad():
        gem.p.fill_(p)
    torch.testing.assert_close(gem(x), written_out(x, p))


def test_gem_with_p1_is_average_pooling():
    x = torch.rand(2, 5, 8, 4, dtype=torch.float64) + 0.1  # positive: the clamp never acts
    gem = GeneralizedMeanPooling().double()
    with torch.no_grad():
        gem.p.fill_(1.0)
    torch.testing.assert_close(gem(x), nn.AdaptiveAvgPool2d(1)(x))


def test_p_starts_at_3_and_learns():
    net = new_net("resnet18", 5, pooling="gem")
    assert isinstance(net.pool, GeneralizedMeanPooling)
    assert net.pool.p.requires_grad and net.pool.p.tolist() == [3.0]
    out = net.train()(torch.randn(4, 3, 64, 32))
    out.feat_before_bn.sum().backward()
    assert net.pool.p.grad is not None and float(net.pool.p.grad.abs()) > 0
    assert "pool.p" in net.state_dict()


def test_avg_pooling_has_no_parameters_and_bad_names_are_errors():
    assert isinstance(build_pooling("avg"), nn.AdaptiveAvgPool2d)
    assert not list(new_net("resnet18", 5).pool.parameters())
    with pytest.raises(InputError, match=r"^model.pooling='max': expected one of \('avg', 'gem'\)"):
        new_net("resnet18", 5, pooling="max")


@pytest.mark.parametrize("classifier_lr_factor", [1.0, 10.0])
def test_p_is_in_the_backbone_weights_group_exactly_once(classifier_lr_factor):
    net = new_net("resnet18", 5, neck="bnneck", pooling="gem")
    groups = build_param_groups(
        net, lr=1.0, weight_decay=5e-4, bias_lr_factor=2.0, weight_decay_bias=0.0,
        classifier_lr_factor=classifier_lr_factor,
    )  # fmt: skip
    seen = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in net.parameters() if p.requires_grad]
    assert sorted(seen) == sorted(trainable) and len(seen) == len(set(seen))
    [home] = [g for g in groups if any(p is net.pool.p for p in g["params"])]
    assert (home["lr"], home["weight_decay"]) == (1.0, 5e-4)  # the backbone's weights
    assert any(p is net.backbone.conv1.weight for p in home["params"])
