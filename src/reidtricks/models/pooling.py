"""Global pooling of the feature map: average (the BoT's) or generalised mean (GeM, Radenović et
al., TPAMI 2018) with a learnable exponent (docs/METHOD.md, "GeM pooling")."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from reidtricks.errors import InputError

POOLINGS = ("avg", "gem")
GEM_P = 3.0  # the exponent GeM starts from
GEM_EPS = 1e-6  # activations are clamped to >= eps before the power


class GeneralizedMeanPooling(nn.Module):
    """B x C x H x W -> B x C x 1 x 1: (mean over H x W of clamp(x, eps)^p)^(1/p), one learnable
    p shared by all channels (p = 1: average pooling; p -> inf: max pooling)."""

    def __init__(self, p: float = GEM_P, eps: float = GEM_EPS) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.full((1,), float(p)))
        self.eps = float(eps)

    def extra_repr(self) -> str:
        return f"p={float(self.p.detach()[0]):.4f}, eps={self.eps}"

    def forward(self, x: Tensor) -> Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3), keepdim=True).pow(1.0 / self.p)


def build_pooling(name: str) -> nn.Module:
    """`model.pooling`: avg (AdaptiveAvgPool2d(1), no parameters) or gem (parameter `p`)."""
    if name == "avg":
        return nn.AdaptiveAvgPool2d(1)
    if name == "gem":
        return GeneralizedMeanPooling()
    raise InputError(f"model.pooling={name!r}: expected one of {POOLINGS}")
