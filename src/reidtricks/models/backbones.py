"""Backbones as feature extractors (B x 3 x H x W -> B x C x h x w) with a configurable last stride."""

from __future__ import annotations

import torchvision
from torch import nn

from reidtricks.models.pretrained import load_pretrained_file, offline_error

TORCHVISION_RESNETS = {
    "resnet18": ("resnet18", "ResNet18_Weights"),
    "resnet34": ("resnet34", "ResNet34_Weights"),
    "resnet50": ("resnet50", "ResNet50_Weights"),
    "resnet101": ("resnet101", "ResNet101_Weights"),
    "resnet152": ("resnet152", "ResNet152_Weights"),
}
TIMM_PREFIX = "timm:"


def remove_last_stride(layer4: nn.Module) -> None:
    """Make layer4 keep its input resolution: every stride-2 conv (and avg-pool shortcut) of its
    first block gets stride 1, so a 256x128 input gives a 16x8 map instead of 8x4 (trick 4)."""
    for module in layer4[0].modules():
        if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
            module.stride = (1, 1)
        elif isinstance(module, nn.AvgPool2d) and module.stride in (2, (2, 2)):
            module.kernel_size, module.stride = 1, 1


class _TorchvisionResNetTrunk(nn.Module):
    """A torchvision ResNet without avgpool/fc."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = (
            resnet.conv1,
            resnet.bn1,
            resnet.relu,
            resnet.maxpool,
        )
        self.layer1, self.layer2 = resnet.layer1, resnet.layer2
        self.layer3, self.layer4 = resnet.layer3, resnet.layer4

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _torchvision_resnet(name: str, last_stride: int, pretrained: bool) -> tuple[nn.Module, int]:
    builder_name, weights_name = TORCHVISION_RESNETS[name]
    weights = None
    if pretrained:
        weights = getattr(torchvision.models, weights_name).IMAGENET1K_V1
    try:
        resnet = getattr(torchvision.models, builder_name)(weights=weights)
    except Exception as err:  # no internet, corrupt cache, ...
        raise offline_error(name, err) from err
    trunk = _TorchvisionResNetTrunk(resnet)
    if last_stride == 1:
        remove_last_stride(trunk.layer4)
    return trunk, resnet.fc.in_features


def _timm_backbone(name: str, last_stride: int, pretrained: bool) -> tuple[nn.Module, int]:
    import timm

    try:
        model = timm.create_model(name, pretrained=pretrained, num_classes=0, global_pool="")
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise ValueError(f"model.backbone={TIMM_PREFIX}{name}: timm has no such model") from err
        raise offline_error(name, err) from err
    except Exception as err:
        raise offline_error(name, err) from err
    if last_stride != 2:
        layer4 = getattr(model, "layer4", None)
        if layer4 is None:
            raise ValueError(
                f"model.last_stride={last_stride} is supported for timm ResNet-family models "
                f"(with layer4), not {name}"
            )
        remove_last_stride(layer4)
    return model, model.num_features


def build_backbone(
    name: str, last_stride: int = 2, pretrained: bool = False, pretrained_path: str | None = None
) -> tuple[nn.Module, int]:
    """(feature extractor, channels) for a torchvision ResNet name or `timm:<model>`."""
    if last_stride not in (1, 2):
        raise ValueError(f"model.last_stride={last_stride}: expected 1 or 2")
    download = pretrained and not pretrained_path
    if name in TORCHVISION_RESNETS:
        backbone, channels = _torchvision_resnet(name, last_stride, download)
    elif name.startswith(TIMM_PREFIX):
        backbone, channels = _timm_backbone(name.removeprefix(TIMM_PREFIX), last_stride, download)
    else:
        known = ", ".join([*TORCHVISION_RESNETS, f"{TIMM_PREFIX}<timm model>"])
        raise ValueError(f"model.backbone={name!r}: expected one of {known}")
    if pretrained_path:
        load_pretrained_file(backbone, pretrained_path)
    return backbone, channels
