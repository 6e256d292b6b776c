"""Backbones (last stride), the BNNeck structure, local pretrained weights."""

from __future__ import annotations

import pytest
import torch
import torchvision

from reidtricks.models import build_backbone, build_reid_net


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "timm:resnet18"])
@pytest.mark.parametrize(("last_stride", "size"), [(2, (8, 4)), (1, (16, 8))])
def test_feature_map_size(name, last_stride, size):
    backbone, channels = build_backbone(name, last_stride=last_stride)
    with torch.no_grad():
        fmap = backbone.eval()(torch.zeros(1, 3, 256, 128))
    assert tuple(fmap.shape[2:]) == size and fmap.shape[1] == channels
    assert channels == (2048 if name == "resnet50" else 512)


def test_last_stride_changes_nothing_but_the_stride():
    two, _ = build_backbone("resnet18", last_stride=2)
    one, _ = build_backbone("resnet18", last_stride=1)
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


def test_bnneck_structure():
    torch.manual_seed(0)
    net = build_reid_net("resnet18", num_classes=751, neck="bnneck")
    assert net.classifier.bias is None and net.classifier.weight.shape == (751, 512)
    assert net.classifier.weight.std().item() == pytest.approx(0.001, rel=0.05)
    assert torch.all(net.bottleneck.weight == 1) and torch.all(net.bottleneck.bias == 0)
    assert not net.bottleneck.bias.requires_grad
    out = net(torch.randn(4, 3, 64, 32))
    assert out.feat_before_bn.shape == out.feat_after_bn.shape == (4, 512)
    assert out.logits.shape == (4, 751)
    # one optimiser step moves everything trainable but not the frozen shift
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1.0)
    out.logits.sum().backward()
    opt.step()
    assert torch.all(net.bottleneck.bias == 0)


def test_no_neck_is_the_standard_baseline():
    net = build_reid_net("resnet18", num_classes=10, neck="none")
    assert net.bottleneck is None and net.classifier.bias is not None
    assert torch.all(net.classifier.bias == 0)
    out = net(torch.randn(2, 3, 64, 32))
    assert out.feat_after_bn is out.feat_before_bn


def test_bad_names_are_clear_errors():
    with pytest.raises(ValueError, match="model.backbone='resnet5'"):
        build_backbone("resnet5")
    with pytest.raises(ValueError, match="model.neck='bn'"):
        build_reid_net("resnet18", num_classes=3, neck="bn")
    with pytest.raises(ValueError, match="model.last_stride=3"):
        build_backbone("resnet18", last_stride=3)


def test_pretrained_path_round_trip_and_errors(tmp_path):
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    backbone, _ = build_backbone(
        "resnet18", pretrained=True, pretrained_path=str(tmp_path / "r18.pth")
    )
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, reference.state_dict()[key])
    wrong = reference.state_dict()
    wrong["layer1.0.conv1.weight"] = torch.zeros(1, 1, 3, 3)
    torch.save({"state_dict": wrong}, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match=r"layer1.0.conv1.weight has shape \(1, 1, 3, 3\)"):
        build_backbone("resnet18", pretrained_path=str(tmp_path / "wrong.pth"))
    with pytest.raises(FileNotFoundError, match="model.pretrained_path"):
        build_backbone("resnet18", pretrained_path=str(tmp_path / "missing.pth"))


def test_offline_download_is_a_one_line_error(monkeypatch):
    def no_internet(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(
        torchvision.models.ResNet18_Weights.IMAGENET1K_V1, "get_state_dict", no_internet
    )
    with pytest.raises(RuntimeError, match="model.pretrained_path=FILE"):
        build_backbone("resnet18", pretrained=True)
