"""MixStyle (model.mixstyle.*): the mixing against its formula written out, where the network
applies it, the identity at test time (bit for bit), and p=0 as the network without it."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from helpers import new_net
from reidtricks.errors import InputError
from reidtricks.models.mixstyle import MixStyle, MixStyleConfig, mix_styles


def written_out(x, lam, perm, eps=1e-6):
    """Per sample i and channel c: mu, sigma over H x W (sigma^2 the biased variance + eps);
    (x - mu_i) / sigma_i * (l_i sigma_i + (1 - l_i) sigma_j) + l_i mu_i + (1 - l_i) mu_j, j =
    perm[i]."""
    out = torch.empty_like(x)
    stats = {}
    for i in range(x.shape[0]):
        for c in range(x.shape[1]):
            values = [float(v) for v in x[i, c].flatten()]
            mu = sum(values) / len(values)
            stats[i, c] = mu, math.sqrt(sum((v - mu) ** 2 for v in values) / len(values) + eps)
    for i in range(x.shape[0]):
        j, lam_i = int(perm[i]), float(lam[i])
        for c in range(x.shape[1]):
            (mu_i, sig_i), (mu_j, sig_j) = stats[i, c], stats[j, c]
            sig_mix = lam_i * sig_i + (1 - lam_i) * sig_j
            out[i, c] = (x[i, c] - mu_i) / sig_i * sig_mix + lam_i * mu_i + (1 - lam_i) * mu_j
    return out


def test_mix_styles_is_the_formula():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 4, dtype=torch.float64) * 3 + 2
    lam, perm = torch.tensor([0.9, 0.02, 0.5, 1.0]), torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(mix_styles(x, lam, perm), written_out(x, lam, perm))


def test_the_statistics_are_detached():
    """With mu and sigma constants, d out / d x = sigma_mix / sigma, elementwise."""
    torch.manual_seed(0)
    x = (torch.randn(3, 2, 4, 4, dtype=torch.float64) * 2).requires_grad_()
    lam, perm = torch.tensor([0.3, 0.6, 0.1]), torch.tensor([1, 2, 0])
    mix_styles(x, lam, perm).sum().backward()
    with torch.no_grad():
        sigma = (x.var(dim=(2, 3), keepdim=True, correction=0) + 1e-6).sqrt()
        lam4 = lam.double().view(-1, 1, 1, 1)
        expected = (lam4 * sigma + (1 - lam4) * sigma[perm]) / sigma
    torch.testing.assert_close(x.grad, expected.expand_as(x))


def test_the_module_draws_from_torchs_global_rng():
    """p=1 in training: the gate draw, then lam ~ Beta(alpha, alpha) per sample and a permutation
    of the batch, in that order, from the global RNG; the formula applied with them."""
    x = torch.randn(6, 3, 4, 2, dtype=torch.float64)
    module = MixStyle(p=1.0, alpha=0.1).train()
    torch.manual_seed(5)
    got = module(x)
    torch.manual_seed(5)
    torch.rand(())
    lam = torch.distributions.Beta(0.1, 0.1).sample((6,))
    perm = torch.randperm(6)
    torch.testing.assert_close(got, written_out(x, lam, perm))
    assert not torch.equal(got, x)


def test_the_module_is_the_identity_at_eval_time_and_for_p0():
    x = torch.randn(4, 3, 5, 4)
    assert MixStyle(p=1.0, alpha=0.1).eval()(x) is x
    assert MixStyle(p=0.0, alpha=0.1).train()(x) is x
    torch.manual_seed(0)  # p=0.5: about half of the calls mix
    module = MixStyle(p=0.5, alpha=0.1).train()
    mixed = sum(not torch.equal(module(x), x) for _ in range(200))
    assert 70 < mixed < 130


def nets(**mixstyle):
    """(the network with MixStyle, the same network without it): same seed, same weights."""
    torch.manual_seed(0)
    plain = new_net("resnet18", 5)
    torch.manual_seed(0)
    mixed = new_net("resnet18", 5, mixstyle=mixstyle)
    return mixed, plain


def test_eval_is_bit_for_bit_the_network_without_mixstyle():
    mixed, plain = nets(p=1.0)
    x = torch.randn(4, 3, 64, 32)
    with torch.no_grad():
        a, b = mixed.eval()(x), plain.eval()(x)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    with torch.no_grad():  # in training (p=1) it does act
        assert not torch.equal(mixed.train()(x).feat_before_bn, plain.train()(x).feat_before_bn)


def test_p0_builds_the_network_without_mixstyle():
    mixed, plain = nets(p=0.0, alpha=0.3, layers=["layer1", "layer2", "layer3"])
    assert [type(m) for m in mixed.modules()] == [type(m) for m in plain.modules()]
    assert not any(m._forward_hooks for m in mixed.modules())
    sa, sb = mixed.state_dict(), plain.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.randn(4, 3, 64, 32)
    torch.manual_seed(1)
    a = mixed.train()(x)
    torch.manual_seed(1)
    b = plain.train()(x)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def hooked(net) -> set[str]:
    return {name for name, m in net.named_modules() if m._forward_hooks}


@pytest.mark.parametrize(
    ("backbone", "layers", "expected"),
    [
        ("resnet18", ["layer1", "layer2"], {"backbone.layer1", "backbone.layer2"}),
        ("resnet50", ["layer3"], {"backbone.layer3"}),
        ("timm:resnet18", ["layer1", "layer2"], {"backbone.model.layer1", "backbone.model.layer2"}),
        # blocks 1 and 2 end at output stride 4 and 8 (feature_info), as layer1 and layer2
        ("timm:mobilenetv2_100", ["layer1", "layer2"],
         {"backbone.model.blocks.1", "backbone.model.blocks.2"}),
        ("timm:tf_efficientnet_lite0", ["layer2", "layer3"],
         {"backbone.model.blocks.2", "backbone.model.blocks.4"}),
    ],
)  # fmt: skip
def test_mixstyle_follows_the_named_stages(backbone, layers, expected):
    net = new_net(backbone, 5, mixstyle={"p": 0.5, "layers": layers})
    assert hooked(net) == expected
    assert isinstance(net.mixstyle, MixStyle) and net.mixstyle.p == 0.5


def test_in_training_the_stage_output_is_mixed_as_written_out():
    """ResNet-18 with MixStyle after layer1 (p=1), against the same network run stage by stage
    with the formula applied to layer1's output, with the same draws."""
    mixed, plain = nets(p=1.0, alpha=0.1, layers=["layer1"])
    x = torch.randn(4, 3, 64, 32, dtype=torch.float64)
    mixed.double().train()
    plain.double().train()
    torch.manual_seed(7)
    got = mixed(x).feat_before_bn
    torch.manual_seed(7)
    torch.rand(())
    lam, perm = torch.distributions.Beta(0.1, 0.1).sample((4,)), torch.randperm(4)
    t = plain.backbone
    h = t.layer1(t.maxpool(t.relu(t.bn1(t.conv1(x)))))
    h = written_out(h, lam, perm)
    expected = t.layer4(t.layer3(t.layer2(h))).mean(dim=(2, 3))
    torch.testing.assert_close(got, expected)


