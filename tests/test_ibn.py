"""IBN-a (model.ibn=a): the IBN layer against the normalisations written out, which norm layers it
replaces in each backbone family, that it carries the (ImageNet) weights it replaces, and that
model.ibn=none builds the network as before."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import nn

from helpers import new_backbone, new_net
from reidtricks.errors import InputError
from reidtricks.models import ReIDNet
from reidtricks.models.backbones import TimmTrunk, TorchvisionResNetTrunk
from reidtricks.models.ibn import IBN


def random_batch_norm(channels: int, eps: float = 1e-5) -> nn.BatchNorm2d:
    """A BN layer with non-trivial weights and running statistics (as ImageNet's would be)."""
    bn = nn.BatchNorm2d(channels, eps=eps)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.num_batches_tracked.fill_(123)
    return bn


def written_out(x, weight, bias, running_mean, running_var, eps, half, training):
    """Channel c < half: (x - mean over H, W of that sample) / sqrt(biased var + eps); channel
    c >= half: over the batch and H, W in training, the running statistics in eval; then
    weight * . + bias, channel by channel."""
    out = torch.empty_like(x)
    for c in range(x.shape[1]):
        for n in range(x.shape[0]):
            if c < half:
                values = x[n, c]
            elif training:
                values = x[:, c]
            else:
                values = None
            if values is not None:
                mean = values.sum() / values.numel()
                var = ((values - mean) ** 2).sum() / values.numel()
            else:
                mean, var = running_mean[c], running_var[c]
            out[n, c] = (x[n, c] - mean) / torch.sqrt(var + eps) * weight[c] + bias[c]
    return out


@pytest.mark.parametrize("channels", [8, 7])
@pytest.mark.parametrize("training", [True, False])
def test_ibn_layer_is_instance_norm_on_the_first_half_and_batch_norm_on_the_rest(
    channels, training
):
    torch.manual_seed(0)
    bn = random_batch_norm(channels, eps=1e-3).double()
    ibn = IBN.from_batch_norm(bn).double().train(training)
    half = channels // 2  # 4 of 8, 3 of 7: the IN part is floor(C / 2)
    assert (ibn.inst.num_features, ibn.bn.num_features) == (half, channels - half)
    assert not ibn.inst.track_running_stats and ibn.inst.affine
    x = torch.randn(3, channels, 5, 4, dtype=torch.float64) * 2 + 1
    expected = written_out(
        x, bn.weight.detach(), bn.bias.detach(), bn.running_mean, bn.running_var, 1e-3, half,
        training,
    )  # fmt: skip
    torch.testing.assert_close(ibn(x), expected, atol=1e-10, rtol=0)


def test_ibn_layer_keeps_a_channels_last_input_channels_last_with_the_same_values_and_grads():
    """The layer normalises in NCHW for speed (scripts/bench_ibn.py): the caller's layout, the
    values and the gradients must not depend on it."""
    torch.manual_seed(0)
    ibn = IBN.from_batch_norm(random_batch_norm(8)).double().train()
    x = torch.randn(3, 8, 5, 4, dtype=torch.float64)
    x_cl = x.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    x = x.requires_grad_(True)
    out, out_cl = ibn(x), ibn(x_cl)
    assert out.is_contiguous() and out_cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out_cl, out, atol=1e-12, rtol=0)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (out_cl * weights).sum().backward()
    torch.testing.assert_close(x_cl.grad, x.grad, atol=1e-12, rtol=0)


def test_the_ibn_layer_carries_the_batch_norm_weights_and_statistics():
    bn = random_batch_norm(6)
    ibn = IBN.from_batch_norm(bn)
    assert torch.equal(ibn.inst.weight, bn.weight[:3]) and torch.equal(ibn.inst.bias, bn.bias[:3])
    assert torch.equal(ibn.bn.weight, bn.weight[3:]) and torch.equal(ibn.bn.bias, bn.bias[3:])
    assert torch.equal(ibn.bn.running_mean, bn.running_mean[3:])
    assert torch.equal(ibn.bn.running_var, bn.running_var[3:])
    assert int(ibn.bn.num_batches_tracked) == 123 and ibn.bn.momentum == bn.momentum
    assert isinstance(ibn.act, nn.Identity)


def test_timm_fused_activation_runs_after_both_halves():
    """timm's BatchNormAct2d (BN + ReLU6) becomes IN | BN, then the same ReLU6."""
    from timm.layers import BatchNormAct2d

    torch.manual_seed(0)
    fused = BatchNormAct2d(6, act_layer=nn.ReLU6)
    plain = random_batch_norm(6)
    fused.load_state_dict(plain.state_dict())
    ibn = IBN.from_batch_norm(fused).eval()
    x = torch.randn(2, 6, 4, 4) * 5
    expected = written_out(x, plain.weight.detach(), plain.bias.detach(), plain.running_mean,
                           plain.running_var, 1e-5, 3, False).clamp(0, 6)  # fmt: skip
    torch.testing.assert_close(ibn(x), expected, atol=1e-5, rtol=0)


