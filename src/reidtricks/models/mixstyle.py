"""MixStyle (Zhou et al., ICLR 2021), the "random" variant: in training, with probability p per
forward, each sample's channel-wise feature statistics are mixed with another sample's after
early stages; the identity at test time (docs/METHOD.md, "MixStyle")."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from reidtricks.errors import InputError
from reidtricks.models.stages import STAGES
from reidtricks.validate import require_number

EPS = 1e-6  # added to the variance before the square root, as the paper


@dataclass(frozen=True)
class MixStyleConfig:
    """p (0: off, no module at all), the Beta(alpha, alpha) of the mixing weight, and the stages
    (layer1 ... layer4, see models/stages.py) after which the statistics are mixed."""

    p: float = 0.0  # trick mixstyle: 0.5
    alpha: float = 0.1
    layers: tuple[str, ...] = ("layer1", "layer2")

    def __post_init__(self) -> None:
        require_number("model.mixstyle.p", self.p, 0.0, 1.0)
        require_number("model.mixstyle.alpha", self.alpha, low=0.0)
        if self.alpha == 0:
            raise InputError(f"model.mixstyle.alpha={self.alpha!r}: expected > 0")
        layers = self.layers
        if isinstance(layers, str) or not isinstance(layers, Sequence):  # a list, ListConfig, ...
            raise InputError(f"model.mixstyle.layers={layers!r}: expected a list of {STAGES}")
        bad = [s for s in layers if s not in STAGES]
        if bad or not layers or len(set(layers)) != len(layers):
            raise InputError(
                f"model.mixstyle.layers={list(layers)!r}: expected distinct names of {STAGES}"
            )
        object.__setattr__(self, "layers", tuple(layers))


def mix_styles(x: Tensor, lam: Tensor, perm: Tensor, eps: float = EPS) -> Tensor:
    """x (B x C x H x W) normalised by its per-sample, per-channel mean and std (biased variance
    + eps, both detached) and re-styled with lam * own + (1 - lam) * the statistics of sample
    perm[i]; lam is B values in [0, 1]."""
    mu = x.mean(dim=(2, 3), keepdim=True).detach()
    sigma = (x.var(dim=(2, 3), keepdim=True, correction=0) + eps).sqrt().detach()
    lam = lam.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
    perm = perm.to(x.device)
    mu_mix = lam * mu + (1 - lam) * mu[perm]
    sigma_mix = lam * sigma + (1 - lam) * sigma[perm]
    return (x - mu) / sigma * sigma_mix + mu_mix


class MixStyle(nn.Module):
    """mix_styles in training mode with probability p per call, drawing lam ~ Beta(alpha, alpha)
    per sample and a random permutation of the batch from torch's global (CPU) RNG, which
    Lightning seeds and checkpoints restore; the input itself otherwise. No parameters."""

    def __init__(self, p: float, alpha: float) -> None:
        super().__init__()
        self.p, self.alpha = float(p), float(alpha)

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}"

    def draw(self, batch: int) -> tuple[Tensor, Tensor]:
        """(lam, perm) for a batch: B Beta(alpha, alpha) draws and a permutation of range(B)."""
        beta = torch.distributions.Beta(torch.tensor(self.alpha), torch.tensor(self.alpha))
        return beta.sample((batch,)), torch.randperm(batch)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0 or x.shape[0] < 2:
            return x
        if float(torch.rand(())) >= self.p:
            return x
        return mix_styles(x, *self.draw(x.shape[0]))

    def hook(self, module: nn.Module, args: Any, output: Tensor) -> Tensor | None:
        """A forward hook: the stage's output restyled (None, i.e. unchanged, when inactive)."""
        if not self.training:
            return None
        return self(output)


def attach_mixstyle(mixstyle: MixStyle, stage_outputs: Iterable[nn.Module]) -> None:
    """Run `mixstyle` on the output of each module (a bound method as the hook, so a deep copy
    of the network hooks its own copy)."""
    for module in stage_outputs:
        module.register_forward_hook(mixstyle.hook)
