"""Backbones as feature extractors (B x 3 x H x W -> B x C x h x w) with a configurable last stride.

Names: the torchvision ResNets ("resnet18" ... "resnet152") and "timm:<model>" for any timm model.
last_stride=1 (docs/METHOD.md trick 4: stride 1 in layer4, no dilation) works for the torchvision ResNets
and for every timm model built on timm's `ResNet` class: resnet*, resnet*d/t, resnext*, seresnet*,
seresnext*, ecaresnet*, wide_resnet*, resnetaa*/resnetblur*, resnetrs*, resnest*, skresnet*, ...
It also works for timm's `EfficientNet` class (mobilenetv2_*, efficientnet_*, tf_efficientnet_*,
mnasnet_*, ...): stride 1 in the last block that downsamples. Other timm models (ConvNeXt, ViT,
RegNet, ...) accept only last_stride=2. See docs/METHOD.md, trick 4.
"""

from __future__ import annotations

import torchvision
from torch import Tensor, nn

from reidtricks.errors import InputError
from reidtricks.models.ibn import apply_ibn
from reidtricks.models.pretrained import fetch, load_pretrained_file

TORCHVISION_RESNETS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
    "resnet152": "ResNet152_Weights",
}
TIMM_PREFIX = "timm:"


def _unstride_avg_pool(pool: nn.AvgPool2d) -> None:
    """A stride-2 average pool made stride 1 without changing the map size."""
    kernel, padding = nn.modules.utils._pair(pool.kernel_size), nn.modules.utils._pair(pool.padding)
    if padding == (0, 0):  # 2x2/s2 shortcut pooling (ResNet-D): becomes the identity
        pool.kernel_size, pool.stride = 1, 1
    elif all(k == 2 * p + 1 for k, p in zip(kernel, padding, strict=True)):  # 3x3/s2 pad 1
        pool.stride = 1
    else:
        raise InputError(f"last_stride=1: cannot make {pool} size-preserving")


def set_last_stride_one(layer4: nn.Sequential) -> None:
    """Stride 1 in the first block of layer4 (convs, shortcut, pooling, anti-aliasing), so a
    256x128 input gives a 16x8 map instead of 8x4; weights and their shapes are unchanged."""
    block = layer4[0]
    if isinstance(getattr(block, "aa", None), nn.Module) and not isinstance(block.aa, nn.Identity):
        block.aa = nn.Identity()  # timm anti-aliased stride (blur pool, no saved weights)
    if getattr(block, "stride", None) == 2:
        block.stride = 1  # bookkeeping attribute of torchvision/timm blocks
    for module in block.modules():
        stride = getattr(module, "stride", None)
        if stride in (2, (2, 2)) and not any(module.children()):
            if isinstance(module, nn.Conv2d):
                module.stride = (1, 1)
            elif isinstance(module, nn.AvgPool2d):
                _unstride_avg_pool(module)
            else:
                raise InputError(f"last_stride=1: unsupported stride-2 module {module}")


def set_last_downsampling_stride_one(blocks: nn.Module) -> None:
    """Stride 1 in the last block of `blocks` (an EfficientNet/MobileNet stage list) that holds a
    stride-2 convolution; no dilation, weights unchanged (the block has no identity shortcut,
    since it changes the channel count)."""
    strided = [
        block
        for stage in blocks
        for block in (stage if isinstance(stage, nn.Sequential) else [stage])
        if any(isinstance(m, nn.Conv2d) and m.stride == (2, 2) for m in block.modules())
    ]
    if not strided:
        raise InputError("last_stride=1: the backbone has no stride-2 block to change")
    for module in strided[-1].modules():
        if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
            module.stride = (1, 1)  # timm's "same"-padding convs pad from the stride at run time


