"""The four stages of a backbone, named as a ResNet's (layer1 ... layer4 end at output stride 4, 8,
16, 32), for the tricks that act on early stages (IBN-a, MixStyle; docs/METHOD.md, "Network
tricks for unseen cameras")."""

from __future__ import annotations

from torch import nn

from reidtricks.errors import InputError

STAGES = ("layer1", "layer2", "layer3", "layer4")
# The output stride at the end of each stage.
STAGE_REDUCTIONS = dict(zip(STAGES, (4, 8, 16, 32), strict=True))


def _efficientnet_stages(model: nn.Module, key: str) -> dict[str, list[nn.Module]]:
    """timm EfficientNet/MobileNet: `blocks` is a list of block groups; stage layerN holds every
    group after layer(N-1)'s up to the one timm's feature_info lists at layerN's output stride
    (so layer1 also holds the stride-2 group that follows the stem)."""
    ends = {
        int(info["reduction"]): int(str(info["module"]).split(".")[1])
        for info in model.feature_info
        if str(info["module"]).startswith("blocks.")
    }
    missing = [s for s, r in STAGE_REDUCTIONS.items() if r not in ends]
    if missing:
        raise InputError(f"{key}: the backbone has no block group ending {missing[0]}")
    stages, start = {}, 0
    for name, reduction in STAGE_REDUCTIONS.items():
        stages[name] = list(model.blocks[start : ends[reduction] + 1])
        start = ends[reduction] + 1
    return stages


def backbone_stages(trunk: nn.Module, key: str) -> dict[str, list[nn.Sequential]]:
    """layer1 ... layer4 -> the block groups (nn.Sequential of blocks) of that stage, in order;
    the stage's output is the last group's. Torchvision ResNets, timm's ResNet and EfficientNet
    classes; a one-line error naming `key` (the setting that asked) for any other backbone."""
    from timm.models.efficientnet import EfficientNet as TimmEfficientNet
    from timm.models.resnet import ResNet as TimmResNet

    model = getattr(trunk, "model", trunk)  # TimmTrunk wraps the timm model
    if isinstance(model, TimmEfficientNet):
        return _efficientnet_stages(model, key)
    if isinstance(model, TimmResNet) or all(
        isinstance(getattr(model, s, None), nn.Sequential) for s in STAGES
    ):
        return {s: [getattr(model, s)] for s in STAGES}
    raise InputError(
        f"{key}: supported for the torchvision ResNets and timm's ResNet and EfficientNet classes "
        f"(resnet*, seresnext*, mobilenetv2_*, efficientnet_*, ...), not {type(model).__name__}"
    )