def test_a_copy_of_the_network_uses_its_own_mixstyle():
    """Export and EMA copies deep-copy the network: the copy's hooks call the copy's module."""
    mixed, plain = nets(p=1.0)
    clone = copy.deepcopy(mixed)
    clone.mixstyle.p = 0.0
    x = torch.randn(4, 3, 64, 32)
    with torch.no_grad():
        expected = plain.train()(x).feat_before_bn
        assert torch.equal(clone.train()(x).feat_before_bn, expected)
        assert not torch.equal(mixed.train()(x).feat_before_bn, expected)  # the original mixes


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"p": 1.5}, r"model.mixstyle.p=1.5: expected a number in \[0, 1\]"),
        ({"alpha": 0}, r"model.mixstyle.alpha=0: expected > 0"),
        ({"layers": ["layer5"]}, r"model.mixstyle.layers=\['layer5'\]: expected distinct names"),
        ({"layers": "layer1"}, r"model.mixstyle.layers='layer1': expected a list"),
        ({"layers": []}, r"model.mixstyle.layers=\[\]: expected distinct names"),
        ({"q": 1}, r"model.mixstyle.q: unknown setting"),
    ],
)
def test_bad_settings_are_one_line_errors(values, message):
    from reidtricks.config import typed_config

    with pytest.raises(InputError, match=message) as err:
        typed_config(MixStyleConfig, values, "model.mixstyle")
    assert "\n" not in str(err.value)


def test_mixstyle_on_other_backbones_is_a_one_line_error():
    with pytest.raises(InputError, match=r"^model.mixstyle: supported for .*not ConvNeXt$"):
        new_net("timm:convnext_atto", 5, mixstyle={"p": 0.5})