def blocks(counts: list[int], prefix: str) -> set[str]:
    """`prefix.i.j.bn1` for stage i holding counts[i] blocks."""
    return {f"{prefix}.{i}.{j}.bn1" for i, n in enumerate(counts) for j in range(n)}


# Where IBN-a goes, written out per backbone: every block of layer1-3 (ResNets), every block
# of the groups before the stride-32 ones (timm EfficientNet/MobileNetV2: blocks 0-4).
REPLACED = {
    "resnet18": {f"layer{i}.{j}.bn1" for i in (1, 2, 3) for j in (0, 1)},
    "resnet50": {f"layer{i}.{j}.bn1" for i, n in ((1, 3), (2, 4), (3, 6)) for j in range(n)},
    "timm:resnet18": {f"model.layer{i}.{j}.bn1" for i in (1, 2, 3) for j in (0, 1)},
    "timm:mobilenetv2_100": blocks([1, 2, 3, 4, 3], "model.blocks"),
    "timm:tf_efficientnet_lite0": blocks([1, 2, 2, 3, 3], "model.blocks"),
    "timm:tf_efficientnet_lite2": blocks([1, 3, 3, 4, 4], "model.blocks"),
}


def imagenet_like_file(name: str, path) -> str:
    """A weights file with random BN weights and statistics in the backbone's own key layout."""
    torch.manual_seed(1)
    if name.startswith("timm:"):
        model = timm.create_model(name.removeprefix("timm:"), num_classes=0, global_pool="")
    else:
        model = getattr(torchvision.models, name)()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.load_state_dict(random_batch_norm(module.num_features, module.eps).state_dict())
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.mark.parametrize("name", list(REPLACED))
def test_ibn_a_replaces_the_first_norm_of_the_early_blocks_after_loading_the_weights(
    name, tmp_path
):
    weights = imagenet_like_file(name, tmp_path / "imagenet.pt")
    plain, _ = new_backbone(name, pretrained_path=weights)
    ibn, _ = new_backbone(name, pretrained_path=weights, ibn="a")
    replaced = {n for n, m in ibn.named_modules() if isinstance(m, IBN)}
    assert replaced == REPLACED[name]
    plain_modules = dict(plain.named_modules())
    for module_name in replaced:
        bn, layer = plain_modules[module_name], dict(ibn.named_modules())[module_name]
        half = bn.num_features // 2
        assert layer.half == half and layer.inst.eps == layer.bn.eps == bn.eps
        assert torch.equal(layer.inst.weight, bn.weight[:half])
        assert torch.equal(layer.inst.bias, bn.bias[:half])
        for key in ("weight", "bias", "running_mean", "running_var"):
            assert torch.equal(getattr(layer.bn, key), getattr(bn, key)[half:]), key
        if name.startswith("timm:mobilenet") or name.startswith("timm:tf_eff"):
            assert isinstance(layer.act[-1], nn.ReLU6)  # the fused activation kept
    # Every other tensor is the file's, untouched.
    ibn_state = ibn.state_dict()
    for key, value in plain.state_dict().items():
        if key.rsplit(".", 1)[0] not in replaced:
            assert torch.equal(ibn_state[key], value), key
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert ibn.eval()(x).shape == plain.eval()(x).shape


def test_ibn_none_builds_the_network_as_before():
    """Today's network, assembled by hand: torchvision's ResNet-18 trunk, average pooling, no
    neck; the same keys and values for the same seed, and no module of the tricks."""
    torch.manual_seed(0)
    net = new_net("resnet18", 5, ibn="none")
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None)
    expected = ReIDNet(TorchvisionResNetTrunk(resnet), 512, 5, "none")
    got_state, want_state = net.state_dict(), expected.state_dict()
    assert list(got_state) == list(want_state)
    assert all(torch.equal(got_state[k], want_state[k]) for k in want_state)
    assert [type(m) for m in net.modules()] == [type(m) for m in expected.modules()]
    assert isinstance(net.pool, nn.AdaptiveAvgPool2d)


def test_ibn_none_timm_backbone_is_timms_model_as_before():
    torch.manual_seed(0)
    backbone, _ = new_backbone("timm:mobilenetv2_100", ibn="none")
    torch.manual_seed(0)
    model = timm.create_model("mobilenetv2_100", pretrained=False, num_classes=0, global_pool="")
    want = TimmTrunk(model).state_dict()
    got = backbone.state_dict()
    assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want)
    assert not any(isinstance(m, IBN) for m in backbone.modules())


def test_ibn_on_other_backbones_and_bad_values_are_one_line_errors():
    with pytest.raises(InputError, match=r"^model.ibn=a: supported for .*not ConvNeXt$"):
        new_backbone("timm:convnext_atto", ibn="a")
    with pytest.raises(InputError, match=r"^model.ibn='b': expected one of \('none', 'a'\)$"):
        new_backbone("resnet18", ibn="b")
