"""Target batch-norm statistics (AdaBN, Li et al., ICLR-W 2017; docs/METHOD.md, "Adapting to
unlabelled images", `adapt.adabn`): every BatchNorm layer's running mean / variance re-estimated
on the target images, no weight trained. Cheap, and on a camera shift often most of the gain."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


def batch_norm_layers(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm (1d / 2d / 3d, sync included) of `net`, in module order."""
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def reestimate_bn_statistics(net: nn.Module, batches: Iterable[Tensor]) -> int:
    """Replace the running statistics of every BatchNorm layer that tracks them by the plain
    average, over `batches`, of each batch's mean and (unbiased) variance (PyTorch's cumulative
    average, momentum None). Only the BatchNorm layers run in training mode (MixStyle, dropout
    and the like stay in eval); each layer's mode and momentum come back as they were. Returns
    the number of images seen."""
    layers = [m for m in batch_norm_layers(net) if m.track_running_stats]
    modes = {m: m.training for m in net.modules()}
    momenta = [m.momentum for m in layers]
    seen = 0
    try:
        net.eval()
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None
            layer.train()
        for images in batches:
            net(images)
            seen += images.shape[0]
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        for module, mode in modes.items():
            module.train(mode)
    return seen


def _statistics_buffers(net: nn.Module) -> dict[str, Tensor]:
    """The running-statistics buffers (mean, variance, batches seen) of every BatchNorm of `net`
    that tracks them, by state-dict name (the tensors themselves, not copies)."""
    out: dict[str, Tensor] = {}
    for name, module in net.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            for buffer in ("running_mean", "running_var", "num_batches_tracked"):
                out[f"{name}.{buffer}"] = getattr(module, buffer)
    return out


def bn_statistics(net: nn.Module) -> dict[str, Tensor]:
    """A copy of the running statistics (mean, variance, batches seen) of every BatchNorm of
    `net` that tracks them, by state-dict name."""
    return {name: value.detach().clone() for name, value in _statistics_buffers(net).items()}


@torch.no_grad()
def load_bn_statistics(net: nn.Module, statistics: dict[str, Tensor]) -> None:
    """Copy `statistics` (bn_statistics of the same architecture) into `net`'s buffers."""
    buffers = _statistics_buffers(net)  # once per camera and test batch: no copies
    expected = set(buffers)
    if set(statistics) != expected:
        wrong = sorted(set(statistics) ^ expected)
        raise ValueError(f"BatchNorm statistics of another network: {wrong[:3]} do not match")
    for name, value in statistics.items():
        buffers[name].copy_(value)
