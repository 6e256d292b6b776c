"""Backbones (last stride), the BNNeck structure, ImageNet weights from a file or a download."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

from helpers import new_backbone, new_net
from reidtricks.models import ReIDNet


def feature_map(backbone, size=(256, 128)):
    with torch.no_grad():
        return backbone.eval()(torch.zeros(1, 3, *size))


@pytest.mark.parametrize(
    ("name", "channels"),
    [("resnet18", 512), ("resnet50", 2048), ("timm:resnet18", 512), ("timm:resnet26d", 2048)],
)
@pytest.mark.parametrize(("last_stride", "size"), [(2, (8, 4)), (1, (16, 8))])
def test_feature_map_size(name, channels, last_stride, size):
    backbone, got_channels = new_backbone(name, last_stride=last_stride)
    fmap = feature_map(backbone)
    assert got_channels == channels
    assert tuple(fmap.shape) == (1, channels, *size)


def test_last_stride_changes_nothing_but_the_stride():
    two, _ = new_backbone("resnet18", last_stride=2)
    one, _ = new_backbone("resnet18", last_stride=1)
    assert two.state_dict().keys() == one.state_dict().keys()
    for key, value in two.state_dict().items():
        assert value.shape == one.state_dict()[key].shape
    strides = {n: m.stride for n, m in one.named_modules() if isinstance(m, torch.nn.Conv2d)}
    changed = {
        n
        for n, m in two.named_modules()
        if isinstance(m, torch.nn.Conv2d) and m.stride != strides[n]
    }
    assert changed == {"layer4.0.conv1", "layer4.0.downsample.0"}
    assert strides["layer4.0.conv1"] == strides["layer4.0.downsample.0"] == (1, 1)


def test_torchvision_backbone_is_the_resnet_without_its_head():
    torch.manual_seed(0)
    backbone, _ = new_backbone("resnet18")
    assert not any(k.startswith("fc.") for k in backbone.state_dict())
    resnet = torchvision.models.resnet18()
    resnet.fc = torch.nn.Identity()
    resnet.load_state_dict(backbone.state_dict())
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        expected = resnet.eval()(x)  # torchvision's own forward, average-pooled, no classifier
        got = backbone.eval()(x).mean(dim=(2, 3))
    assert torch.allclose(got, expected, atol=1e-5)


def test_timm_last_stride_one_only_for_resnet_family():
    with pytest.raises(ValueError, match="model.last_stride=1 .*timm:convnext_atto"):
        new_backbone("timm:convnext_atto", last_stride=1)
    backbone, channels = new_backbone("timm:convnext_atto")
    assert tuple(feature_map(backbone).shape) == (1, channels, 8, 4)


def test_timm_token_output_becomes_a_map():
    torch.manual_seed(0)
    backbone, channels = new_backbone("timm:vit_tiny_patch16_224")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        fmap = backbone.eval()(x)
        tokens = backbone.model.forward_features(x)  # 1 class token + 196 patch tokens
    assert tuple(fmap.shape) == (1, channels, 14 * 14, 1)
    assert torch.allclose(fmap.mean(dim=(2, 3)), tokens[:, 1:].mean(dim=1), atol=1e-5)


@pytest.fixture(scope="module")
def bnneck_net():
    torch.manual_seed(0)
    return new_net("resnet18", num_classes=751, neck="bnneck")


def test_bnneck_structure(bnneck_net):
    net = bnneck_net
    assert isinstance(net, ReIDNet) and net.feat_dim == 512
    assert net.classifier.bias is None and net.classifier.weight.shape == (751, 512)
    assert net.classifier.weight.mean().abs().item() < 1e-4
    assert net.classifier.weight.std().item() == pytest.approx(0.001, rel=0.05)
    assert torch.all(net.bottleneck.weight == 1) and torch.all(net.bottleneck.bias == 0)
    assert not net.bottleneck.bias.requires_grad and net.bottleneck.weight.requires_grad


def test_bnneck_forward_and_frozen_shift(bnneck_net):
    net = bnneck_net.train()
    out = net(torch.randn(4, 3, 64, 32))
    assert out.feat_before_bn.shape == out.feat_after_bn.shape == (4, 512)
    assert out.logits.shape == (4, 751)
    f = out.feat_before_bn.detach()
    bn = (f - f.mean(0)) / torch.sqrt(f.var(0, unbiased=False) + 1e-5)  # batch statistics
    assert torch.allclose(out.feat_after_bn.detach(), bn, atol=1e-3)
    expected_logits = out.feat_after_bn.detach() @ net.classifier.weight.detach().t()
    assert torch.allclose(out.logits.detach(), expected_logits, atol=1e-6)
    # one optimiser step moves the trainable BN weight but not the frozen shift
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1.0)
    (out.logits.pow(2).sum() + out.feat_after_bn.sum()).backward()
    opt.step()
    assert torch.all(net.bottleneck.bias == 0)
    assert not torch.all(net.bottleneck.weight == 1)
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 64, 32))
    assert out.logits.shape == (2, 751)


def test_no_neck_is_the_standard_baseline():
    torch.manual_seed(0)
    net = new_net("resnet18", num_classes=10, neck="none")
    assert net.bottleneck is None and net.classifier.bias is not None
    assert torch.all(net.classifier.bias == 0)
    assert net.classifier.weight.std().item() == pytest.approx(0.001, rel=0.2)
    out = net(torch.randn(2, 3, 64, 32))
    assert out.feat_after_bn is out.feat_before_bn
    assert out.feat_before_bn.shape == (2, 512) and out.logits.shape == (2, 10)


def test_bad_names_are_clear_errors():
    with pytest.raises(ValueError, match=r"model.backbone='resnet5'.*resnet18.*timm:"):
        new_backbone("resnet5")
    with pytest.raises(ValueError, match="model.backbone=timm:no_such_net"):
        new_backbone("timm:no_such_net")
    with pytest.raises(ValueError, match="model.neck='bn'"):
        new_net("resnet18", num_classes=3, neck="bn")
    with pytest.raises(ValueError, match="model.last_stride=3"):
        new_backbone("resnet18", last_stride=3)


@pytest.mark.slow  # builds and saves several backbones
def test_pretrained_path_round_trip_and_errors(tmp_path):
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), tmp_path / "r18.pth")  # fc.* keys are ignored
    backbone, _ = new_backbone("resnet18", last_stride=1, pretrained_path=str(tmp_path / "r18.pth"))
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, reference.state_dict()[key]), key
    # a {"model": ...} wrapper, without the BN counters of old checkpoints
    old = {k: v for k, v in reference.state_dict().items() if "num_batches_tracked" not in k}
    torch.save({"model": old}, tmp_path / "old.pth")
    backbone, _ = new_backbone("resnet18", pretrained_path=str(tmp_path / "old.pth"))
    assert torch.equal(backbone.state_dict()["layer2.0.conv1.weight"], old["layer2.0.conv1.weight"])

    wrong = reference.state_dict()
    wrong["layer1.0.conv1.weight"] = torch.zeros(1, 1, 3, 3)
    torch.save({"state_dict": wrong}, tmp_path / "wrong.pth")
    with pytest.raises(
        ValueError, match=r"wrong.pth: key layer1.0.conv1.weight has shape \(1, 1, 3, 3\), "
        r"expected \(64, 64, 3, 3\)"
    ):  # fmt: skip
        new_backbone("resnet18", pretrained_path=str(tmp_path / "wrong.pth"))
    with pytest.raises(ValueError, match=r"r18.pth: backbone key layer1.0.conv3.weight \(expected"):
        new_backbone("resnet50", pretrained_path=str(tmp_path / "r18.pth"))
    with pytest.raises(FileNotFoundError, match="model.pretrained_path=.*missing.pth"):
        new_backbone("resnet18", pretrained_path=str(tmp_path / "missing.pth"))


def test_pretrained_path_timm(tmp_path):
    reference = timm.create_model("resnet18")
    torch.save(reference.state_dict(), tmp_path / "timm_r18.pth")
    backbone, _ = new_backbone("timm:resnet18", pretrained_path=str(tmp_path / "timm_r18.pth"))
    for key, value in backbone.model.state_dict().items():
        assert torch.equal(value, reference.state_dict()[key]), key


@pytest.mark.slow  # builds several backbones
def test_offline_download_is_a_one_line_error(monkeypatch, tmp_path):
    def no_internet(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(
        torchvision.models.ResNet18_Weights.IMAGENET1K_V1, "get_state_dict", no_internet
    )
    monkeypatch.setattr(timm.models._builder, "load_pretrained", no_internet)
    for name in ("resnet18", "timm:resnet18"):
        with pytest.raises(RuntimeError, match="model.pretrained_path=FILE") as err:
            new_backbone(name, pretrained=True)
        assert "\n" not in str(err.value) and "model.pretrained=false" in str(err.value)
    # a local file wins over the download
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    new_backbone("resnet18", pretrained=True, pretrained_path=str(tmp_path / "r18.pth"))