class TorchvisionResNetTrunk(nn.Module):
    """A torchvision ResNet without avgpool/fc (parameter names as torchvision's)."""

    def __init__(self, resnet: torchvision.models.ResNet) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = (
            resnet.conv1,
            resnet.bn1,
            resnet.relu,
            resnet.maxpool,
        )
        self.layer1, self.layer2 = resnet.layer1, resnet.layer2
        self.layer3, self.layer4 = resnet.layer3, resnet.layer4

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class TimmTrunk(nn.Module):
    """A timm model's `forward_features` as a B x C x h x w map: NHWC maps (Swin, ...) are
    permuted; token sequences (ViT) drop their prefix tokens and become B x C x N x 1."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.channels_last_output = str(getattr(model, "output_fmt", "NCHW")) == "NHWC"

    def forward(self, x: Tensor) -> Tensor:
        feats = self.model.forward_features(x)
        if feats.ndim == 3:
            prefix = int(getattr(self.model, "num_prefix_tokens", 0))
            return feats[:, prefix:].transpose(1, 2).unsqueeze(-1)
        return feats.permute(0, 3, 1, 2) if self.channels_last_output else feats


def _torchvision_resnet(
    name: str, last_stride: int, pretrained: bool, pretrained_path: str | None, key_map: str
) -> tuple[nn.Module, int]:
    resnet = getattr(torchvision.models, name)(weights=None)
    trunk = TorchvisionResNetTrunk(resnet)
    if pretrained_path:
        load_pretrained_file(trunk, pretrained_path, key_map)
    elif pretrained:
        weights = getattr(torchvision.models, TORCHVISION_RESNETS[name]).IMAGENET1K_V1
        state = fetch(name, lambda: weights.get_state_dict(progress=False, check_hash=True))
        resnet.load_state_dict(state)  # modules are shared with the trunk
    if last_stride == 1:
        set_last_stride_one(trunk.layer4)
    return trunk, resnet.fc.in_features


def _timm_backbone(
    name: str, last_stride: int, pretrained: bool, pretrained_path: str | None, key_map: str
) -> tuple[nn.Module, int]:
    import timm
    from timm.models.efficientnet import EfficientNet as TimmEfficientNet
    from timm.models.resnet import ResNet as TimmResNet

    if not timm.is_model(name):
        raise InputError(f"model.backbone={TIMM_PREFIX}{name}: timm has no model named {name!r}")
    kwargs = {"num_classes": 0, "global_pool": ""}
    if pretrained and not pretrained_path:
        model = fetch(name, lambda: timm.create_model(name, pretrained=True, **kwargs))
    else:
        model = timm.create_model(name, pretrained=False, **kwargs)
        if pretrained_path:
            load_pretrained_file(model, pretrained_path, key_map)
    if last_stride == 1:
        if isinstance(model, TimmResNet):
            set_last_stride_one(model.layer4)
        elif isinstance(model, TimmEfficientNet):
            set_last_downsampling_stride_one(model.blocks)
        else:
            raise InputError(
                f"model.last_stride=1 is supported for timm models built on timm's ResNet class "
                f"(resnet*, resnext*, seresnext*, resnest*, ...) or EfficientNet class "
                f"(mobilenetv2_*, efficientnet_*, ...), not {TIMM_PREFIX}{name} "
                f"({type(model).__name__}); use model.last_stride=2"
            )
    return TimmTrunk(model), int(model.num_features)


def build_backbone(
    name: str,
    last_stride: int,
    pretrained: bool,
    pretrained_path: str | None,
    pretrained_key_map: str,
    ibn: str,
) -> tuple[nn.Module, int]:
    """(feature extractor, channels C) for a torchvision ResNet name or `timm:<model>`.

    pretrained_path (a local state dict, keys matched by name or by order) wins over pretrained
    (the library's own download). ibn="a" turns norm layers of layer1-3 into IBN layers once
    the ImageNet weights are in (models/ibn.py).
    """
    if last_stride not in (1, 2):
        raise InputError(f"model.last_stride={last_stride}: expected 1 or 2")
    if name in TORCHVISION_RESNETS:
        trunk, channels = _torchvision_resnet(
            name, last_stride, pretrained, pretrained_path, pretrained_key_map
        )
    elif isinstance(name, str) and name.startswith(TIMM_PREFIX) and len(name) > len(TIMM_PREFIX):
        trunk, channels = _timm_backbone(
            name[len(TIMM_PREFIX) :], last_stride, pretrained, pretrained_path, pretrained_key_map
        )
    else:
        known = ", ".join([*TORCHVISION_RESNETS, f"{TIMM_PREFIX}<timm model name>"])
        raise InputError(f"model.backbone={name!r}: expected one of {known}")
    return apply_ibn(trunk, ibn), channels
