"""IBN-a (Pan et al., ECCV 2018): instance norm on the first half of the channels of the first
norm layer of every block in layer1-3, batch norm on the rest (docs/METHOD.md, "IBN-a")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reidtricks.errors import InputError
from reidtricks.models.stages import backbone_stages

IBN_MODES = ("none", "a")
IBN_STAGES = ("layer1", "layer2", "layer3")


class IBN(nn.Module):
    """InstanceNorm2d(affine) on channels [0, half), BatchNorm2d on [half, C), then `act` (the
    activation that timm fuses into its norm layer; identity otherwise)."""

    def __init__(self, instance: nn.InstanceNorm2d, batch: nn.BatchNorm2d, act: nn.Module) -> None:
        super().__init__()
        self.half = instance.num_features
        self.inst, self.bn, self.act = instance, batch, act

    def forward(self, x: Tensor) -> Tensor:
        # Instance norm is slow on channels-last CPU tensors (a MobileNetV2 step with IBN-a took
        # 1.88x one without, 1 thread): normalise in NCHW and hand back the caller's layout
        # (1.39x; scripts/bench_ibn.py). group_norm with one group per channel is instance norm.
        channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        first, rest = torch.split(x.contiguous(), [self.half, x.shape[1] - self.half], dim=1)
        inst = self.inst
        first = F.group_norm(first, self.half, inst.weight, inst.bias, inst.eps)
        out = self.act(torch.cat([first, self.bn(rest)], dim=1))
        return out.contiguous(memory_format=torch.channels_last) if channels_last else out

    @classmethod
    def from_batch_norm(cls, bn: nn.BatchNorm2d) -> IBN:
        """The IBN layer that replaces `bn`: the IN half takes bn's affine weight and bias of the
        first floor(C/2) channels, the BN half bn's weights and running statistics of the rest;
        both keep bn's eps (TF-ported models use 1e-3)."""
        channels = bn.num_features
        half = channels // 2
        if half < 1 or not bn.affine or not bn.track_running_stats:
            raise InputError(f"model.ibn=a: cannot split {bn} (needs >= 2 channels, affine, stats)")
        factory = {"device": bn.weight.device, "dtype": bn.weight.dtype}
        instance = nn.InstanceNorm2d(half, eps=bn.eps, affine=True, **factory)
        batch = nn.BatchNorm2d(channels - half, eps=bn.eps, momentum=bn.momentum, **factory)
        with torch.no_grad():
            instance.weight.copy_(bn.weight[:half])
            instance.bias.copy_(bn.bias[:half])
            batch.weight.copy_(bn.weight[half:])
            batch.bias.copy_(bn.bias[half:])
            batch.running_mean.copy_(bn.running_mean[half:])
            batch.running_var.copy_(bn.running_var[half:])
            batch.num_batches_tracked.copy_(bn.num_batches_tracked)
        # timm's BatchNormAct2d applies its dropout and activation after the normalisation.
        post = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]
        act = nn.Sequential(*post) if post else nn.Identity()
        return cls(instance, batch, act)


def apply_ibn(trunk: nn.Module, mode: str) -> nn.Module:
    """Replace, in place, the first norm layer (`bn1`) of every block of layer1-3 by an IBN layer
    built from it (mode "a"); mode "none" changes nothing. Run after the ImageNet weights are
    loaded, so that IBN's halves carry them."""
    if mode not in IBN_MODES:
        raise InputError(f"model.ibn={mode!r}: expected one of {IBN_MODES}")
    if mode == "none":
        return trunk
    stages = backbone_stages(trunk, "model.ibn=a")
    for stage in IBN_STAGES:
        for group in stages[stage]:
            for block in group:
                bn = getattr(block, "bn1", None)
                if type(bn) is not nn.BatchNorm2d and not _is_timm_batch_norm_act(bn):
                    raise InputError(
                        f"model.ibn=a: block {type(block).__name__} of {stage} has no BatchNorm2d "
                        f"bn1 (found {type(bn).__name__})"
                    )
                block.bn1 = IBN.from_batch_norm(bn)
    return trunk


def _is_timm_batch_norm_act(module: object) -> bool:
    from timm.layers import BatchNormAct2d

    return type(module) is BatchNormAct2d
